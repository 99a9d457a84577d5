"""Penalties applied by the HF engines on the real demo model, checked against greedy loops
written here (the penalty applied by hand) and against transformers' own generate()."""

import pytest

from gendiff.demo import demo_model_path, demo_prompts_path
from gendiff.engines import create_engine, engine_names, parse_engine_spec
from gendiff.engines.loading import load_tokenizer
from gendiff.engines.settings import GenerationSettings
from gendiff.io.prompts import PromptBook
from gendiff.io.snapshots import load_snapshot
from gendiff.records.divergence import compare

pytestmark = pytest.mark.slow

SETTINGS = GenerationSettings(max_new_tokens=16, top_k=5)
HF_ENGINES = ["hf-single", "hf-left", "hf-right", "packed"]


# demo prompts where repetition_penalty=1.3 changes the greedy text within 16 tokens (3, 7, 8,
# 13), and two where it doesn't: lean, and the agreement tests are not about unpenalised text
PROMPTS = (0, 3, 7, 8, 9, 13)


@pytest.fixture(scope="module")
def prompt_ids():
    tokenizer = load_tokenizer(demo_model_path())
    prompts = PromptBook.load(demo_prompts_path()).prompts
    return [tokenizer.encode(prompts[i]) for i in PROMPTS]


@pytest.fixture(scope="module")
def model():
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(demo_model_path()), dtype=torch.float32).eval()


def run(spec_text, prompt_ids, run_wide=None, settings=SETTINGS):
    defaults = {"dtype": "float32"}
    if run_wide is not None:
        defaults["decoding"] = run_wide
    engine = create_engine(parse_engine_spec(spec_text, defaults, engine_names()), str(demo_model_path()))
    engine.load()
    return engine.generate(prompt_ids, settings)


def greedy_by_hand(model, prompt, steps, eos, penalise):
    """Plain greedy loop with the model's KV cache: ``penalise(history, prompt_length, logits)`` -> scores."""
    import torch

    ids = list(prompt)
    out = []
    cache = None
    feed = ids
    with torch.inference_mode():
        for _ in range(steps):
            result = model(torch.tensor([feed]), past_key_values=cache, use_cache=True)
            cache = result.past_key_values
            logits = result.logits[0, -1].float()
            token = int(torch.argmax(penalise(ids, len(prompt), logits.clone())))
            out.append(token)
            ids.append(token)
            feed = [token]
            if token == eos:
                break
    return out


def multiplicative(penalty):
    def apply(history, prompt_length, logits):
        for token in set(history):  # prompt and output, each token once
            value = logits[token]
            logits[token] = value * penalty if value < 0 else value / penalty
        return logits

    return apply


def additive(frequency, presence):
    def apply(history, prompt_length, logits):
        generated = history[prompt_length:]
        for token in set(generated):
            logits[token] -= frequency * generated.count(token) + presence
        return logits

    return apply


@pytest.fixture(scope="module")
def penalised(prompt_ids):
    from gendiff.records.decoding import Decoding

    run_wide = Decoding(repetition_penalty=1.3)
    return {name: run(name, prompt_ids, run_wide) for name in HF_ENGINES}


def test_hf_single_with_a_penalty_matches_a_hand_written_loop(penalised, prompt_ids, model):
    eos = load_tokenizer(demo_model_path()).eos_token_id
    for trace, prompt in zip(penalised["hf-single"], prompt_ids):
        assert list(trace.token_ids) == greedy_by_hand(model, prompt, SETTINGS.max_new_tokens, eos, multiplicative(1.3))


def test_hf_single_matches_transformers_generate_with_the_penalty(penalised, prompt_ids, model):
    import torch

    for trace, prompt in zip(penalised["hf-single"], prompt_ids):
        ids = torch.tensor([prompt])
        out = model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=16, do_sample=False, repetition_penalty=1.3
        )
        assert list(trace.token_ids) == out[0, len(prompt) :].tolist()[: len(trace.steps)]


def test_the_penalty_changes_the_greedy_text(penalised, prompt_ids):
    plain = run("hf-single", prompt_ids)
    changed = [i for i, (a, b) in enumerate(zip(plain, penalised["hf-single"])) if a.token_ids != b.token_ids]
    assert len(changed) >= 3  # so the agreement below is not the agreement of unpenalised runs


@pytest.mark.parametrize("name", HF_ENGINES[1:])
def test_hf_engines_agree_under_the_same_penalty(penalised, name):
    for ref, other in zip(penalised["hf-single"], penalised[name]):
        d = compare(ref, other)
        assert d.reason == "identical" or (d.reason == "token" and d.reference_margin < 1e-3), d.detail
        if name == "hf-left":  # the semantics table: its left pads are penalised too
            assert d.decoding_note and "plus the pad tokens of the rows it left-pads" in d.decoding_note
        else:
            assert d.decoding_note is None


def test_steps_record_raw_and_processed_scores(penalised):
    processed_somewhere = False
    for trace in penalised["hf-right"]:
        assert trace.settings["resolved_decoding"]["repetition_penalty"] == 1.3
        assert trace.settings["resolved_decoding"]["sources"]["repetition_penalty"] == "given"
        for step in trace.steps:
            assert step.raw_top is not None and len(step.raw_top) == 5
            assert step.top[0].token_id == step.token_id  # the choice is the processed argmax
            assert step.margin == step.top[0].logprob - step.top[1].logprob
            processed_somewhere |= step.processed
            raw_of_choice = next((t for t in step.raw_top if t.token_id == step.token_id), None)
            if raw_of_choice is not None:
                assert raw_of_choice.logprob == pytest.approx(step.raw_logprob)
    assert processed_somewhere


@pytest.mark.parametrize("name", ["hf-single", "hf-left", "packed"])
def test_frequency_and_presence_penalties_are_openais_definition(prompt_ids, model, name):
    eos = load_tokenizer(demo_model_path()).eos_token_id
    traces = run(f"{name}:frequency_penalty=2,presence_penalty=1", prompt_ids[:3])
    for trace, prompt in zip(traces, prompt_ids[:3]):
        expected = greedy_by_hand(model, prompt, SETTINGS.max_new_tokens, eos, additive(2.0, 1.0))
        assert list(trace.token_ids) == expected


def test_no_repeat_ngram_matches_generate(prompt_ids, model):
    import torch

    traces = run("hf-right:no_repeat_ngram_size=2", prompt_ids[:3])
    for trace, prompt in zip(traces, prompt_ids[:3]):
        ids = torch.tensor([prompt])
        out = model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=16, do_sample=False, no_repeat_ngram_size=2
        )
        assert list(trace.token_ids) == out[0, len(prompt) :].tolist()[: len(trace.steps)]


def test_model_defaults_apply_the_generation_config(tmp_path, penalised):
    """A copy of the demo model whose generation_config.json asks for repetition_penalty 1.3:
    raw greedy without --model-defaults, the penalty with it (resolved and in the snapshot)."""
    import json
    import shutil

    from gendiff.records.decoding import Decoding
    from gendiff.run.config import RunConfig
    from gendiff.run.session import Session

    folder = tmp_path / "model"
    shutil.copytree(demo_model_path(), folder)
    config = json.loads((folder / "generation_config.json").read_text())
    (folder / "generation_config.json").write_text(json.dumps({**config, "repetition_penalty": 1.3}))
    prompts = PromptBook.load(demo_prompts_path()).prompts
    texts = [prompts[i] for i in PROMPTS[:3]]
    specs = tuple(
        parse_engine_spec(text, {"decoding": Decoding(model_defaults=True)}, engine_names())
        for text in ("hf-single", "hf-single:model_defaults=off")
    )
    snapshot = Session(RunConfig(str(folder), specs, "hf-single", SETTINGS), texts).run()
    for row, prompt in enumerate(snapshot.prompts):
        assert prompt.traces["hf-single"].token_ids == penalised["hf-single"][row].token_ids
    off = [p.traces["hf-single:model_defaults=off"] for p in snapshot.prompts]
    assert any(t.token_ids != penalised["hf-single"][row].token_ids for row, t in enumerate(off))
    on, plain = snapshot.engines[0]["decoding"], snapshot.engines[1]["decoding"]
    assert on["repetition_penalty"] == 1.3 and on["sources"]["repetition_penalty"] == "generation_config.json"
    assert plain["repetition_penalty"] == 1.0 and plain["sources"]["repetition_penalty"] == "neutral"
    note = snapshot.prompts[1].divergences[0].decoding_note
    assert (
        note == "hf-single applies repetition_penalty 1.3 multiplicatively over prompt+output; "
        "hf-single:model_defaults=off applies no penalty"
    )


async def test_panel_shows_processed_and_raw_scores_and_the_note(tmp_path):
    """A saved run of hf-single:repetition_penalty vs hf-single:frequency_penalty, opened in the app."""
    from app_helpers import SIZE, app_for, plain

    from gendiff.cli.main import main

    path = tmp_path / "pen.json"
    engines = "hf-single:repetition_penalty=1.3,hf-single:frequency_penalty=1.3"
    assert main(["run", "--quiet", "--engines", engines, "--max-new-tokens", "16", "--json", str(path)]) in (0, 1)
    from gendiff.run.session import Session

    # re-running the snapshot (bisection, re-convergence) runs the same penalties
    rebuilt = Session.from_snapshot(load_snapshot(path)).config.engines
    assert [spec.decoding.given() for spec in rebuilt] == [{"repetition_penalty": 1.3}, {"frequency_penalty": 1.3}]
    app = app_for(path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("n")
        text = plain(app.main.query_one("#panel"), width=200)
    assert "hf-single:repetition_penalty=1.3 after penalties" in text
    assert "hf-single:repetition_penalty=1.3 raw" in text
    assert (
        "penalties differ: hf-single:repetition_penalty=1.3 applies repetition_penalty 1.3 multiplicatively over "
        "prompt+output; hf-single:frequency_penalty=1.3 applies frequency_penalty 1.3 additively over output only"
    ) in " ".join(text.split())

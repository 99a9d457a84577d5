"""Bisection and re-convergence on real bfloat16 divergences of the demo model."""

import pytest
import torch

from gendiff.demo import demo_model_path, demo_prompts_path
from gendiff.engines import create_engine, engine_names, parse_engine_spec
from gendiff.engines.loading import load_tokenizer
from gendiff.engines.probe import Probe
from gendiff.engines.settings import GenerationSettings
from gendiff.io.prompts import PromptBook
from gendiff.records.divergence import compare
from gendiff.run.diagnosis import LASTING, TRANSIENT, Reconvergence, bisect, reconverge

pytestmark = pytest.mark.slow

SETTINGS = GenerationSettings(max_new_tokens=32, top_k=5)


def engine(name, dtype="bfloat16"):
    e = create_engine(parse_engine_spec(name, {"dtype": dtype}, engine_names()), str(demo_model_path()))
    e.load()
    return e


@pytest.fixture(scope="module")
def prompt_ids():
    tokenizer = load_tokenizer(demo_model_path())
    return [tokenizer.encode(p) for p in PromptBook.load(demo_prompts_path()).prompts]


@pytest.fixture(scope="module")
def bf16_run(prompt_ids):
    engines = {name: engine(name) for name in ("hf-single", "hf-left", "hf-right", "packed")}
    traces = {name: e.generate(prompt_ids, SETTINGS) for name, e in engines.items()}
    return engines, traces


def token_divergences(traces, name):
    found = [compare(r, o) for r, o in zip(traces["hf-single"], traces[name])]
    return [d for d in found if d.reason == "token"]


def left_padded_hidden_states(model, prompts, streams, step, pad_id):
    """hf-left's computation written out by hand: a left-padded batch, positions from the mask,
    KV cache, each row fed its own tokens (pad once it has stopped); hidden states of call ``step``."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p) :] = torch.tensor(p)
        mask[row, width - len(p) :] = 1
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        for call in range(step + 1):
            positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
            if call:
                positions = positions[:, -1:]
            out = model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                past_key_values=cache,
                use_cache=True,
                output_hidden_states=True,
            )
            if call == step:
                return [h[:, -1].float() for h in out.hidden_states]
            fed = [s[call] if call < len(s) else pad_id for s in streams]
            ids = torch.tensor(fed)[:, None]
            mask = torch.cat([mask, torch.ones((len(prompts), 1), dtype=mask.dtype)], dim=1)


def test_bisection_of_a_real_hf_left_divergence_matches_hidden_states_from_the_model(bf16_run, prompt_ids):
    engines, traces = bf16_run
    divergences = token_divergences(traces, "hf-left")
    assert divergences, "the demo prompts are picked to diverge in bfloat16"
    d = divergences[0]
    p, step = d.prompt_index, d.step
    ref_trace, left_trace = traces["hf-single"][p], traces["hf-left"][p]

    result = bisect(engines["hf-single"], engines["hf-left"], prompt_ids, p, ref_trace, left_trace, step, SETTINGS)
    assert result.reproduced
    first = result.first_bitwise
    assert first is not None and first.layer is not None  # names a layer and a module in it
    assert first.name.startswith(f"model.layers.{first.layer}")
    model = engines["hf-single"].loaded.model
    own = dict(model.named_modules())
    assert first.name.removesuffix(":input") in own  # the model's own module name
    # everything before it is bitwise equal, and the logits at the end do differ
    names = [m.name for m in result.modules]
    assert all(m.equal for m in result.modules[: names.index(first.name)])
    assert names[0] == "model.embed_tokens" and result.modules[0].role == "token embedding"
    assert names[-1] == "lm_head" and result.modules[-1].role == "logits" and not result.modules[-1].equal

    # hidden states straight from the model, without gendiff's hooks
    pad = load_tokenizer(demo_model_path()).pad_token_id
    single = left_padded_hidden_states(model, [prompt_ids[p]], [ref_trace.token_ids], step, pad)
    streams = [t.token_ids for t in traces["hf-left"]]
    batch = left_padded_hidden_states(model, prompt_ids, streams, step, pad)
    layers = model.config.num_hidden_layers
    direct = []
    for layer in range(layers):  # hidden_states[i + 1]: the output of layer i (the last one after the norm)
        a, b = single[layer + 1][0], batch[layer + 1][p]
        direct.append((torch.equal(a, b), float((b - a).norm() / a.norm())))
    by_name = {m.name: m for m in result.modules}
    for layer, (equal, rel) in enumerate(direct):
        name = "model.norm" if layer == layers - 1 else f"model.layers.{layer}"
        assert by_name[name].equal == equal
        assert by_name[name].rel_diff == pytest.approx(rel, rel=1e-6, abs=1e-12)
    first_layer_out = next(i for i, (equal, _) in enumerate(direct) if not equal)
    assert first.layer <= first_layer_out  # the module the bisection names is in or before that layer
    assert all(m.equal for m in result.modules if m.layer is not None and m.layer < first.layer)


def test_probe_captures_the_layer_outputs_the_model_reports(bf16_run, prompt_ids):
    engines, traces = bf16_run
    e = engines["hf-single"]
    probe = Probe(0, 3)
    e.replay([prompt_ids[2]], GenerationSettings(max_new_tokens=4), {0: list(traces["hf-single"][2].token_ids)}, probe)
    model = e.loaded.model
    pad = load_tokenizer(demo_model_path()).pad_token_id
    direct = left_padded_hidden_states(model, [prompt_ids[2]], [traces["hf-single"][2].token_ids], 3, pad)
    assert torch.equal(probe.captured["model.embed_tokens"], direct[0][0])
    for layer in range(model.config.num_hidden_layers - 1):
        assert torch.equal(probe.captured[f"model.layers.{layer}"], direct[layer + 1][0])
        assert probe.labels[f"model.layers.{layer}"].role == "layer output"
    assert torch.equal(probe.captured["model.norm"], direct[-1][0])
    assert probe.labels["model.norm"].role == "final norm"


@pytest.mark.parametrize("name", ["hf-right", "packed"])
def test_bisection_works_for_the_other_batched_engines(bf16_run, prompt_ids, name):
    engines, traces = bf16_run
    d = token_divergences(traces, name)[0]
    result = bisect(
        engines["hf-single"],
        engines[name],
        prompt_ids,
        d.prompt_index,
        traces["hf-single"][d.prompt_index],
        traces[name][d.prompt_index],
        d.step,
        SETTINGS,
    )
    assert result.reproduced and result.first_bitwise is not None
    assert len(result.layer_outputs()) == 4


def test_bisection_of_identical_engines_finds_nothing(bf16_run, prompt_ids):
    engines, traces = bf16_run
    ref = traces["hf-single"][0]
    other = engine("hf-single:cache=on")
    result = bisect(engines["hf-single"], other, prompt_ids, 0, ref, ref, 5, SETTINGS)
    assert result.first_bitwise is None and all(m.rel_diff == 0 for m in result.modules)
    assert "bitwise identical" in result.summary()


def test_teacher_forcing_feeds_the_forced_tokens_and_records_own_choices(bf16_run, prompt_ids):
    engines, traces = bf16_run
    forced = list(traces["hf-single"][1].token_ids)
    forced[3] = forced[2]  # force a token the engine would not choose
    for name in ("hf-single", "hf-left", "hf-right", "packed"):
        replayed = engines[name].replay(prompt_ids, SETTINGS, {1: forced})
        own = replayed[1].token_ids
        assert own[:3] == tuple(forced[:3]) and own[3] != forced[3], name
        # the other prompts are untouched
        assert replayed[0].steps == traces[name][0].steps, name


def test_reconvergence_of_real_divergences(bf16_run, prompt_ids):
    engines, traces = bf16_run
    seen = 0
    for name in ("hf-left", "hf-right", "packed"):
        for d in token_divergences(traces, name):
            ref, other = traces["hf-single"][d.prompt_index], traces[name][d.prompt_index]
            r = reconverge(engines[name], prompt_ids, d.prompt_index, ref, other, d.step, SETTINGS)
            assert r.reproduced and r.mismatches[0] == d.step
            assert r.steps_checked == len(ref.steps)
            assert r.verdict in (TRANSIENT, LASTING)
            seen += 1
    assert seen >= 5


def test_reconvergence_verdicts():
    base = dict(reference="a", engine="b", prompt_index=0, step=4, reproduced=True)
    transient = Reconvergence(steps_checked=10, mismatches=(4,), **base)
    assert transient.verdict == TRANSIENT and transient.rejoin_after == 1 and transient.later == ()
    again = Reconvergence(steps_checked=10, mismatches=(4, 8), **base)
    assert again.verdict == TRANSIENT and again.later == (8,) and "1 later flip at step 8" in again.summary()
    fork = Reconvergence(steps_checked=10, mismatches=(4, 5, 6), **base)
    assert fork.verdict == LASTING and fork.rejoin_after == 3
    never = Reconvergence(steps_checked=7, mismatches=(4, 5, 6), **base)
    assert never.verdict == LASTING and never.rejoin_after is None and "never agrees again" in never.summary()
    last = Reconvergence(steps_checked=5, mismatches=(4,), **base)
    assert last.verdict == "undetermined"
    assert Reconvergence.from_dict(fork.to_dict()) == fork


def test_a_dtype_divergence_starts_at_the_embeddings_and_flips_again_later(prompt_ids):
    """float32 vs bfloat16 weights: the very first module differs, and the drift keeps flipping
    near-ties further on even when fed the reference's tokens."""
    ref_engine, bf16 = engine("hf-single", "float32"), engine("hf-single:dtype=bfloat16", "float32")
    refs = ref_engine.generate(prompt_ids, SETTINGS)
    others = bf16.generate(prompt_ids, SETTINGS)
    later = 0
    for ref, other in zip(refs, others):
        d = compare(ref, other)
        if d.reason != "token":
            continue
        result = bisect(ref_engine, bf16, prompt_ids, d.prompt_index, ref, other, d.step, SETTINGS)
        assert result.first_bitwise.name == "model.embed_tokens"
        # and at every earlier position too (found in tmux: the layer x position view said layer 0)
        assert result.position_splits and {s.name for s in result.position_splits} == {"model.embed_tokens"}
        assert {s.position for s in result.position_splits} == set(range(len(prompt_ids[d.prompt_index]) + d.step - 1))
        r = reconverge(bf16, prompt_ids, d.prompt_index, ref, other, d.step, SETTINGS)
        assert r.reproduced
        later += len(r.later)
    assert later >= 1

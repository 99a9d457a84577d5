"""Conformance: every HF engine on every tiny architecture equals a plain greedy loop.

For each architecture in tests/tiny_models.py (float32, sliding window 16 where the model has
one), hf-single, hf-left, hf-right and packed (hf-left / hf-right at batch size 2, so rows
are padded) must choose the same tokens as an independent greedy loop written here (the
whole sequence recomputed each step with ``model(input_ids).logits``, batch 1, no gendiff
code) and report the same top-k logprobs and logits within 1e-4. Pairs gendiff cannot run
must be refused up front (creating the engine) with one line naming engine, architecture
and why, recommending only engines right on that architecture; pairs no config rule catches
must be refused by the conformance probe, and the probe must clear every pair that matches.
transformers' own left-padded generate may differ (``TRANSFORMERS_DIFFERS``): then the probe
labels it instead.
"""

from __future__ import annotations

import random

import pytest
from tiny_models import ARCHITECTURES, EOS

from gendiff.engines import create_engine, parse_engine_spec
from gendiff.engines.conformance import verify
from gendiff.engines.settings import GenerationSettings
from gendiff.errors import GendiffError, InputError
from gendiff.records.conformance import DIFFERS

pytestmark = pytest.mark.slow

TOLERANCE = 1e-4
SETTINGS = GenerationSettings(max_new_tokens=14, top_k=5)
ENGINES = ("hf-single", "hf-left:batch_size=2", "hf-right:batch_size=2", "packed")
# lengths 4-43 around the window of 16; neighbours differ in length so batch rows are padded
LENGTHS = (43, 4, 17, 9, 30, 16)
# transformers 5.19 has no sdpa attention for these: run them eager, and expect sdpa refused
NO_SDPA = {"bloom", "gptj", "gpt_oss", "gpt_neo", "rwkv", "openai-gpt", "mpt", "mamba"}
# (architecture, engine) pairs that gendiff refuses, with a word the reason must contain
REFUSED = {
    ("bloom", "packed"): "ALiBi",
    ("mpt", "packed"): "ALiBi",
    ("lfm2", "hf-right"): "conv",
    ("lfm2", "packed"): "conv",
    ("gpt_neo", "hf-right"): "by cache slot",  # its local window, read from attention_types
    ("gpt_neo", "packed"): "by cache slot",
    ("rwkv", "hf-right"): "recurrent state",
    ("rwkv", "packed"): "recurrent state",
    ("openai-gpt", "hf-right"): "no KV cache",
    ("openai-gpt", "packed"): "no KV cache",
    ("minimax", "hf-right"): "linear_attention",
    ("minimax", "packed"): "linear_attention",
    ("mamba", "hf-right"): "recurrent state",
    ("mamba", "packed"): "recurrent state",
}
# engines a refusal may recommend: never one that is wrong on that architecture
RECOMMENDABLE = {"hf-single", "hf-left"}
# transformers' own batched generate differs from unpadded on these: real, and labelled with
# what the probe found (RWKV: rows of a batch mix in its one-token decode; MiniMax: the left pads
# enter its lightning-attention state)
TRANSFORMERS_DIFFERS = {
    ("rwkv", "hf-left"): "the prompts of a batch leak into each other",
    ("minimax", "hf-left"): "padding leaks into this model's state",
}
# no config says it: MPT builds ALiBi from the slot index, so right pads shift it
PROBE_REFUSED = {("mpt", "hf-right")}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny matrices: one thread is faster, and on shared cores far faster (no spinning workers)."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def prompt_ids() -> list[list[int]]:
    rng = random.Random(12)
    return [[rng.randrange(2, 2807) for _ in range(n)] for n in LENGTHS]


def attn_of(arch: str) -> str:
    return "eager" if arch in NO_SDPA else "sdpa"


_references: dict[str, list[list[tuple[int, dict[int, tuple[float, float]]]]]] = {}


def reference(arch: str, folder) -> list[list[tuple[int, dict[int, tuple[float, float]]]]]:
    """Per prompt, per step: (token, {candidate id: (logprob, logit)} for the top-k), by a plain loop."""
    if arch in _references:
        return _references[arch]
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation=attn_of(arch))
    model.eval()
    out = []
    with torch.inference_mode():
        for prompt in prompt_ids():
            ids, steps = list(prompt), []
            for _ in range(SETTINGS.max_new_tokens):
                logits = model(torch.tensor([ids])).logits[0, -1].float()
                logprobs = torch.log_softmax(logits, -1)
                top = torch.topk(logits, SETTINGS.top_k)
                token = int(torch.argmax(logits))
                steps.append((token, {i: (float(logprobs[i]), float(logits[i])) for i in top.indices.tolist()}))
                if token == EOS:
                    break
                ids.append(token)
            out.append(steps)
    _references[arch] = out
    return out


def mismatches(expected, trace) -> str | None:
    """None when ``trace`` matches the plain loop; else what differs first.

    A different token is accepted only where the loop's own top two are tied within the
    tolerance (then either is a correct greedy choice and the streams may part)."""
    got = trace.steps
    for index, (token, top) in enumerate(expected):
        if index >= len(got):
            return f"step {index}: trace ended after {len(got)} steps ({trace.finish_reason})"
        step = got[index]
        mine = {c.token_id: (c.logprob, c.logit) for c in step.top}
        floor = min(lp for lp, _ in top.values())
        for candidate in set(top) | set(mine):
            if candidate in top and candidate in mine:
                (lp_a, lg_a), (lp_b, lg_b) = top[candidate], mine[candidate]
                if abs(lp_a - lp_b) > TOLERANCE or abs(lg_a - lg_b) > TOLERANCE:
                    return (
                        f"step {index}: token {candidate} logprob {lp_b:.6f} vs {lp_a:.6f}, "
                        f"logit {lg_b:.6f} vs {lg_a:.6f}"
                    )
            elif abs((top.get(candidate) or mine[candidate])[0] - floor) > TOLERANCE:
                return f"step {index}: top-{SETTINGS.top_k} sets differ at token {candidate}"
        if step.token_id != token:
            if candidate_gap(top, token, step.token_id) <= TOLERANCE:
                return None  # an exact tie: both choices are greedy
            return f"step {index}: token {step.token_id} vs {token}"
    if len(got) != len(expected):
        return f"{len(got)} steps vs {len(expected)}"
    return None


def candidate_gap(top: dict[int, tuple[float, float]], a: int, b: int) -> float:
    if b not in top:
        return float("inf")
    return abs(top[a][0] - top[b][0])


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_engine_matches_plain_greedy_loop(tiny_model_dir, arch, engine):
    folder = tiny_model_dir(arch)
    spec = parse_engine_spec(engine, {"attn": attn_of(arch)})
    refused = REFUSED.get((arch, spec.name))
    if refused:
        with pytest.raises(GendiffError) as info:
            create_engine(spec, str(folder))
        message = str(info.value)
        assert "\n" not in message and spec.label in message and arch in message and refused in message
        recommended = message.rpartition("; use ")[2].replace(" or ", ", ").split(", ")
        assert recommended and set(recommended) <= RECOMMENDABLE, message
        wrong_here = {name for (a, name) in set(TRANSFORMERS_DIFFERS) | PROBE_REFUSED | set(REFUSED) if a == arch}
        assert not wrong_here & set(recommended), message
        return
    expected = reference(arch, folder)
    runner = create_engine(spec, str(folder))
    runner.load()
    traces = runner.generate(prompt_ids(), SETTINGS)
    problems = [
        f"prompt {trace.prompt_index} ({len(trace.prompt_token_ids)} tokens): {problem}"
        for trace, steps in zip(traces, expected)
        if (problem := mismatches(steps, trace))
    ]
    if (arch, spec.name) in PROBE_REFUSED:  # wrong, as the plain loop shows, and no config says so
        assert problems, f"{engine} on {arch} now matches the plain loop: drop it from PROBE_REFUSED"
        with pytest.raises(InputError) as info:
            verify(runner)
        message = str(info.value)
        assert "\n" not in message and spec.label in message and arch in message and "probe prompt" in message
        assert message.endswith("; use hf-single")
        return
    verdict = verify(runner)  # the probe on every engine that declares it: never a false refusal
    if (arch, spec.name) in TRANSFORMERS_DIFFERS:
        assert problems, f"{engine} on {arch} now matches the plain loop: drop it from TRANSFORMERS_DIFFERS"
        assert verdict is not None and verdict.status == DIFFERS
        assert verdict.note.startswith(TRANSFORMERS_DIFFERS[arch, spec.name]), verdict.note
        return
    assert not problems, f"{engine} on {arch}:\n" + "\n".join(problems)
    assert verdict is None or verdict.agrees, verdict


@pytest.mark.parametrize("arch", sorted(NO_SDPA))
def test_sdpa_refused_up_front_where_the_model_has_none(tiny_model_dir, arch):
    folder = tiny_model_dir(arch)
    for engine in ENGINES:
        spec = parse_engine_spec(engine, {"attn": "sdpa"})
        if (arch, spec.name) in REFUSED:
            continue  # refused for its own reason, asserted above
        with pytest.raises(GendiffError) as info:
            create_engine(spec, str(folder))
        message = str(info.value)
        assert "\n" not in message and arch in message and "--attn eager" in message


@pytest.fixture
def weight_loads(monkeypatch):
    """Every model load the HF engines ask for during the test (the real loader still runs)."""
    from gendiff.engines import hf

    calls = []
    real = hf.load_model

    def recording(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(hf, "load_model", recording)
    return calls


def test_cli_refuses_sdpa_once_before_any_model_work(tiny_model_dir, capsys, weight_loads):
    from gendiff.cli.main import main

    folder = tiny_model_dir("gptj")
    capsys.readouterr()
    code = main(["run", "--model", str(folder), "--quiet", "--max-new-tokens", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("gendiff: error: engine hf-single: model gptj (GPTJForCausalLM) has no sdpa attention")
    assert err[0].endswith("pass --attn eager")
    assert weight_loads == []  # refused before any weights load


def test_cli_refuses_packed_on_alibi_before_any_model_work(tiny_model_dir, capsys, weight_loads):
    from gendiff.cli.main import main

    folder = tiny_model_dir("bloom")
    capsys.readouterr()
    args = ["run", "--model", str(folder), "--attn", "eager", "--engines", "hf-single,packed", "--quiet"]
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("gendiff: error: engine packed: model bloom (BloomForCausalLM) uses ALiBi")
    assert weight_loads == []

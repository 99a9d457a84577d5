"""--stats on the ``openai`` engine against a real vLLM server (the session's one, tests/vllm_server.py):
echo + logprobs, checked against an independent teacher-forced pass written here (a plain float32
forward of the demo model, tests/helpers.py). In CI (CI=true) these must run, not skip.

The server caps logprobs at 20 (vLLM's --max-logprobs default), so gendiff's KLD for it is a lower
bound: stored as one and printed with ≥. δ, Δp and loss are exact.
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

TOLERANCE = 1e-5  # as tests/test_forced_vllm.py: the fed tokens' logprobs agreed within 8e-6
RELATIVE = 1e-6  # float32's ~7 digits on a logprob far from 0


def _post(server, body):
    import httpx

    return httpx.post(f"{server.root}/v1/completions", json={"model": "demo", **body}, timeout=60)


@pytest.fixture(scope="module")
def stats(vllm_server, tmp_path_factory):
    """``gendiff run --engines hf-single,openai:… --stats`` as a process: its snapshot and stdout."""
    out = tmp_path_factory.mktemp("forced-served") / "stats.json"
    spec = f"openai:url={vllm_server.url},model=demo"
    argv = ["run", "--engines", f"hf-single,{spec}", "--stats", "--dtype", "float32", "--max-new-tokens", "16"]
    result = subprocess.run(
        [sys.executable, "-m", "gendiff", *argv, "--quiet", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return spec, json.loads(out.read_text()), result.stdout, result.stderr


@pytest.fixture(scope="module")
def torch_pass(stats):
    return plain_teacher_forced(stats[1])


def test_the_echoed_prompt_has_no_logprob_for_its_first_token_and_logprobs_are_capped(vllm_server):
    ids = [0, 400, 500, 600]
    answer = _post(vllm_server, {"prompt": ids, "max_tokens": 1, "echo": True, "logprobs": 3, "temperature": 0})
    logprobs = answer.json()["choices"][0]["logprobs"]
    assert logprobs["token_logprobs"][0] is None and logprobs["top_logprobs"][0] is None
    assert len(logprobs["token_logprobs"]) == len(ids) + 1  # the prompt, then the one generated token
    assert all(isinstance(v, float) for v in logprobs["token_logprobs"][1:])
    refused = _post(vllm_server, {"prompt": ids, "max_tokens": 1, "echo": True, "logprobs": 2807})
    assert refused.status_code == 400 and "max allowed: 20" in refused.text  # what served_forced.CAP reads


def test_the_served_forced_pass_matches_a_plain_forward(vllm_server, stats, torch_pass):
    from gendiff.defaults import FORCED_LOGPROBS
    from gendiff.demo import demo_model_path
    from gendiff.engines import create_engine, engine_names, parse_engine_spec

    spec, snapshot, _, _ = stats
    engine = create_engine(parse_engine_spec(spec, {"dtype": "float32"}, engine_names()), str(demo_model_path()))
    prompts = [p["token_ids"] for p in snapshot["prompts"]]
    reported = engine.forced_pass(prompts, {row: tokens for row, (tokens, _) in enumerate(torch_pass)}, FORCED_LOGPROBS)
    assert reported.top_k == 20  # the server's cap, learnt from its refusal
    for row, (tokens, reference) in enumerate(torch_pass):
        assert [p.token for p in reported.rows[row]] == tokens
        for step, position in enumerate(reported.rows[row]):
            expected = reference[step]
            own = position.logprobs[position.ids.index(position.token)]
            assert abs(own - float(expected[position.token])) <= TOLERANCE, (row, step)
            for token, logprob in zip(position.ids, position.logprobs):
                assert abs(logprob - float(expected[token])) <= TOLERANCE + RELATIVE * abs(logprob), (row, step)
            top = expected.argsort(descending=True)
            if float(expected[top[19]] - expected[top[20]]) > TOLERANCE:  # no tie at the edge of the top 20
                assert set(top[:20].tolist()) <= set(position.ids) <= set(top[:20].tolist()) | {position.token}


def test_stats_of_the_served_engine_are_exact_for_the_fed_tokens_and_a_lower_bound_for_the_kl(stats, torch_pass):
    import torch

    spec, snapshot, stdout, stderr = stats
    for prompt, (tokens, reference) in zip(snapshot["prompts"], torch_pass):
        own = reference.gather(-1, torch.tensor(tokens)[:, None])[:, 0]
        numbers = prompt["statistics"][spec]
        assert numbers["loss"] == pytest.approx(float(-own.mean()), abs=TOLERANCE)
        assert numbers["kld_top_k"] == 20 and numbers["kld_bound"] == "lower"
        assert all(0.0 <= kld <= 1e-9 for kld in numbers["kld_steps"])
    total = snapshot["statistics"][spec]
    assert total["kld_top_k"] == 20 and total["kld_bound"] == "lower"
    assert -TOLERANCE <= total["full"]["delta"]["min"] <= total["full"]["delta"]["max"] <= TOLERANCE
    row = next(line for line in stdout.splitlines() if line.startswith(f"  {spec} "))
    assert row.count("≥") == 4  # KLD mean, median, p99, max
    assert f"{spec}: ≥ marks a lower bound: it reported only its top 20 tokens" in stdout
    assert "echo + logprobs=20" in stderr

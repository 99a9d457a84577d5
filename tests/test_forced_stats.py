"""--stats on engines that report logprobs on given tokens (run/forced.py), model-free: the KL
(whole vocabulary) and its lower bound (top k only) against numpy, the bound stored and shown as
one, and llama.cpp's server refused in one line before any model work."""

import json

import numpy as np
import pytest
from helpers import two_engine_snapshot

from gendiff.cli.main import main
from gendiff.cli.summary import statistics_table
from gendiff.errors import EngineError
from gendiff.io.snapshots import snapshot_from_data, snapshot_json
from gendiff.records.forced import ForcedPass, ForcedPosition
from gendiff.records.llama_stats import full_set
from gendiff.records.statistics import DistributionStats, Positions, aggregate, summarize
from gendiff.run.forced import compare_forced

VOCAB = 40


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max()
    return x - np.log(np.exp(x).sum())


def kl(p_log: np.ndarray, q_log: np.ndarray) -> float:
    return float((np.exp(p_log) * (p_log - q_log)).sum())


def pair(rng: np.random.Generator, spread: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """The reference's float32 logits and the engine's float32 logprobs (its logits nudged)."""
    logits = rng.normal(0, 3, VOCAB).astype(np.float32)
    engine = log_softmax((logits + rng.normal(0, spread, VOCAB)).astype(np.float64)).astype(np.float32)
    return logits, engine


def reference_logits(logits_by_key):
    import torch

    return {key: torch.tensor(value) for key, value in logits_by_key.items()}


def test_whole_vocabulary_gives_the_kl_and_the_reported_logprob():
    rng = np.random.default_rng(0)
    logits, reported, tokens = {}, {}, [3, 17, 29]
    for step, token in enumerate(tokens):
        logits[(0, step)], engine = pair(rng)
        order = rng.permutation(VOCAB)  # a server may list the candidates in any order
        reported[step] = ForcedPosition(token, tuple(int(i) for i in order), tuple(float(engine[i]) for i in order))
    forced = ForcedPass({0: [reported[s] for s in range(len(tokens))]}, None, "test")
    positions = compare_forced(forced, reference_logits(logits), "engine")[0]
    assert positions.kld_top_k is None
    for step, token in enumerate(tokens):
        p_log = log_softmax(logits[(0, step)].astype(np.float64))
        q = np.array(reported[step].logprobs, dtype=np.float64)[np.argsort(reported[step].ids)]
        assert positions.kld[step] == pytest.approx(kl(p_log, log_softmax(q)), abs=1e-12)
        assert positions.nll[step] == -q[token]  # the number the engine reported, not renormalised
        assert positions.dp[step] == pytest.approx(np.exp(q[token]) - np.exp(p_log[token]), abs=1e-12)
        assert positions.same[step] == (int(np.argmax(q)) == int(np.argmax(p_log)))
        assert positions.chose_target[step] == (int(np.argmax(q)) == token)


@pytest.mark.parametrize("k", [1, 5, 20])
def test_top_k_gives_a_lower_bound_that_a_shared_shift_does_not_move(k):
    rng = np.random.default_rng(k)
    for trial in range(50):
        logits, engine = pair(rng, spread=0.05 + trial / 50)
        token = int(rng.integers(VOCAB))
        top = [int(i) for i in np.argsort(-engine, kind="stable")[:k]]
        shown = top + ([token] if token not in top else [])
        p_log = log_softmax(logits.astype(np.float64))
        p_in = p_log[shown]
        p_given = p_in - np.log(np.exp(p_in).sum())
        q_given = log_softmax(engine[shown].astype(np.float64))
        expected = float(np.exp(p_in).sum()) * kl(p_given, q_given)  # P(S)·KL(P|S ‖ Q|S)
        found = []
        for shift in (0.0, 5e-7, -3e-6):  # a server's float32 normalisation error: every logprob alike
            position = ForcedPosition(token, tuple(shown), tuple(float(engine[i]) + shift for i in shown))
            numbers = compare_forced(ForcedPass({0: [position]}, k, "test"), reference_logits({(0, 0): logits}), "e")
            found.append(numbers[0].kld[0])
            assert numbers[0].kld_top_k == k
            assert numbers[0].nll[0] == pytest.approx(-(float(engine[token]) + shift), abs=1e-12)
        assert found[0] == pytest.approx(expected, abs=1e-12)
        assert found[1] == pytest.approx(found[0], abs=1e-12) and found[2] == pytest.approx(found[0], abs=1e-12)
        assert 0.0 <= found[0] <= kl(p_log, engine.astype(np.float64)) + 1e-7  # never above the full KL


def test_a_fed_token_without_a_logprob_is_an_engine_error():
    logits, engine = pair(np.random.default_rng(3))
    position = ForcedPosition(7, (1, 2), (float(engine[1]), float(engine[2])))
    with pytest.raises(EngineError, match="no logprob reported for the fed token 7"):
        compare_forced(ForcedPass({0: [position]}, 2, "test"), reference_logits({(0, 0): logits}), "served")


def _stats(top_k=None) -> DistributionStats:
    kld, dp, nll = [1e-4, 2e-4, 3e-4] * 4, [1e-3, -1e-3, 0.0] * 4, [0.5, 0.6, 0.7] * 4
    stats = summarize(kld, [True] * 12, dp, nll)
    full = full_set(kld, dp, [True] * 12, nll, [n + 1e-3 for n in nll])
    return DistributionStats(**{**stats.__dict__, "full": full, "kld_top_k": top_k})


def test_the_lower_bound_is_stored_in_the_snapshot_and_old_snapshots_still_open():
    snapshot = two_engine_snapshot(6)
    snapshot.statistics = {"hf-single": _stats(), "hf-left": _stats(top_k=20)}
    data = json.loads(snapshot_json(snapshot))
    assert data["statistics"]["hf-left"]["kld_top_k"] == 20 and data["statistics"]["hf-left"]["kld_bound"] == "lower"
    assert "kld_top_k" not in data["statistics"]["hf-single"] and "kld_bound" not in data["statistics"]["hf-single"]
    again = snapshot_from_data(data, "test")
    assert again.statistics["hf-left"].kld_lower_bound and not again.statistics["hf-single"].kld_lower_bound
    old = json.loads(json.dumps(data))
    del old["statistics"]["hf-left"]["kld_top_k"], old["statistics"]["hf-left"]["kld_bound"]
    assert not snapshot_from_data(old, "old").statistics["hf-left"].kld_lower_bound  # as written before
    half = json.loads(json.dumps(data))
    del half["statistics"]["hf-left"]["kld_bound"]
    with pytest.raises(Exception, match="kld_bound"):
        snapshot_from_data(half, "half")


def test_the_smallest_k_of_any_prompt_labels_the_engine():
    one, two, whole = Positions({0: 0.1}, {0: True}, {0: 0.0}, {0: 0.2}), Positions(), Positions()
    one.kld_top_k, two.kld, two.same, two.dp, two.nll, two.kld_top_k = 20, {0: 0.3}, {0: True}, {0: 0.0}, {0: 0.1}, 5
    whole.kld, whole.same, whole.dp, whole.nll = {0: 0.3}, {0: True}, {0: 0.0}, {0: 0.1}
    assert aggregate({0: one, 1: two, 2: whole}).kld_top_k == 5
    assert aggregate({2: whole}).kld_top_k is None


def test_every_printed_kld_of_a_lower_bound_says_so():
    text = statistics_table({"hf-single": _stats(), "served": _stats(top_k=20)}, ["hf-single", "served"], "stats:")
    rows = {
        line.split()[0]: line
        for line in text.splitlines()
        if line.startswith("  hf-single ") or line.startswith("  served ")
    }
    assert "≥" not in rows["hf-single"] and rows["served"].count("≥") == 4  # mean, median, p99, max
    assert "served: ≥ marks a lower bound: it reported only its top 20 tokens" in text
    kld_lines = [line for line in text.splitlines() if line.strip().startswith("KLD mean")]
    assert len(kld_lines) == 2 and "≥" not in kld_lines[0]
    assert kld_lines[1].count("≥") == 1 + len(_stats().full["kld"])  # the mean and every percentile


def test_llamacpp_is_refused_in_one_line_before_any_model_work(capsys, monkeypatch):
    import gendiff.engines.conformance as conformance
    import gendiff.engines.hf as hf
    import gendiff.engines.loading as loading

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the refusal")

    for module in (loading, hf, conformance):  # every name a model is loaded by
        monkeypatch.setattr(module, "load_model", no_model)
    spec = "openai:url=http://127.0.0.1:9/v1,model=demo,flavour=llamacpp"
    assert main(["run", "--engines", f"hf-single,{spec}", "--stats", "--max-new-tokens", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        f"gendiff: error: engine {spec}: llama.cpp's server returns no logprobs"
    )
    assert "can't be teacher-forced" in err

"""The summary prints llama.cpp's whole set and the float32-vs-uint16 note (model-free)."""

import numpy as np

from gendiff.cli.summary import statistics_table
from gendiff.records.llama_stats import full_set
from gendiff.records.statistics import DistributionStats, summarize


def test_summary_prints_the_whole_set():
    rng = np.random.default_rng(1)
    n = 50
    base = rng.exponential(1.0, n)
    nll = base + 0.002
    kld, dp = list(rng.exponential(1e-3, n)), list(rng.normal(0, 1e-3, n))
    same = [True] * n
    stats = summarize(kld, same, dp, list(nll), keep_steps=False)
    full = full_set(kld, dp, same, list(nll), list(base))
    stats = DistributionStats(**{**stats.__dict__, "full": full})
    again = DistributionStats.from_dict(stats.to_dict())  # the snapshot keeps it
    assert again.full == full
    text = statistics_table({"hf-batched": again}, ["hf-batched"], "stats:")
    for needle in (
        "PPL(Q)",
        "PPL(base)",
        "Cor(ln PPL(Q)",
        "ln(PPL(Q)/PPL(base))",
        "PPL(Q)−PPL(base)",
        "p99.9",
        "p0.1",
        "RMS Δp",
        "same top p",
        "δ = logprob_engine",
        "float32",
        "uint16",
    ):
        assert needle in text, needle
    # δ is −0.002 nats at every position (the engine gives the token 0.002 nats less)
    assert "mean -0.002000" in text

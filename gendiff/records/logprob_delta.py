"""Per-token logprob agreement on the same tokens: δ = log q(t) − log p(t), in nats.

What RL frameworks log between the trainer and the rollout engine (``train_rollout_logprob_abs_diff``,
an RMS δ table): at every teacher-forced position, the engine's logprob of the token that comes
next minus the reference's. Unlike the KL divergence it needs only the fed token's logprob, so it
is exact for every engine that reports that one number, whatever top-k it reports besides.
"""

from __future__ import annotations

import math
from dataclasses import replace

from gendiff.records.statistics import DistributionStats, Positions, quantile

# the percentiles reported (linear interpolation, numpy's default), as (key, fraction)
DELTA_PERCENTILES = (("p1", 0.01), ("p5", 0.05), ("p50", 0.5), ("p95", 0.95), ("p99", 0.99))


def delta_summary(values: list[float]) -> dict[str, float] | None:
    """mean, mean |δ|, RMS, min, the percentiles and max of ``values``; None when empty."""
    if not values:
        return None
    n = len(values)
    summary = {
        "mean": sum(values) / n,
        "mean_abs": sum(abs(v) for v in values) / n,
        "rms": math.sqrt(sum(v * v for v in values) / n),
        "min": min(values),
    }
    summary.update({key: quantile(values, q) for key, q in DELTA_PERCENTILES})
    summary["max"] = max(values)
    return summary


def with_delta(stats: DistributionStats, positions: list[Positions]) -> DistributionStats:
    """``stats`` with the δ summary of ``positions`` (in position order) and, when any of them
    came from an engine's top k only, the smallest such k (its KL figures are lower bounds)."""
    values = [p.delta[step] for p in positions for step in sorted(p.delta)]
    tops = [p.kld_top_k for p in positions if p.kld_top_k is not None]
    return replace(stats, delta=delta_summary(values), kld_top_k=min(tops) if tops else None)

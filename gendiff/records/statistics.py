"""How far apart two engines' next-token distributions are, over whole continuations.

The set ``llama-perplexity --kl-divergence`` reports. Every engine is teacher-forced on the same
tokens (the reference's greedy continuation, or given text for ``gendiff score``); at every
position the engine's full next-token distribution Q is compared with the reference's P:

- ``kld``: KL(P ‖ Q) = Σ p (log p − log q), in nats (the engine "from" the reference);
- ``same_top1``: whether both distributions have the same argmax;
- ``dp``: q(t) − p(t), the change of the probability of the token t that comes next;
- ``loss``: −log q(t), the engine's per-token cross-entropy on that text.

Full distributions are vocabulary-sized, so none is stored in a trace: the reference's pass
keeps its logits (float32) in memory until the other engines' passes are done, and every other
engine's pass reduces each position to these four numbers as it runs (an observer on the
engine's own decode loop: the same batches, shapes and kernels as its plain run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class DistributionStats:
    """Per-position comparisons reduced to llama.cpp's summary. ``kld_steps``: KL per position
    (per prompt only: the sparkline); ``kld_max_prompt``: on an aggregate, where the max was."""

    positions: int
    kld_mean: float | None
    kld_median: float | None
    kld_p99: float | None
    kld_max: float | None
    kld_max_position: int | None
    same_top1: float | None
    dp_mean: float | None
    dp_rms: float | None
    loss: float | None = None
    kld_steps: tuple[float, ...] = ()
    kld_max_prompt: int | None = None
    full: dict[str, Any] | None = None  # llama.cpp's whole set and δ (gendiff.records.llama_stats)
    # None: every KL figure here (full's too) is over the whole vocabulary; k: over the engine's
    # top k per position: P(S)·KL(P|S ‖ Q|S) on that set S, a lower bound on the KL (run/forced.py)
    kld_top_k: int | None = None

    @property
    def kld_lower_bound(self) -> bool:
        """Whether the KL figures are only lower bounds (shown with ≥)."""
        return self.kld_top_k is not None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "positions": self.positions,
            "kld_mean": self.kld_mean,
            "kld_median": self.kld_median,
            "kld_p99": self.kld_p99,
            "kld_max": self.kld_max,
            "kld_max_position": self.kld_max_position,
            "same_top1": self.same_top1,
            "dp_mean": self.dp_mean,
            "dp_rms": self.dp_rms,
            "loss": self.loss,
        }
        if self.kld_steps:
            data["kld_steps"] = list(self.kld_steps)
        if self.kld_max_prompt is not None:
            data["kld_max_prompt"] = self.kld_max_prompt
        if self.full is not None:
            data["full"] = self.full
        if self.kld_top_k is not None:
            data["kld_top_k"] = self.kld_top_k
            data["kld_bound"] = "lower"
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DistributionStats:
        return cls(
            positions=int(data["positions"]),
            kld_mean=data.get("kld_mean"),
            kld_median=data.get("kld_median"),
            kld_p99=data.get("kld_p99"),
            kld_max=data.get("kld_max"),
            kld_max_position=data.get("kld_max_position"),
            same_top1=data.get("same_top1"),
            dp_mean=data.get("dp_mean"),
            dp_rms=data.get("dp_rms"),
            loss=data.get("loss"),
            kld_steps=tuple(float(v) for v in data.get("kld_steps") or ()),
            kld_max_prompt=data.get("kld_max_prompt"),
            full=data.get("full"),
            kld_top_k=data.get("kld_top_k"),
        )


@dataclass
class Positions:
    """The per-position numbers of one (prompt, engine), indexed by step."""

    kld: dict[int, float] = field(default_factory=dict)
    same: dict[int, bool] = field(default_factory=dict)
    dp: dict[int, float] = field(default_factory=dict)
    nll: dict[int, float] = field(default_factory=dict)
    chose_target: dict[int, bool] = field(default_factory=dict)  # the engine's own argmax is the token fed
    kld_top_k: int | None = None  # the smallest k, when the engine reported only its top k at some position


def quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    where = q * (len(ordered) - 1)
    low = math.floor(where)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (where - low)


def summarize(
    kld: list[float], same: list[bool], dp: list[float], nll: list[float], keep_steps: bool = True
) -> DistributionStats:
    """Reduce per-position numbers (in position order) to a :class:`DistributionStats`."""
    n = len(kld)
    if n == 0:
        return DistributionStats(0, None, None, None, None, None, None, None, None)
    top = max(range(n), key=lambda i: kld[i])
    return DistributionStats(
        positions=n,
        kld_mean=sum(kld) / n,
        kld_median=quantile(kld, 0.5),
        kld_p99=quantile(kld, 0.99),
        kld_max=kld[top],
        kld_max_position=top,
        same_top1=sum(same) / n,
        dp_mean=sum(dp) / n,
        dp_rms=math.sqrt(sum(v * v for v in dp) / n),
        loss=sum(nll) / len(nll) if nll else None,
        kld_steps=tuple(kld) if keep_steps else (),
    )


def from_positions(positions: Positions) -> DistributionStats:
    steps = sorted(positions.kld)
    stats = summarize(
        [positions.kld[s] for s in steps],
        [positions.same[s] for s in steps],
        [positions.dp[s] for s in steps],
        [positions.nll[s] for s in steps if s in positions.nll],
    )
    return replace(stats, kld_top_k=positions.kld_top_k) if positions.kld_top_k is not None else stats


def aggregate(per_prompt: dict[int, Positions]) -> DistributionStats:
    """One engine over all prompts: every position of every prompt counts once."""
    kld, same, dp, nll, where = [], [], [], [], []
    for prompt in sorted(per_prompt):
        positions = per_prompt[prompt]
        for step in sorted(positions.kld):
            kld.append(positions.kld[step])
            same.append(positions.same[step])
            dp.append(positions.dp[step])
            if step in positions.nll:
                nll.append(positions.nll[step])
            where.append((prompt, step))
    stats = summarize(kld, same, dp, nll, keep_steps=False)
    tops = [p.kld_top_k for p in per_prompt.values() if p.kld_top_k is not None]
    if tops:  # the smallest k of any prompt labels the whole engine's KL
        stats = replace(stats, kld_top_k=min(tops))
    if not kld:
        return stats
    prompt, step = where[max(range(len(kld)), key=lambda i: kld[i])]
    return replace(stats, kld_max_position=step, kld_max_prompt=prompt)

"""Nondeterminism protocols (``gendiff determinism``): the trial layouts and the statistics of
N completions of one watched prompt. Pure data and arithmetic; :mod:`gendiff.run.determinism`
runs the trials.

A trial is one engine call: the prompts of a batch in row order (indices into the protocol's
prompt pool) and the row of the watched prompt. Its statistics are those of Thinking Machines'
table (1000 completions: 80 unique, the most common 78 times, then "992 vs 8" at the first
split): unique completions, the most common one's count, the first split position of every
trial against the most common, the token pairs there with counts, and TARr@N, the fraction of
trials whose raw output equals the most common.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

PROTOCOLS = ("needle", "repeat", "single", "mixed", "prefix")


@dataclass(frozen=True)
class Trial:
    """One engine call: ``prompts`` (pool indices, row order) and ``row``, the watched prompt's row."""

    prompts: tuple[int, ...]
    row: int

    @property
    def watched(self) -> int:
        return self.prompts[self.row]

    def to_dict(self) -> dict[str, Any]:
        return {"prompts": list(self.prompts), "row": self.row}


def layout(protocol: str, trials: int, seed: int, fillers: int, max_batch: int) -> list[Trial]:
    """The trials of ``protocol``; the pool is the watched prompt (index 0), then ``fillers``
    other prompts (1..fillers). Reproducible from ``seed``:

    - needle: the prompt alone, then trials at a random batch size (2..max_batch) beside random
      fillers at a random row;
    - repeat: the prompt alone, ``trials`` times;
    - single: the prompt repeated to batch sizes 1..trials (watched: a random row);
    - mixed: as needle, the fillers short and long prompts;
    - prefix: as needle, the fillers the prompt's own prefixes (one text cut at several lengths),
      so a prefix cache is cold for the prompt alone and warm beside its cuts."""
    rng = random.Random(seed)
    if protocol == "repeat":
        return [Trial((0,), 0) for _ in range(trials)]
    if protocol == "single":
        return [Trial((0,) * size, rng.randrange(size)) for size in range(1, trials + 1)]
    if protocol not in ("needle", "mixed", "prefix"):
        raise ValueError(f"unknown protocol {protocol!r}")
    result = [Trial((0,), 0)]
    for _ in range(trials - 1):
        size = rng.randint(2, max(2, max_batch))
        others = [rng.randint(1, fillers) for _ in range(size - 1)] if fillers else [0] * (size - 1)
        row = rng.randrange(size)
        result.append(Trial(tuple(others[:row] + [0] + others[row:]), row))
    return result


@dataclass(frozen=True)
class Split:
    """Trials whose first difference from the most common completion is at ``step`` with the
    most common's token ``common`` against ``other`` (None: that side ended); ``count`` of them,
    the margin class there (:mod:`gendiff.records.classify`), the first such trial."""

    step: int
    common: int | None
    other: int | None
    count: int
    margin_class: str | None = None
    first_trial: int = 0
    common_text: str = ""
    other_text: str = ""


@dataclass(frozen=True)
class Spread:
    """N completions of one prompt by one engine."""

    trials: int
    unique: int
    most_common: int
    mode_trial: int
    split_histogram: dict[int, int]
    splits: tuple[Split, ...]
    classes: dict[int, str | None] = field(default_factory=dict)

    @property
    def agreement(self) -> float:
        """TARr@N: the fraction of trials whose raw output equals the most common."""
        return self.most_common / self.trials if self.trials else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "trials": self.trials,
            "unique": self.unique,
            "most_common": self.most_common,
            "mode_trial": self.mode_trial,
            "tarr": self.agreement,
            "split_histogram": {str(k): v for k, v in sorted(self.split_histogram.items())},
            "splits": [s.__dict__ for s in self.splits],
        }


def first_difference(a: tuple[int, ...], b: tuple[int, ...]) -> int | None:
    """The first step where ``a`` and ``b`` differ (one ending counts); None when equal."""
    if a == b:
        return None
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def spread(
    completions: list[tuple[int, ...]],
    classes: dict[int, str | None] | None = None,
    texts: dict[int, str] | None = None,
) -> Spread:
    """The statistics of ``completions`` (one per trial, in trial order). The most common is the
    one seen most often, ties to the first seen; ``classes`` maps a trial to the margin class of
    its first split (from its Divergence against the most common's trace); ``texts`` each
    token's text (shown raw: the caller makes it visible)."""
    classes, texts = classes or {}, texts or {}
    counts = Counter(completions)
    best = max(counts.values()) if counts else 0
    mode_trial = next((i for i, c in enumerate(completions) if counts[c] == best), 0)
    mode = completions[mode_trial] if completions else ()
    histogram: Counter[int] = Counter()
    pairs: dict[tuple[int, int | None, int | None], list[int]] = {}
    for trial, completion in enumerate(completions):
        step = first_difference(mode, completion)
        if step is None:
            continue
        histogram[step] += 1
        common = mode[step] if step < len(mode) else None
        other = completion[step] if step < len(completion) else None
        pairs.setdefault((step, common, other), []).append(trial)
    splits = tuple(
        Split(
            step,
            common,
            other,
            len(trials),
            classes.get(trials[0]),
            trials[0],
            "" if common is None else texts.get(common, ""),
            "" if other is None else texts.get(other, ""),
        )
        for (step, common, other), trials in sorted(pairs.items(), key=lambda kv: (-len(kv[1]), kv[0][0], kv[1][0]))
    )
    return Spread(len(completions), len(counts), best, mode_trial, dict(histogram), splits, dict(classes))


@dataclass(frozen=True)
class Determinism:
    """One protocol run: its pool of prompts, the seed and the trial layout it gave, per engine
    the watched prompt's completions (token ids), their Spread and the bisection of the most
    common split (None: no split, or not asked; a Bisection record otherwise). ``partial``: the
    run was cancelled, ``trials`` holds only the trials that finished (``planned`` of them were
    laid out). ``traces``: per engine the watched prompt's Trace of each trial (for the app's
    divergence view; not written to JSON)."""

    protocol: str
    seed: int
    pool: tuple[str, ...]
    trials: tuple[Trial, ...]
    completions: dict[str, list[tuple[int, ...]]]
    spreads: dict[str, Spread]
    bisections: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    partial: bool = False
    planned: int = 0
    traces: dict[str, list[Any]] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "seed": self.seed,
            "pool": list(self.pool),
            "trials": [t.to_dict() for t in self.trials],
            "engines": {
                label: {
                    **spread.to_dict(),
                    "completions": [list(c) for c in self.completions[label]],
                    "bisection": self.bisections[label].to_dict() if self.bisections.get(label) else None,
                }
                for label, spread in self.spreads.items()
            },
            "errors": dict(self.errors),
            **({"partial": True, "planned": self.planned} if self.partial else {}),
        }

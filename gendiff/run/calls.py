"""Which rows each engine's call holds when a run keeps only some of its prompts (the app's ``r``:
the prompt's whole original call is run again, one prompt's results are taken).

An engine that batches must run the whole call (its other members change the kept prompt's
result: that is the batch effect being reproduced). An engine that declares ``isolates_prompts``
computes each prompt alone, so the other members can't change its result: it runs only the kept
rows. Each call is recorded as it truly ran (:class:`gendiff.records.snapshot.Batch`): the
batching engines' call over every row, the isolating engines' call over the kept rows.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Call:
    """One engine call of a run: its id in the run's batch record, the engines that make it (in
    run order) and the prompts it holds (session positions, in row order)."""

    id: int
    engines: tuple[str, ...]
    indices: tuple[int, ...]


def plan_calls(
    order: list[str], isolates: Mapping[str, bool], indices: list[int], keep: Collection[int] | None = None
) -> list[Call]:
    """The calls of a run of engines ``order`` over ``indices`` of which ``keep`` are kept (None:
    all). Every engine runs ``indices`` unless some rows are not kept: then the engines that
    isolate prompts run only the kept rows, in their order, in a call of their own; a call of them
    with no row is left out (its engines don't run). Ids are fixed by the plan (0 the whole call, then the kept
    rows' call), not by which engines later finish."""
    kept = [i for i in indices if keep is None or i in keep]
    if kept == indices:  # one call, every engine (also over no prompt at all: the run says so)
        return [Call(0, tuple(order), tuple(indices))]
    batching = tuple(label for label in order if not isolates[label])
    alone = tuple(label for label in order if isolates[label])
    groups = [
        (engines, rows) for engines, rows in ((batching, tuple(indices)), (alone, tuple(kept))) if engines and rows
    ]
    return [Call(n, engines, rows) for n, (engines, rows) in enumerate(groups)]


def rows_of(calls: list[Call]) -> dict[str, tuple[int, ...]]:
    """Engine label -> the prompts (session positions) its call holds."""
    return {label: call.indices for call in calls for label in call.engines}

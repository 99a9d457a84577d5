"""One shard of a run: the prompts whose text hashes into shard I of N (:mod:`gendiff.records.shard`),
run by gendiff's own pipeline in one Session (so the prompts that share an engine call are the
shard's, in the prompt file's order, and the snapshot records that call as any run does), the
snapshot marked with its shard. ``gendiff run --shards N --ray`` runs this in each Ray task;
:func:`merge_snapshots` (:mod:`gendiff.io.merge`) joins the results."""

from __future__ import annotations

from collections.abc import Sequence

from gendiff.records.shard import select_shard
from gendiff.run.options import RunOptions
from gendiff.run.pipeline import Diagnoses, Outcome, run_pipeline
from gendiff.run.session import Session


def shard_positions(prompts: Sequence[str], count: int) -> dict[int, list[int]]:
    """Shard number -> the positions of its prompts, for the shards that hold any."""
    found = {index: select_shard(prompts, index, count)[0] for index in range(1, count + 1)}
    return {index: positions for index, positions in found.items() if positions}


def run_shard(
    options: RunOptions, prompts: Sequence[str], index: int, count: int, diagnoses: Diagnoses | None = None
) -> Outcome:
    """Run shard ``index`` of ``count`` of ``prompts`` (every engine of ``options``, the stages
    of ``diagnoses``); the outcome's snapshot carries the shard record, its prompt ids are
    positions in ``prompts``."""
    positions, shard = select_shard(prompts, index, count)
    session = Session(options.config(), [prompts[i] for i in positions], positions)
    outcome = run_pipeline(session, diagnoses or Diagnoses())
    outcome.snapshot.shard = shard
    return outcome

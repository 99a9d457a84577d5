"""``gendiff merge``: the snapshots of several shards of one run (``gendiff run --shard I/N``)
joined into one snapshot, refused when they are not shards of the same run.

Shards of one run share the model (all but its path: each machine has its own), the decoding,
the reference, the engines with their settings, the environment, the gendiff version and the
prompt list they split (its digest and length); their shards and their prompts do not overlap.
The merged snapshot holds every prompt of every shard in the prompt list's order (prompt ids are
positions in that list), each shard's engine calls renumbered after the ones before it, and a
shard record naming every shard that went in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from gendiff.errors import InputError
from gendiff.records.shard import Shard
from gendiff.records.snapshot import Batch, PromptResult, Snapshot

# what every shard of one run shares, as (field, how to read it from a snapshot)
_SHARED: tuple[tuple[str, Any], ...] = (
    ("model", lambda s: {k: v for k, v in s.model.items() if k != "path"}),
    ("decoding", lambda s: s.decoding),
    ("reference", lambda s: s.reference),
    ("engines", lambda s: [{k: v for k, v in e.items() if k != "error"} for e in s.engines]),
    ("environment", lambda s: s.environment),
    ("gendiff_version", lambda s: s.gendiff_version),
    ("shard.count", lambda s: s.shard.count),
    ("shard.rule", lambda s: s.shard.rule),
    ("shard.prompts_total", lambda s: s.shard.total),
    ("shard.prompts_sha256", lambda s: s.shard.prompts_sha256),
)


def merge_snapshots(parts: Sequence[tuple[str, Snapshot]]) -> Snapshot:
    """One snapshot of the shards ``parts`` ((file name, snapshot), at least one), prompts in the
    prompt list's order. Raises InputError (one line: which file, which field) when one is not a
    shard's, was written mid-run, holds run-wide statistics, or differs from the first in a field
    that shards of one run share, or when two hold the same shard or the same prompt."""
    if not parts:
        raise InputError("merge: no snapshots given; name the shard snapshots to join")
    for name, snapshot in parts:
        _check_mergeable(name, snapshot)
    first_name, first = parts[0]
    for name, snapshot in parts[1:]:
        for field, read in _SHARED:
            if read(snapshot) != read(first):
                raise InputError(
                    f"merge {name}: {field} differs from {first_name}'s ({_difference(read(first), read(snapshot))}); "
                    "merge only the shards of one run"
                )
    shard_owner: dict[int, str] = {}
    prompt_owner: dict[int, str] = {}
    for name, snapshot in parts:
        assert snapshot.shard is not None  # _check_mergeable
        for index in snapshot.shard.indices:
            if index in shard_owner:
                raise InputError(
                    f"merge {name}: shard.indices: shard {index}/{snapshot.shard.count} is also in "
                    f"{shard_owner[index]}; give each shard once"
                )
            shard_owner[index] = name
        for prompt in snapshot.prompts:
            if prompt.id in prompt_owner:
                raise InputError(
                    f"merge {name}: prompts: prompt {prompt.id + 1} is also in {prompt_owner[prompt.id]}; "
                    "give each shard once"
                )
            prompt_owner[prompt.id] = name
    return _joined([snapshot for _, snapshot in parts])


def _check_mergeable(name: str, snapshot: Snapshot) -> None:
    if snapshot.shard is None:
        raise InputError(
            f"merge {name}: shard: not a shard's snapshot (no shard record); merge joins the snapshots of "
            "gendiff run --shard I/N"
        )
    if snapshot.partial:
        raise InputError(f"merge {name}: partial: written while its run was going; merge finished shards only")
    if snapshot.sources:
        raise InputError(f"merge {name}: sources: a comparison of two snapshots, not a run's; merge the runs")
    if snapshot.statistics:
        raise InputError(
            f"merge {name}: statistics: --stats totals over one shard's prompts can't be joined; "
            "run --stats without --shard"
        )


def _difference(expected: Any, found: Any) -> str:
    """The first key (or the value) where two values of a field differ, shown short."""
    if isinstance(expected, dict) and isinstance(found, dict):
        key = next(k for k in [*expected, *found] if expected.get(k) != found.get(k))
        return f"{key}: {_short(found.get(key))} vs {_short(expected.get(key))}"
    if isinstance(expected, list) and isinstance(found, list):
        if len(expected) != len(found):
            return f"{len(found)} entries vs {len(expected)}"
        at = next(i for i, (a, b) in enumerate(zip(expected, found)) if a != b)
        return f"entry {at + 1}: {_difference(expected[at], found[at])}"
    return f"{_short(found)} vs {_short(expected)}"


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _joined(snapshots: list[Snapshot]) -> Snapshot:
    """The union, each snapshot's engine calls renumbered after the previous ones'."""
    ordered = sorted(snapshots, key=lambda s: min(s.shard.indices) if s.shard else 0)
    prompts: list[PromptResult] = []
    batches: list[Batch] = []
    notes: list[str] = []
    errors: dict[str, str] = {}
    for snapshot in ordered:
        assert snapshot.shard is not None
        renumber = {batch.id: len(batches) + n for n, batch in enumerate(snapshot.batches)}
        batches += [replace(batch, id=renumber[batch.id]) for batch in snapshot.batches]
        for prompt in snapshot.prompts:
            prompts.append(replace(prompt, batches={label: renumber[b] for label, b in prompt.batches.items()}))
        notes += [note for note in snapshot.notes if note not in notes]
        for engine in snapshot.engines:
            if engine.get("error") and engine["label"] not in errors:
                errors[engine["label"]] = f"shard {snapshot.shard.label}: {engine['error']}"
    prompts.sort(key=lambda prompt: prompt.id)  # ids are positions in the prompt list: its order
    first = ordered[0]
    assert first.shard is not None
    indices = tuple(sorted(i for s in ordered for i in (s.shard.indices if s.shard else ())))
    engines = [{**engine, "error": errors.get(engine["label"])} for engine in first.engines]
    return replace(
        first,
        engines=engines,
        prompts=prompts,
        batches=batches,
        notes=notes,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        shard=Shard(indices, first.shard.count, first.shard.total, first.shard.prompts_sha256, first.shard.rule),
    )

"""Re-check a lower-precision run's divergences in float32: is it rounding, or something else?

The diverging (prompt, engine) pairs are re-run with the same engines, the same prompts in the
same batches, only the dtype changed. If the two engines then agree, the divergence was
rounding noise of the lower precision; if they still differ, it is not.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from gendiff.defaults import RECHECK_DTYPE
from gendiff.errors import Cancelled, GendiffError
from gendiff.records.events import OnEvent
from gendiff.records.recheck import AGREES, DIVERGES, RECHECK_DTYPES, Recheck
from gendiff.records.snapshot import Snapshot
from gendiff.run.session import Session


def recheck(
    session: Session,
    snapshot: Snapshot,
    dtype: str = RECHECK_DTYPE,
    on_event: OnEvent | None = None,
    cancel: threading.Event | None = None,
) -> list[str]:
    """Attach a :class:`Recheck` to every token or length divergence of ``snapshot`` whose two
    engines did not both already run in ``dtype``; returns notes for what was left out (an engine
    whose dtype its server decides can't be re-run in another: it is named, not re-checked), which
    the snapshot keeps too. ``on_event`` gets the re-run's events; ``cancel`` stops it (nothing is
    attached then)."""
    notes = _recheck(session, snapshot, dtype, on_event, cancel)
    snapshot.notes = [
        *snapshot.notes,
        *(note for note in notes if note not in snapshot.notes),
    ]  # a copy: the session's own list stays
    return notes


def _recheck(
    session: Session,
    snapshot: Snapshot,
    dtype: str = RECHECK_DTYPE,
    on_event: OnEvent | None = None,
    cancel: threading.Event | None = None,
) -> list[str]:
    """:func:`recheck` without keeping its notes in the snapshot."""
    if dtype not in RECHECK_DTYPES:
        raise GendiffError(f"--recheck {dtype}: only {', '.join(RECHECK_DTYPES)} is supported")
    specs = {spec.label: spec for spec in session.config.engines}
    reference = snapshot.reference
    notes = []
    # only an engine that applies its dtype can be re-run in another (a server decides its own)
    fixed = {label for label, engine in session.engines.items() if "dtype" not in engine.applies}

    def ran_in(label: str) -> str | None:
        return None if label in fixed else specs[label].dtype

    candidates = [
        (prompt, d)
        for prompt in snapshot.prompts
        for d in prompt.divergences
        if d.reason in ("token", "length") and {ran_in(d.reference), ran_in(d.engine)} != {dtype}
    ]
    for label in sorted({d.engine for _, d in candidates} | ({reference} if candidates else set())):
        if label in fixed:
            notes.append(f"recheck: {label}: the server decides its dtype; its divergences are not re-checked")
    todo = [(p, d) for p, d in candidates if d.engine not in fixed and reference not in fixed]
    if not todo:
        if snapshot.divergences() and not candidates:
            notes.append(f"recheck: every diverging pair already ran in {dtype}; nothing to re-check")
        return notes
    labels = [reference] + sorted({d.engine for _, d in todo}, key=list(specs).index)
    config = replace(
        session.config, engines=tuple(replace(specs[label], dtype=dtype) for label in labels), reference=reference
    )
    # same prompts in the same order: batched engines see the same batches as in the run
    ids = session.prompt_ids or list(range(len(session.prompts)))
    indices = [ids.index(prompt.traces[reference].prompt_index) for prompt in snapshot.prompts]
    again = Session(config, session.prompts, list(ids))
    rerun = again.run(on_event, cancel, prompt_indices=indices)
    if cancel is not None and cancel.is_set():
        raise Cancelled("recheck cancelled: nothing re-checked")
    by_index = {p.traces[reference].prompt_index: p for p in rerun.prompts if reference in p.traces}
    for prompt, d in todo:
        redone = by_index.get(prompt.traces[reference].prompt_index)
        found = redone.divergence_for(d.engine) if redone else None
        if found is None or found.reason == "error":
            notes.append(f"recheck: prompt {d.prompt_index + 1} {d.engine} failed in {dtype}; not re-checked")
            continue
        verdict = DIVERGES if found.diverged else AGREES
        record = Recheck(dtype, verdict, found.step, found.classification if found.diverged else None)
        prompt.divergences[prompt.divergences.index(d)] = replace(d, recheck=record)
    return notes

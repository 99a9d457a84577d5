"""Export and reopen: a Workspace as a Snapshot (what the export dialog writes, mid-run
exactly what finished, marked ``partial``) and a saved Snapshot as a Workspace (as it was)."""

from __future__ import annotations

from dataclasses import replace

from gendiff.defaults import FRAGILE_THRESHOLD
from gendiff.records.snapshot import PromptResult, Snapshot
from gendiff.state.cells import FAILED, FINISHED, Prompt
from gendiff.state.workspace import Workspace


def export_snapshot(ws: Workspace, only: list[int] | None = None) -> Snapshot | None:
    """Every prompt (or those in ``only``) with what is known of it, and the calls its traces came
    from. Prompt ids are written as list positions (members of a call that were deleted since
    get ids after those), so the file reads naturally; the batch records keep the ids consistent."""
    if ws.meta is None:
        return None
    chosen = [p for p in ws.prompts if only is None or p.id in only]
    shard = ws.meta.shard
    notes = list(ws.meta.notes)
    if shard is not None and not _as_opened(ws):
        shard = None
        notes.append("shard record dropped: the prompts were edited after the shard's snapshot was opened")
    # a shard's ids are positions in the whole prompt list (what gendiff merge orders by): kept
    new_id = {p.id: p.id for p in ws.prompts} if shard is not None else {p.id: i for i, p in enumerate(ws.prompts)}
    used = sorted({c.batch for p in chosen for c in p.cells.values() if c.batch is not None})
    extra = max(new_id.values(), default=-1) + 1
    for b in used:
        for pid in ws.batches[b].prompt_ids:
            if pid not in new_id:
                new_id[pid], extra = extra, extra + 1
    renumbered = {b: i for i, b in enumerate(used)}
    results = []
    for prompt in chosen:
        pid = new_id[prompt.id]
        result = PromptResult(prompt.text, list(prompt.token_ids or ()), id=pid, error=prompt.error)
        for label, cell in prompt.cells.items():
            if cell.trace is not None and cell.batch is not None:
                result.traces[label] = replace(cell.trace, prompt_index=pid)
                result.batches[label] = renumbered[cell.batch]
        result.divergences = [replace(d, prompt_index=pid) for d in prompt.divergences.values()]
        result.statistics = dict(prompt.statistics)
        results.append(result)
    batches = [
        replace(ws.batches[b], id=renumbered[b], prompt_ids=tuple(new_id[i] for i in ws.batches[b].prompt_ids))
        for b in used
    ]
    # every column, also engines a cancelled run never reached (their settings as last recorded)
    known = {e["label"]: e for e in ws.meta.engines} | ws.engine_info
    engines = [known.get(label) or {"label": label, "name": label.split(":")[0], "settings": {}} for label in ws.labels]
    unfinished = sum(not all(c.state in (FINISHED, FAILED) for c in p.cells.values()) for p in chosen)
    partial = ws.running
    if partial:
        notes.append(
            f"partial: exported while a run was going; {unfinished} of {len(chosen)} prompts were not yet "
            "finished by every engine (their unfinished engines have no trace here)"
        )
    return replace(
        ws.meta,
        reference=ws.reference,
        engines=engines,
        prompts=results,
        batches=batches,
        notes=notes,
        partial=partial,
        shard=shard,
    )


def _as_opened(ws: Workspace) -> bool:
    """The workspace holds exactly the prompts of the snapshot it was opened from (ids and texts)."""
    assert ws.meta is not None
    return [(p.id, p.text) for p in ws.prompts] == [(p.id, p.text) for p in ws.meta.prompts]


def open_workspace(snapshot: Snapshot) -> Workspace:
    """A saved snapshot's prompts, results and calls, as they were."""
    labels = snapshot.engine_labels
    ref = snapshot.reference
    threshold = float(snapshot.decoding.get("fragile_threshold", FRAGILE_THRESHOLD))
    workspace = Workspace([ref] + [label for label in labels if label != ref], ref, threshold)
    workspace.meta = snapshot
    workspace.partial = snapshot.partial
    workspace.saved = True
    workspace.engine_info = {e["label"]: e for e in snapshot.engines}
    for batch in snapshot.batches:
        workspace.batches[batch.id] = batch
    workspace.next_batch = max(workspace.batches, default=-1) + 1
    for result in snapshot.prompts:
        prompt = Prompt(result.id, result.text, workspace.blank_cells(), error=result.error)
        workspace.prompts.append(prompt)
        if result.traces:
            workspace.apply_result(prompt, result, dict(result.batches))
        elif result.token_ids:
            prompt.token_ids = tuple(result.token_ids)
    ids = [p.id for p in workspace.prompts] + [i for b in workspace.batches.values() for i in b.prompt_ids]
    workspace.next_id = max(ids, default=-1) + 1
    return workspace

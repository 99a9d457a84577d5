"""What the main screen shows, derived from the Workspace: column marks, titles and foots, the
header line, the panel's title. Pure functions (no widgets), so the screen only places them."""

from __future__ import annotations

from gendiff.records.divergence import first_difference
from gendiff.state.cells import CANCELLED, FAILED, FINISHED, NOT_RUN, RUNNING, Prompt
from gendiff.state.workspace import Workspace


def column_mark(ws: Workspace, prompt: Prompt, label: str, selected: str | None, comparing: bool) -> int | None:
    """The step to mark in ``label``'s column: its own divergence, the step where the selected engine
    split from it (for the reference), or while running the first difference seen so far."""
    own = ws.divergence(prompt, label)
    if own is not None and own.diverged:
        return own.step
    chosen = ws.divergence(prompt, selected)
    if chosen is not None and chosen.diverged and chosen.reference == label:
        return chosen.step
    # live: the first differing token of two streams is already a true difference
    reference = ws.reference if not comparing else (selected or "").replace("@B", "@A")
    if label == reference and selected and prompt.cells.get(selected, None) is not None:
        if prompt.cells[selected].state == RUNNING:
            return first_difference(_ids(ws, prompt, label), _ids(ws, prompt, selected))
    if label != reference and prompt.cells.get(label) is not None and prompt.cells[label].state == RUNNING:
        return first_difference(_ids(ws, prompt, reference), _ids(ws, prompt, label))
    return None


def _ids(ws: Workspace, prompt: Prompt, label: str) -> list[int]:
    return [s.token_id for s in ws.steps(prompt, label)]


def cell_note(ws: Workspace, prompt: Prompt, label: str) -> str | None:
    """A line under the tokens: why there are none, or why they stop."""
    if prompt.error:
        return f"not run: {prompt.error}"
    cell = prompt.cells.get(label)
    if cell is None:
        return None
    if cell.state == FAILED:
        return f"failed: {cell.error}"
    if cell.state == CANCELLED:
        return "cancelled here"
    if cell.state == NOT_RUN and any(c.state != NOT_RUN for c in prompt.cells.values()):
        return "not run (the run was cancelled before this engine)"
    return None


def batch_note(ws: Workspace, prompt: Prompt, label: str, isolated: set[str]) -> str:
    """For the column foot: how the call that produced this trace was made."""
    cell = prompt.cells.get(label)
    if cell is None or cell.batch is None or label in isolated:
        return ""
    batch = ws.batches.get(cell.batch)
    if batch is None:
        return ""
    if len(batch.prompt_ids) == 1:
        return "ran alone"
    return f"row {batch.row_of(prompt.id) + 1}/{len(batch.prompt_ids)}"


def batch_title(ws: Workspace, prompt: Prompt) -> str:
    """For the panel title: which call the results came from."""
    batch = ws.batches.get(prompt.batch) if prompt.batch is not None else None
    if batch is None:
        return ""
    if len(batch.prompt_ids) == 1:
        return "batch: ran alone (r)"
    positions = {p.id: i + 1 for i, p in enumerate(ws.prompts)}
    shown = [str(positions[i]) if i in positions else "deleted" for i in batch.prompt_ids]
    members = ", ".join(shown[:6]) + (", …" if len(shown) > 6 else "")
    return f"batch of {len(shown)}: prompts {members}"


def header(ws: Workspace) -> str:
    """The counts, each true of the state model: complete = every engine finished the prompt."""
    c = ws.counts()
    parts = [f"{c.complete}/{c.total} complete", f"{c.divergences} divergence{'s' if c.divergences != 1 else ''}"]
    if c.running:
        parts.append(f"{c.running} running (escape cancels)")
    if c.incomplete:
        parts.append(f"{c.incomplete} incomplete")
    if c.failed:
        parts.append(f"{c.failed} with errors")
    return " · ".join(parts)


def panel_hint(ws: Workspace, prompt: Prompt, engine: str | None) -> str:
    """What the panel says when there is no divergence record to show."""
    if prompt.error:
        return f"this prompt can't run: {prompt.error}"
    states = {prompt.cells[label].state for label in (ws.reference, engine) if label and label in prompt.cells}
    if RUNNING in states:
        waiting = [
            label
            for label in dict.fromkeys((ws.reference, engine))
            if label in prompt.cells and prompt.cells[label].state == RUNNING and prompt.cells[label].ended is None
        ]
        return f"running: waiting for {' and '.join(waiting)} to finish this prompt" if waiting else "running…"
    if FAILED in states:
        return "an engine failed on this prompt (see its column)"
    if states & {CANCELLED, NOT_RUN} and any(c.state != NOT_RUN for c in prompt.cells.values()):
        return "incomplete: the run was cancelled before both engines finished; r runs this prompt again"
    if states == {FINISHED}:
        return "compared"
    return "not run yet: r runs this prompt, R runs all"

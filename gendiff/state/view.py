"""What the main screen says, derived from the Workspace: the header, the prompt rows' marks,
the columns' titles, foots, marks and notes, and the panel's title and hints. Pure functions (no
widgets), so every surface reads the same state and the tests can check them against it.
"""

from __future__ import annotations

from gendiff.display import shorten_path
from gendiff.records.classify import reading
from gendiff.records.divergence import Divergence, first_difference
from gendiff.state import progress
from gendiff.state.cells import CANCELLED, FAILED, FINISHED, MARK_ICONS, NOT_RUN, RUNNING, Prompt
from gendiff.state.workspace import Workspace


# ── the header ─────────────────────────────────────────────────────────────
def counts_line(ws: Workspace) -> str:
    """The counts, each true of the state model: complete = every engine finished the prompt."""
    c = ws.counts()
    parts = [f"{c.complete}/{c.total} complete", f"{c.divergences} divergence{'s' if c.divergences != 1 else ''}"]
    if c.running:
        parts.append(f"{c.running} running (escape cancels)")
    if c.incomplete:
        parts.append(f"{c.incomplete} incomplete")
    if c.failed:
        parts.append(f"{c.failed} with errors")
    if ws.partial:
        parts.append("a partial snapshot (exported while its run went on)")
    return " · ".join(parts)


def run_settings(ws: Workspace) -> str:
    """The dtype and attention of the results shown: the run's (``mixed`` with each engine's in
    its column), or what the server decides; nothing before any run."""
    meta = ws.meta
    if meta is None:
        return ""
    return f"{meta.model.get('dtype', '?')} · {meta.model.get('attn', '?')}"


def planned_settings(dtype: str, attn: str) -> str:
    """Before the first run: the dtype and attention the run will use (as run_settings says them)."""
    return f"{dtype} · {attn}"


# ── the prompt list ────────────────────────────────────────────────────────
def prompt_row(ws: Workspace, prompt: Prompt) -> tuple[str, int, str]:
    """(mark, count, per-engine run marks) of one row: the mark of gendiff.state.workspace
    (✓ only when every engine finished and all agree) and, while a run goes over this prompt, a
    mark per engine (● finished it, ✗ failed, – cancelled, · not yet)."""
    mark, count = ws.mark(prompt)
    run = ws.run
    live = run is not None and not run.ended and prompt.id in run.plan.keep
    return mark, count, progress.prompt_marks(run, prompt.cells, ws.labels) if live else ""


def mark_icon(mark: str) -> str:
    return MARK_ICONS.get(mark, "?")


# ── the columns ────────────────────────────────────────────────────────────
# the column foot is a few cells wide (four columns at 120 cells): dtypes as ML people write them short
SHORT_DTYPES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def engine_settings(ws: Workspace, label: str) -> str:
    """The settings this engine applied where they differ from the run's in the header
    (``bf16`` for a bfloat16 variant in a float32 run); a served engine's server decides its
    dtype: it says so instead of a number it never used."""
    entry = ws.engine_entry(label)
    settings = (entry or {}).get("settings") or {}
    applies = (entry or {}).get("applies")
    if applies is not None and "dtype" not in applies:
        return "dtype: the server's"
    # said once in the header (run_settings) when every engine shares it; a column names only its own
    run = ws.meta.model if ws.meta is not None else {}
    parts = [
        SHORT_DTYPES.get(str(settings[key]), str(settings[key])) if key == "dtype" else str(settings[key])
        for key in ("dtype", "attn")
        if key in settings and str(settings[key]) != str(run.get(key))
    ]
    return " · ".join(parts)


def call_note(ws: Workspace, prompt: Prompt, label: str) -> str:
    """How the call that produced this trace was made: its row of how many, alone, or (for an
    engine that runs one prompt at a time) that the batch does not matter to it."""
    cell = prompt.cells.get(label)
    if cell is None or cell.batch is None:
        return ""
    entry = ws.engine_entry(label) or {}
    if entry.get("isolates_prompts"):
        return "1 at a time"
    batch = ws.batches.get(cell.batch)
    if batch is None or prompt.id not in batch.prompt_ids:
        return ""
    if len(batch.prompt_ids) == 1:
        return "ran alone"
    return f"row {batch.row_of(prompt.id) + 1}/{len(batch.prompt_ids)}"


def column_foot(ws: Workspace, prompt: Prompt | None, label: str) -> str:
    """Under an engine's tokens, short enough for a narrow column: its state while a run goes
    over this prompt (the strip has the details), its call, its settings."""
    parts = []
    run = ws.run
    live = run is not None and not run.ended and (prompt is None or prompt.id in run.plan.keep)
    if live and run is not None and label in run.engines:
        parts.append(progress.engine_brief(run, run.engines[label]))
    cell = prompt.cells.get(label) if prompt is not None else None
    ran = cell is not None and (cell.state == RUNNING or (cell.trace is not None and ws.step_count(prompt, label) > 0))
    if prompt is not None and ran:  # a call it never reached (cancelled first) is no call of its
        parts.append(call_note(ws, prompt, label))
    if prompt is None or ran:
        parts.append(engine_settings(ws, label))  # what it applied; an engine that did not run applied nothing
    return " · ".join(part for part in parts if part)


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
    return ws.token_ids(prompt, label)


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
        if not ws.step_count(prompt, label):  # e.g. a one-at-a-time engine that never reached this prompt
            return "not run: the run was cancelled before this engine reached this prompt"
        return "cancelled here"
    if cell.state == NOT_RUN and any(c.state != NOT_RUN for c in prompt.cells.values()):
        if ws.partial:
            return "not finished when this snapshot was exported (a partial snapshot)"
        return "not run (the run was cancelled before this engine)"
    return None


# ── the panel ──────────────────────────────────────────────────────────────
def batch_title(ws: Workspace, prompt: Prompt, engine: str | None = None) -> str:
    """For the panel title: which call the shown results came from (of the selected engine; an
    engine that runs one prompt at a time says so, not the members it never shared a pass with)."""
    label = engine if engine in prompt.cells else ws.reference
    cell = prompt.cells.get(label)
    batch = ws.batches.get(cell.batch) if cell is not None and cell.batch is not None else None
    if batch is None:
        return ""
    if (ws.engine_entry(label) or {}).get("isolates_prompts") and (ws.engine_entry(ws.reference) or {}).get(
        "isolates_prompts"
    ):
        return "one prompt at a time"
    if len(batch.prompt_ids) == 1:
        return "batch: ran alone" + ("" if ws.saved else " (r)")
    positions = {p.id: i + 1 for i, p in enumerate(ws.prompts)}
    # an id this list issued and no longer has was deleted; one it never issued (a determinism
    # trial's fillers) was never in it
    issued = [i for i in batch.prompt_ids if i in positions or i < ws.next_id]
    shown = [str(positions[i]) if i in positions else "deleted" for i in issued]
    members = ", ".join(shown[:6]) + (", …" if len(shown) > 6 else "")
    unlisted = len(batch.prompt_ids) - len(issued)
    rest = f" and {unlisted} not in this list" if unlisted else ""
    return f"batch of {len(batch.prompt_ids)}: prompt{'s' if len(shown) > 1 else ''} {members}{rest}"


def panel_hint(ws: Workspace, prompt: Prompt, engine: str | None) -> str:
    """What the panel says when there is no divergence record to show."""
    if prompt.error:
        return f"this prompt can't run: {prompt.error}"
    states = {prompt.cells[label].state for label in (ws.reference, engine) if label and label in prompt.cells}
    if RUNNING in states:
        waiting = [
            label
            for label in dict.fromkeys((ws.reference, engine))
            if label in prompt.cells and prompt.cells[label].state == RUNNING
        ]
        return f"running: waiting for {' and '.join(waiting)} to finish this prompt"
    if FAILED in states:
        return "an engine failed on this prompt (see its column)"
    if states & {CANCELLED, NOT_RUN} and any(c.state != NOT_RUN for c in prompt.cells.values()):
        if ws.partial:
            return "incomplete: the snapshot was exported before both engines had finished this prompt"
        if ws.saved:
            return (
                "incomplete: the run was cancelled before both engines finished (a saved snapshot: nothing runs here)"
            )
        return "incomplete: the run was cancelled before both engines finished; r runs this prompt again"
    if states == {FINISHED}:
        return "compared"
    if ws.partial:
        return "not finished when this snapshot was exported (a partial snapshot)"
    if ws.saved:
        return "not run in this snapshot"
    return "not run yet: r runs this prompt, R runs all"


def rechecking(ws: Workspace, prompt: Prompt) -> bool:
    """Whether the float32 re-check (f) is running over this prompt's call now."""
    run = ws.recheck
    return run is not None and not run.ended and prompt.id in run.plan.ids


def panel_reading(ws: Workspace, prompt: Prompt, d: Divergence) -> str:
    """What the divergence's classification and margin mean (gendiff.records.classify); while
    f re-checks this call it says so instead of offering f."""
    if d.reason not in ("token", "length"):
        return ""
    if rechecking(ws, prompt):
        return reading(d, "the float32 re-check of this call is running (escape cancels)")
    if not ws.replays:  # f is off in this view
        return reading(d, "a float32 re-check tells (gendiff run --recheck float32)")
    return reading(d)


def panel_verdicts(d: Divergence) -> list[str]:
    """What was measured about the divergence, the strongest first: the float32 re-check (does
    it survive float32), re-convergence (does the fork last), bisection (where it starts)."""
    found = []
    if d.recheck is not None:
        found.append(f"recheck: {d.recheck.summary()}")
    if d.reconvergence is not None:
        found.append(f"re-convergence: {d.reconvergence.summary()}")
    if d.bisection is not None:
        # where it starts; the positions and layers are b's view (at 80x24 they would push the
        # reading and the margins out of the panel)
        found.append(f"bisection: {d.bisection.summary_lines()[0]}")
    return found


def no_tokens_note(ws: Workspace) -> str:
    """The step explorer on a prompt without tokens (a saved snapshot runs nothing: no r offered)."""
    if ws.saved:
        return "no tokens to step through: this prompt has none in this snapshot"
    return "no tokens to step through yet: run the prompt first (r)"


# ── the export dialog ──────────────────────────────────────────────────────
def export_note(ws: Workspace) -> str:
    """What a snapshot exported now holds, when that is not the whole run."""
    if ws.running:
        return "a run is going: the file holds what has finished, marked partial"
    return ""


def where(path: str | None, width: int) -> str:
    """A file's path for a border: cut from the left with ``…`` only when it doesn't fit."""
    return shorten_path(path or "(no file)", width)


def panel_title(ws: Workspace, prompt: Prompt, number: int, engine: str | None, can_bisect: bool) -> str:
    """The panel's title for the selected prompt and engine: what the record says, the call the
    shown results came from, and whether the run still goes."""
    d = ws.divergence(prompt, engine)
    if d is None:
        title = f"prompt {number} · {engine or '—'}"
    elif d.diverged and d.step is not None:
        title = f"prompt {number} · {d.engine} diverges from {d.reference} at step {d.step}"
        if d.reason == "token" and d.bisection is None and can_bisect:
            title += " · b bisects"
    elif d.diverged:
        title = f"prompt {number} · {d.engine}: {d.reason}"
    else:
        title = f"prompt {number} · {d.engine} identical to {d.reference}"
    parts = [title, batch_title(ws, prompt, engine)]
    if ws.running and ws.run is not None and prompt.id in ws.run.plan.keep:
        parts.append("the run goes on")
    return " · ".join(part for part in parts if part)


def header(ws: Workspace, model: str, settings: str, tail: str, planned: str = "") -> str:
    """The line at the top: the counts, the model, the settings of the results shown (before
    any run ``planned``: those the next run will use, see :func:`planned_settings`), the rest."""
    parts = ["gendiff", counts_line(ws), model, settings or run_settings(ws) or planned, tail]
    return " · ".join(part for part in parts if part)


def next_stop(ws: Workspace, engines: list[str], here: tuple[int, int], direction: int) -> tuple[int, int] | None:
    """n / p: the (prompt position, engine position in ``engines``) of the next (``direction`` 1) or
    previous (-1) divergence from ``here`` (positions; -1: none yet), over prompts then engines,
    wrapping around; None when there is none. Walks from ``here`` and stops at the first one, so a
    jump costs what lies between, not the whole list (1000 prompts × 5 engines: 25 ms a press)."""
    count = len(ws.prompts)
    if count == 0 or not engines:
        return None
    start = here[0] if here[0] >= 0 else (0 if direction > 0 else count - 1)
    for walked in range(count + 1):
        position = (start + direction * walked) % count
        diverged = set(ws.diverged_engines(ws.prompts[position]))
        found = [(position, i) for i, label in enumerate(engines) if label in diverged]
        if direction < 0:
            found.reverse()
        if walked == 0 and here[0] >= 0:  # on the prompt we stand on: only past the engine we are at
            found = [s for s in found if (s > here if direction > 0 else s < here)]
        if found:
            return found[0]
    return None

"""What the progress strip, the column foots and the prompt rows say about a run, derived from
its :class:`~gendiff.state.run.RunState` (pure functions, no widgets).

An engine is ``✓`` only when it finished every prompt of the run; a cancel shows as
``cancelled`` with how many prompts it had finished. Counts are prompts finished (batched
engines finish several at once) and tokens made, never an internal prompt id.
"""

from __future__ import annotations

from gendiff.display import cells, number
from gendiff.state.cells import CANCELLED, FAILED, FINISHED, NOT_RUN
from gendiff.state.run import GENERATING, LOADING, WAITING, EngineRun, RunState


def duration(seconds: float) -> str:
    """``4.2s``, ``3m05s``, ``1h02m``: short enough for a strip."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def time_left(seconds: float, loads_pending: bool) -> str:
    """The estimate's words, for a run's strip and a determinism protocol's: ``about 1m05s left at
    this speed``, and ``, loads not counted`` while a model is still to load (its time is not in it)."""
    return f"about {duration(seconds)} left at this speed" + (", loads not counted" if loads_pending else "")


def engine_state(run: RunState, engine: EngineRun, now: float) -> str:
    """The engine's progress without its name, e.g. ``3/16 prompts · 212 tok · 41.0 tok/s``,
    ``✓ 16/16 · 229 tok · 1.95s``, ``cancelled · 12/16 done``."""
    of = f"{engine.done}/{engine.prompts}"
    if engine.state == WAITING:
        return "stopping: won't start" if run.cancelling else "waiting"
    if engine.state == LOADING:
        since = f" {duration(now - engine.started_at)}" if engine.started_at is not None else ""
        return f"loading…{since}" + (" · stopping" if run.cancelling else "")
    if engine.state == GENERATING:
        rate = engine.tokens_per_second(now)
        parts = [f"{of} prompts", f"{engine.tokens} tok"]
        if rate is not None:
            parts.append(f"{number(rate, 1)} tok/s")
        if run.cancelling:
            parts.append("stopping after this step")
        return " · ".join(parts)
    if engine.state == FINISHED:
        took = f" · {engine.seconds:.2f}s" if engine.seconds is not None else ""
        return f"✓ {of} · {engine.tokens} tok{took}"
    if engine.state == CANCELLED:
        return f"cancelled · {of} done · {engine.tokens} tok"
    if engine.state == FAILED:
        return "FAILED"
    if engine.state == NOT_RUN:
        if run.cancelled:
            return "not run (cancelled before it began)"
        return "not run (the run stopped on an error first)" if run.error else "not run (no prompt it could run)"
    return engine.state


def strip(run: RunState | None, now: float | None = None) -> list[str]:
    """One item per engine in run order, then about how long the run may still take at the speed
    seen so far (an estimate: it moves when the speed does, and says when loads are left out)."""
    if run is None:
        return []
    now = run.clock() if now is None else now
    if not run.begun and not run.ended:  # before the first engine: imports, tokenizer, probes
        checked = f" ({len(run.checked)} checked)" if run.checked else ""
        return [
            f"starting {duration(now - run.started_at)}: loading torch and the tokenizer, checking the engines on this model{checked}…"
        ]
    items = [f"{label} {engine_state(run, engine, now)}" for label, engine in run.engines.items()]
    left = run.seconds_left(now)
    engines_active = any(engine.state in (WAITING, LOADING, GENERATING) for engine in run.engines.values())
    if not run.ended and not engines_active:
        items.append("comparing and recording…")
    elif left is not None and not run.cancelling:
        items.append(time_left(left, run.loads_pending()))
    elif not run.ended and run.cancelling:
        items.append("cancelling…")
    return items


def pack(items: list[str], width: int, separator: str = " │ ") -> str:
    """The strip's items on lines of at most ``width`` cells, broken only between items (an item
    wider than a line stands alone and wraps inside itself)."""
    lines: list[str] = []
    for item in items:
        if lines and (width <= 0 or cells(lines[-1] + separator + item) <= width):  # no width yet: one line
            lines[-1] += separator + item
        else:
            lines.append(item)
    return "\n".join(lines)


def engine_brief(run: RunState, engine: EngineRun) -> str:
    """The engine's state in a few cells, for its column's foot (the strip has the rest):
    ``3/16 · 212 tok``, ``loading…``, ``✓``, ``cancelled 12/16``."""
    of = f"{engine.done}/{engine.prompts}"
    if engine.state == GENERATING:
        return f"{of} · {engine.tokens} tok"
    if engine.state == LOADING:
        return "loading…"
    if engine.state == WAITING:
        return "waiting"
    if engine.state == FINISHED:
        return "✓"
    if engine.state == CANCELLED:
        return f"cancelled {of}"
    if engine.state == NOT_RUN:
        return "not run"
    return engine.state.upper() if engine.state == FAILED else engine.state


def prompt_marks(run: RunState | None, cells: dict, labels: list[str]) -> str:
    """While a run goes, one mark per engine (column order) for a prompt it runs: ``●`` finished
    it, ``✗`` failed on it, ``–`` cancelled before finishing it, ``·`` not yet."""
    if run is None or run.ended:
        return ""
    marks = []
    for label in labels:
        state = cells[label].state if label in cells else NOT_RUN
        marks.append({FINISHED: "●", FAILED: "✗", CANCELLED: "–"}.get(state, "·"))
    return "".join(marks)

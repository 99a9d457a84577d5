"""The app's background work, as plain functions run in thread workers. They never touch a
widget or a screen: they report only by posting messages (``post`` is a node's post_message,
which is thread-safe). Heavy imports go through gendiff.heavy, once, under its lock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace

from textual.message import Message

from gendiff.engines import create_engine, engine_names, parse_engine_spec
from gendiff.engines.loading import resolve_model_path
from gendiff.errors import GendiffError
from gendiff.records.divergence import Divergence
from gendiff.records.events import EngineFailed, EngineFinished, EngineLoaded, EngineStarted, StepGenerated
from gendiff.records.snapshot import Snapshot
from gendiff.run.heavy import import_heavy
from gendiff.run.options import RunOptions
from gendiff.run.recheck import recheck
from gendiff.run.session import Session
from gendiff.state.cells import RunPlan
from gendiff.tui.messages import (
    Diagnosed,
    DiagnosisStage,
    EngineEvent,
    Preloaded,
    PromptsRejected,
    Rechecked,
    RunCompleted,
    StepsGenerated,
)

STREAM_INTERVAL_S = 0.05
Post = Callable[[Message], object]


def describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, GendiffError) else f"{type(exc).__name__}: {exc}"


def preload(post: Post, options: RunOptions) -> None:
    """Import torch and load the reference engine's model while the user looks around."""
    try:
        import_heavy()

        spec = parse_engine_spec(options.reference_label, options.spec_defaults(), engine_names())
        create_engine(spec, str(resolve_model_path(options.model))).load()
    except Exception as exc:  # noqa: BLE001 — reported; the run reports it again if it matters
        post(Preloaded(describe(exc)))
        return
    post(Preloaded())


def run_engines(post: Post, run_id: int, options: RunOptions, plan: RunPlan, cancel: threading.Event) -> None:
    """Run ``plan`` (its prompts in its row order, numbered by their ids); stream steps coalesced."""
    pending: list[StepGenerated] = []
    last_flush = time.monotonic()

    def flush() -> None:
        nonlocal pending, last_flush
        if pending:
            post(StepsGenerated(run_id, pending))
            pending = []
        last_flush = time.monotonic()

    def on_event(event: object) -> None:
        if isinstance(event, StepGenerated):
            pending.append(event)
            if time.monotonic() - last_flush >= STREAM_INTERVAL_S:
                flush()
            return
        flush()
        if isinstance(event, (EngineStarted, EngineLoaded, EngineFinished, EngineFailed)):
            post(EngineEvent(run_id, event))

    try:
        import_heavy()

        session = Session(options.config(), list(plan.texts), list(plan.ids), per_prompt_errors=True)
        if session.rejected:
            post(PromptsRejected(run_id, dict(session.rejected)))
        if all(pid in session.rejected for pid in plan.ids):
            post(RunCompleted(run_id, plan, None, cancel.is_set()))
            return
        snapshot = session.run(on_event, cancel)
    except Exception as exc:  # noqa: BLE001 — the run could not start: the app says why
        post(RunCompleted(run_id, plan, None, cancel.is_set(), describe(exc)))
        return
    flush()
    post(RunCompleted(run_id, plan, snapshot, cancel.is_set()))


def diagnose(
    post: Post, pid: int, snapshot: Snapshot, d: Divergence, model: str | None, cancel: threading.Event | None = None
) -> None:
    """Replay the engines of the call that produced ``d`` (loading the model if needed), saying
    what it does (DiagnosisStage) and stopping between stages once ``cancel`` is set."""
    cancel = cancel or threading.Event()

    def stage(text: str) -> bool:
        if cancel.is_set():
            return False
        post(DiagnosisStage(text))
        return True

    try:
        if not stage("loading torch and transformers…"):
            return
        import_heavy()

        if not stage(f"loading the model and the engines {d.reference} and {d.engine}…"):
            return
        session = Session.from_snapshot(snapshot, model)
        if not stage(f"bisecting: replaying {d.reference} and {d.engine} to step {d.step} with hooks on every module…"):
            return
        bisection = session.bisect(snapshot, d)
        if not stage(f"re-convergence: feeding {d.engine} {d.reference}'s tokens…"):
            return
        reconvergence = session.reconverge(snapshot, d)
    except Exception as exc:  # noqa: BLE001 — shown in the view, the app keeps running
        post(Diagnosed(pid, d, None, f"bisection failed: {describe(exc)}"))
        return
    post(Diagnosed(pid, d, replace(d, bisection=bisection, reconvergence=reconvergence)))


def recheck_float32(post: Post, snapshot: Snapshot, ids: list[int], model: str | None) -> None:
    """Re-run ``snapshot``'s diverging pairs in float32; records keyed by the app's prompt ids
    (``ids[i]`` is the app's id of the snapshot's i-th prompt)."""
    import copy

    rechecked = copy.deepcopy(snapshot)
    try:
        import_heavy()

        session = Session.from_snapshot(rechecked, model)
        notes = recheck(session, rechecked)
    except Exception as exc:  # noqa: BLE001 — a notification, the app keeps running
        post(Rechecked({}, [], describe(exc)))
        return
    records = {
        (ids[row], d.engine): d.recheck
        for row, p in enumerate(rechecked.prompts)
        for d in p.divergences
        if d.recheck is not None
    }
    post(Rechecked(records, notes))

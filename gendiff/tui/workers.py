"""The app's background work, as plain functions run in thread workers. They never touch a
widget or a screen: they report only by posting messages (``post`` is a node's post_message,
which is thread-safe). Heavy imports go through gendiff.run.heavy, once, under its lock.

Each function runs in a daemon thread of its own (:func:`detached`) that the Textual worker
waits on: an engine blocked in a long forward pass or a server that never answers can't hold
the app's exit, so ``q`` quits within a fraction of a second whatever the work is doing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from textual.message import Message
from textual.worker import get_current_worker

from gendiff.defaults import RECHECK_DTYPE
from gendiff.engines import create_engine, engine_names, parse_engine_spec
from gendiff.engines.loading import resolve_model_path
from gendiff.errors import Cancelled, describe
from gendiff.records.divergence import Divergence
from gendiff.records.events import RunFinished, StageStarted, StepGenerated
from gendiff.records.snapshot import Snapshot
from gendiff.run.determinism import run_protocol
from gendiff.run.heavy import import_heavy
from gendiff.run.options import RunOptions
from gendiff.run.pipeline import Diagnoses, explain, run_pipeline
from gendiff.run.session import Session
from gendiff.state.cells import RunPlan
from gendiff.tui.messages import (
    DeterminismEnded,
    DeterminismEvents,
    Diagnosed,
    DiagnosisStage,
    Preloaded,
    PromptsRejected,
    Rechecked,
    RecheckEvents,
    RunEnded,
    RunEvents,
)

STREAM_INTERVAL_S = 0.05  # events are posted in batches this far apart (a frame, not a token)
WAIT_STEP_S = 0.1  # how often the waiting worker looks whether the app is quitting
Post = Callable[[Message], object]
WORK_THREAD_PREFIX = "gendiff-work-"  # the launcher ends the process at once if one is still busy


def detached(work: Callable[[], Any]) -> Callable[[], Any]:
    """``work`` in a daemon thread; the returned callable (a Textual thread worker's work) waits
    for it, returns early once the worker is cancelled (the app is quitting), and re-raises
    what ``work`` raised so the app's one failure handler sees it."""

    def wait() -> Any:
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["value"] = work()
            except BaseException as exc:  # noqa: BLE001 — handed to the waiting worker
                outcome["error"] = exc

        name = getattr(getattr(work, "func", work), "__name__", "work")
        thread = threading.Thread(target=target, daemon=True, name=f"{WORK_THREAD_PREFIX}{name}")
        thread.start()
        worker = get_current_worker()
        while thread.is_alive():
            thread.join(WAIT_STEP_S)
            if worker.is_cancelled:
                return None
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("value")

    return wait


class Batcher:
    """Collects a run's events in order and posts them: token steps at most every
    STREAM_INTERVAL_S, every other event at once (with the steps before it)."""

    def __init__(self, post: Post, make: Callable[[list[object]], Message]) -> None:
        self.post, self.make = post, make
        self.pending: list[object] = []
        self.last = time.monotonic()

    def __call__(self, event: object) -> None:
        if isinstance(event, RunFinished):
            return  # the run's end is posted on its own, after the last events
        self.pending.append(event)
        # tokens are coalesced; any other event (an engine starting, a prompt finished) goes at
        # once: it may be the last for a long while (vLLM loading), and must not wait behind it
        if not isinstance(event, StepGenerated) or time.monotonic() - self.last >= STREAM_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.post(self.make(self.pending))
            self.pending = []
        self.last = time.monotonic()


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
    """Run ``plan`` (its prompts in its row order, numbered by their ids); every event in order."""
    batcher = Batcher(post, lambda events: RunEvents(run_id, events))
    try:
        import_heavy()
        session = Session(options.config(), list(plan.texts), list(plan.ids), per_prompt_errors=True)
        if session.rejected:
            post(PromptsRejected(run_id, dict(session.rejected)))
        if all(pid in session.rejected for pid in plan.ids):
            post(RunEnded(run_id, None))
            return
        # r: the whole call again for the engines that batch; one that runs each prompt alone
        # runs only the kept one (the others can't change its result)
        keep = [plan.ids.index(pid) for pid in plan.keep]
        snapshot = run_pipeline(session, Diagnoses(), batcher, cancel, keep=keep).snapshot
    except Exception as exc:  # noqa: BLE001 — the run could not start (or stopped): the app says why
        batcher.flush()
        post(RunEnded(run_id, None, describe(exc)))
        return
    batcher.flush()
    post(RunEnded(run_id, snapshot))


def run_determinism(
    post: Post,
    run_id: int,
    options: RunOptions,
    protocol: str,
    prompt: str,
    others: list[str],
    trials: int,
    seed: int,
    max_batch: int,
    cancel: threading.Event,
) -> None:
    """A nondeterminism protocol (:func:`gendiff.run.determinism.run_protocol`, as ``gendiff
    determinism`` runs it), its trials' events streamed; cancelled: the trials that finished."""
    batcher = Batcher(post, lambda events: DeterminismEvents(run_id, events))
    try:
        import_heavy()
        result = run_protocol(
            options, protocol, prompt, others, trials, seed, max_batch, on_event=batcher, cancel=cancel
        )
    except Exception as exc:  # noqa: BLE001 — said on the screen, the app keeps running
        batcher.flush()
        post(DeterminismEnded(run_id, None, describe(exc)))
        return
    batcher.flush()
    post(DeterminismEnded(run_id, result))


def diagnose(
    post: Post, pid: int, snapshot: Snapshot, d: Divergence, model: str | None, cancel: threading.Event
) -> None:
    """Replay the engines of the call that produced ``d`` (loading the model if needed) through
    the pipeline's re-convergence and bisection stages, saying what it does (DiagnosisStage,
    numbered) and stopping between stages once ``cancel`` is set."""
    diagnoses = Diagnoses(reconverge=True, bisect=True)
    total = 2 + len(diagnoses.stages())

    def stage(number: int, text: str) -> None:
        if cancel.is_set():
            raise Cancelled("diagnosis cancelled")
        post(DiagnosisStage(f"{number}/{total} {text}"))

    def on_event(event: object) -> None:
        if isinstance(event, StageStarted):
            stage(2 + event.number, f"{event.what}…")

    try:
        stage(1, "loading torch and transformers…")
        import_heavy()
        stage(2, f"loading the model and the engines {d.reference} and {d.engine}…")
        session = Session.from_snapshot(snapshot, model)
        outcome = explain(session, snapshot, diagnoses, on_event, cancel, only={(d.prompt_index, d.engine)})
    except Cancelled:
        return
    except Exception as exc:  # noqa: BLE001 — shown in the view, the app keeps running
        post(Diagnosed(pid, d, None, f"bisection failed: {describe(exc)}"))
        return
    if outcome.error is not None:
        post(Diagnosed(pid, d, None, f"diagnosis failed: {outcome.error}"))
        return
    key = (d.prompt_index, d.engine)
    post(Diagnosed(pid, d, next((x for x in snapshot.divergences() if (x.prompt_index, x.engine) == key), None)))


def recheck_float32(post: Post, snapshot: Snapshot, ids: list[int], model: str | None, cancel: threading.Event) -> None:
    """Re-run ``snapshot``'s diverging pairs in float32, its engines' progress streamed as events;
    records keyed by the app's prompt ids (``ids[i]`` is the app's id of the snapshot's i-th prompt)."""
    import copy

    rechecked = copy.deepcopy(snapshot)
    batcher = Batcher(post, RecheckEvents)
    try:
        import_heavy()
        session = Session.from_snapshot(rechecked, model)
        outcome = explain(session, rechecked, Diagnoses(recheck=RECHECK_DTYPE), batcher, cancel)
    except Cancelled as exc:
        batcher.flush()
        post(Rechecked({}, [], str(exc), cancelled=True))
        return
    except Exception as exc:  # noqa: BLE001 — said in the panel, the app keeps running
        batcher.flush()
        post(Rechecked({}, [], describe(exc)))
        return
    batcher.flush()
    if outcome.error is not None:
        post(Rechecked({}, [], outcome.error))
        return
    records = {
        (ids[row], d.engine): d.recheck
        for row, p in enumerate(rechecked.prompts)
        for d in p.divergences
        if d.recheck is not None
    }
    post(Rechecked(records, outcome.notes))

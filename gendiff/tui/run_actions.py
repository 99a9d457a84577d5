"""Running engines from the main screen: start a run (r, R), apply what the worker reports
(streamed steps, engine progress, rejected prompts, the result), cancel it (escape)."""

from __future__ import annotations

import threading
from functools import partial
from typing import TYPE_CHECKING

from gendiff.errors import GendiffError
from gendiff.records.events import EngineFailed, EngineFinished, EngineLoaded, EngineStarted
from gendiff.state.progress import RunProgress
from gendiff.tui.messages import EngineEvent, Preloaded, PromptsRejected, RunCompleted, StepsGenerated
from gendiff.tui.workers import run_engines

if TYPE_CHECKING:
    from gendiff.tui.screens.main import MainScreen

    _Base = MainScreen
else:
    _Base = object


def freeze_heap() -> None:
    """Move what exists now (a big snapshot is millions of small objects) out of the cyclic GC's
    reach: a full collection would walk them all and freeze the UI now and then."""
    import gc

    gc.collect()
    gc.freeze()


class RunActions(_Base):
    """Mixed into MainScreen (uses its ``ws``, ``plan``, ``options`` and refresh methods)."""

    def action_run(self, run_all: bool) -> None:
        if self.snapshot is not None:
            self.notify("viewing a saved snapshot: open a prompt file to run engines", severity="warning")
            return
        if self.running:
            self.notify("a run is in progress: escape cancels it", severity="warning")
            return
        if self.current is None:
            self.notify("no prompts to run: press a to add one", severity="warning")
            return
        try:
            self.options.config()
        except GendiffError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return
        plan = self.ws.plan_all() if run_all else self.ws.plan_one(self.current.id)
        self.ws.start(plan)
        self.plan = plan
        self.run_id += 1
        self.cancel_event = threading.Event()
        self.run_progress = RunProgress(list(self.ws.labels))
        self.refresh_all()
        work = partial(run_engines, self.post_message, self.run_id, self.options, plan, self.cancel_event)
        self.run_worker(work, thread=True, group="run", exclusive=True, exit_on_error=False, name="run")

    def on_steps_generated(self, message: StepsGenerated) -> None:
        if message.run_id != self.run_id:
            return
        current = self.current
        touched = False
        for event in message.steps:
            touched |= self.ws.step(event.engine, event.prompt_index, event.step) is current
            if self.run_progress is not None:
                self.run_progress.step(event.engine, event.prompt_index)
        if touched:
            self.refresh_view()
        else:
            self.refresh_columns_titles()

    def refresh_columns_titles(self) -> None:
        self.refresh_progress()
        for label, column in self.columns().items():
            column.border_title, column.border_subtitle = self.column_title(label)

    def on_engine_event(self, message: EngineEvent) -> None:
        if message.run_id != self.run_id:
            return
        event, progress = message.event, self.run_progress
        if progress is None:
            return
        if isinstance(event, EngineStarted):
            progress.started(event.engine, event.prompts)
        elif isinstance(event, EngineLoaded):
            progress.loaded(event.engine)
        elif isinstance(event, EngineFinished):
            progress.finished(event.engine, [t.prompt_index for t in event.traces], event.seconds)
            touched = self.ws.engine_finished(event.engine, event.traces)
            self.refresh_prompt_list()  # which prompts this engine has finished
            if self.current is not None and self.current.id in touched:
                self.refresh_view()  # the panel can compare it with the reference now
        elif isinstance(event, EngineFailed):
            progress.failed(event.engine, event.error)
            self.notify(f"{event.engine} failed: {event.error}", severity="error", timeout=10)
        self.refresh_columns_titles()

    def on_prompts_rejected(self, message: PromptsRejected) -> None:
        if message.run_id != self.run_id:
            return
        for pid, why in message.rejected.items():
            self.ws.reject(pid, why)
            number = self.ws.index_of(pid) + 1 if self.ws.get(pid) else "?"
            self.notify(f"prompt {number} can't run: {why}", severity="error", timeout=10)
        self.refresh_all()

    def on_run_completed(self, message: RunCompleted) -> None:
        if message.run_id != self.run_id:
            return
        self.plan = None
        if message.cancelled and self.run_progress is not None:
            self.run_progress.cancelled()
        self.ws.finish(message.plan, message.snapshot, message.error)
        if message.snapshot is not None:
            freeze_heap()
        if message.error:
            self.notify(message.error, severity="error", timeout=12)
        elif message.cancelled:
            self.notify("run cancelled: prompts an engine did not finish are marked – (incomplete)")
        elif message.snapshot is not None:
            kept = [self.ws.get(pid) for pid in message.plan.keep]
            count = sum(len(self.ws.diverged_engines(p)) for p in kept if p is not None)
            self.notify(f"run finished: {count} divergence{'s' if count != 1 else ''}")
        self.refresh_all()

    def run_crashed(self) -> None:
        """The run worker died unexpectedly (the app shell has said why): nothing is running."""
        if self.plan is not None:
            self.ws.finish(self.plan, None)
        self.plan = None
        self.refresh_all()

    def action_cancel_run(self) -> None:
        if self.running and self.cancel_event is not None:
            self.cancel_event.set()
            self.notify("cancelling… (stops after the current step)")

    def cancel_run(self) -> None:
        if self.cancel_event is not None:
            self.cancel_event.set()

    def on_preloaded(self, message: Preloaded) -> None:
        if message.error:
            self.notify(f"could not load the model: {message.error}", severity="error", timeout=12)

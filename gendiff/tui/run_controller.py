"""The run controller: starts a run of the Workspace's plan in a worker, applies the run's events
to the Workspace as they come, and ends or cancels it. The run's identity, cancel switch, plan
and progress live in the Workspace's RunState, so every surface reads them from there; this
part only moves events from the worker into the state and tells the screen what changed."""

from __future__ import annotations

from functools import partial

from textual.message import Message
from textual.widget import Widget

from gendiff.display import inert
from gendiff.errors import GendiffError
from gendiff.run.options import RunOptions
from gendiff.state.cells import RunPlan
from gendiff.state.run import RunState
from gendiff.state.workspace import Workspace
from gendiff.tui.heap import freeze_heap
from gendiff.tui.messages import PromptsRejected, RunEnded, RunEvents
from gendiff.tui.workers import detached, run_engines


class RunController(Widget):
    """Invisible; the worker posts to it, it posts :class:`Changed` to the screen."""

    DEFAULT_CSS = "RunController { display: none; }"

    class Changed(Message):
        """The run changed these prompts' cells (``ended``: the run is over)."""

        def __init__(self, pids: set[int], ended: bool = False) -> None:
            super().__init__()
            self.pids = pids
            self.ended = ended

    def __init__(self, ws: Workspace) -> None:
        super().__init__()
        self.ws = ws

    @property
    def run(self) -> RunState | None:
        return self.ws.run

    def start(self, plan: RunPlan, options: RunOptions) -> RunState | None:
        """Start ``plan`` with ``options`` (checked first, as the command line checks them)."""
        try:
            options.config()
        except GendiffError as exc:
            self.notify(inert(str(exc)), severity="error", timeout=10)
            return None
        run = self.ws.start(plan, options.max_new_tokens)
        work = partial(run_engines, self.post_message, run.id, options, plan, run.cancel)
        self.app.run_worker(detached(work), thread=True, group="run", exclusive=True, exit_on_error=False, name="run")
        return run

    def cancel(self) -> bool:
        """Stop every engine after its current step; False when nothing runs."""
        run = self.ws.run
        if run is None or run.ended or run.cancel.is_set():
            return False
        run.cancel.set()
        return True

    def _current(self, run_id: int) -> bool:
        return self.ws.run is not None and self.ws.run.id == run_id and not self.ws.run.ended

    def on_run_events(self, message: RunEvents) -> None:
        if not self._current(message.run_id):
            return
        touched: set[int] = set()
        for event in message.events:
            touched |= self.ws.apply(event)
        self.post_message(self.Changed(touched))

    def on_prompts_rejected(self, message: PromptsRejected) -> None:
        if not self._current(message.run_id):
            return
        for pid, why in message.rejected.items():
            self.ws.reject(pid, why)
            number = self.ws.index_of(pid) + 1 if self.ws.get(pid) else "?"
            self.notify(f"prompt {number} can't run: {inert(why)}", severity="error", timeout=10)
        self.post_message(self.Changed(set(message.rejected)))

    def on_run_ended(self, message: RunEnded) -> None:
        if not self._current(message.run_id):
            return
        run = self.ws.run
        assert run is not None
        self.ws.finish(message.snapshot, message.error)
        if message.snapshot is not None:
            freeze_heap()
        if message.error:
            self.notify(inert(message.error), severity="error", timeout=12)
        elif run.cancelled:
            self.notify(
                "run cancelled: what finished is kept (– marks a prompt left unfinished; a ✗ found before the cancel stays)",
                timeout=4,
            )
        elif message.snapshot is not None:
            kept = [self.ws.get(pid) for pid in run.plan.keep]
            count = sum(len(self.ws.diverged_engines(p)) for p in kept if p is not None)
            self.notify(f"run finished: {count} divergence{'s' if count != 1 else ''}")
        self.post_message(self.Changed(set(run.plan.keep), ended=True))

    def crashed(self) -> None:
        """The run worker died unexpectedly (the app shell has said why): nothing is running."""
        run = self.ws.run
        if run is not None and not run.ended:
            self.ws.finish(None, "the run stopped unexpectedly")
            self.post_message(self.Changed(set(run.plan.keep), ended=True))

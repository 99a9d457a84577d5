"""Diagnosing divergences: the diagnosis view (b: bisection and re-convergence, replaying the
call that produced the divergence) and the float32 re-check (f). Workers replay what ran and
report by message; the records go into the Workspace, the re-check's progress too (its
RunState, shown in the strip; escape cancels it)."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from textual.message import Message
from textual.widget import Widget

from gendiff.display import inert
from gendiff.records.divergence import Divergence
from gendiff.state import view
from gendiff.state.cells import RunPlan
from gendiff.state.exchange import export_snapshot
from gendiff.state.run import RunState
from gendiff.state.workspace import Workspace
from gendiff.tui.messages import Diagnosed, DiagnosisStage, Rechecked, RecheckEvents
from gendiff.tui.screens.diagnosis import DiagnosisScreen
from gendiff.tui.workers import detached, diagnose, recheck_float32


class Diagnoser(Widget):
    """Invisible; posts :class:`Changed` when a record lands or the re-check moves."""

    DEFAULT_CSS = "Diagnoser { display: none; }"

    class Changed(Message):
        """A diagnosis record landed, or the re-check's progress moved (``ended``: it is over)."""

        def __init__(self, ended: bool = False) -> None:
            super().__init__()
            self.ended = ended

    def __init__(self, ws: Workspace, model: str | None, comparing: bool) -> None:
        super().__init__()
        self.ws = ws
        self.model = model
        self.comparing = comparing
        self._diagnosing: tuple[int, Divergence, Divergence, DiagnosisScreen] | None = None
        self._rechecked_ids: list[int] = []

    @property
    def rechecking(self) -> bool:
        return self.ws.recheck is not None and not self.ws.recheck.ended

    # ── b ──────────────────────────────────────────────────────────────────
    def diagnose(self, pid: int, engine: str) -> None:
        prompt = self.ws.get(pid)
        d = self.ws.divergence(prompt, engine) if prompt is not None else None
        number = self.ws.index_of(pid) + 1 if prompt is not None else 0
        if prompt is None or d is None:
            what = (
                "nothing to bisect here: pick" if self.ws.saved else "nothing to bisect: run the prompts (R), then pick"
            )
            self.notify(f"{what} a divergence (n/p)", severity="warning")
            return
        if d.reason != "token":
            what = "identical" if not d.diverged else f"{d.reason}: {inert(d.detail)}"
            self.notify(f"{d.engine} on prompt {number} is {what}; b bisects a token divergence")
            return
        title = f"diagnosis · prompt {number} · {d.engine} vs {d.reference} at step {d.step} · "
        title += view.batch_title(self.ws, prompt, engine)
        if d.bisection is not None and d.reconvergence is not None:
            self.app.push_screen(DiagnosisScreen(title, d))
            return
        if self.comparing:
            self.notify(
                "a comparison of two snapshots can't be replayed here: run gendiff run --bisect on each machine"
            )
            return
        if self.ws.running or self.rechecking:
            self.notify("engines are running: bisect when they have finished (escape cancels)", severity="warning")
            return
        replay = export_snapshot(self.ws, only=[pid])
        if replay is None or not replay.prompts:
            self.notify("this result has no run to replay: run it again (r)", severity="warning")
            return
        target = replay.prompts[0].divergence_for(d.engine)  # the replay's own record of it
        screen = DiagnosisScreen(title, None, cancellable=True)
        self._diagnosing = (pid, d, target, screen)
        self.app.push_screen(screen)
        work = partial(diagnose, self.post_message, pid, replay, target, self.model, screen.cancel_event)
        self.app.run_worker(detached(work), thread=True, group="diagnose", exclusive=True, exit_on_error=False)

    def crashed(self, group: str, error: str) -> None:
        """A ``diagnose`` or ``recheck`` worker died unexpectedly (the app has said why): its
        long-work face ends with the error instead of waiting forever."""
        if group == "recheck":
            self.on_rechecked(Rechecked({}, [], error))
        elif group == "diagnose" and self._diagnosing is not None:
            pid, original, target, _ = self._diagnosing
            self.on_diagnosed(Diagnosed(pid, target, None, error))

    def on_diagnosis_stage(self, message: DiagnosisStage) -> None:
        if self._diagnosing is not None and self.app.screen is self._diagnosing[3]:
            self._diagnosing[3].set_stage(message.text)

    def on_diagnosed(self, message: Diagnosed) -> None:
        """Record the result (an export carries it); show it if its view is still open."""
        if self._diagnosing is None or message.old is not self._diagnosing[2]:
            return  # an earlier request, superseded
        pid, original, _, screen = self._diagnosing
        new = None
        if message.new is not None:
            new = replace(original, bisection=message.new.bisection, reconvergence=message.new.reconvergence)
            self.ws.record_diagnosis(pid, original, new)
            self.post_message(self.Changed())
        if self.app.screen is screen:
            if message.error:
                screen.show_error(message.error)
            elif new is not None:
                screen.show(new)

    # ── f ──────────────────────────────────────────────────────────────────
    def recheck(self, pid: int) -> None:
        """Re-run the diverging pairs of the prompt's call in float32 (the same engines, the
        call's members still in the list, in its row order)."""
        prompt = self.ws.get(pid)
        if prompt is None or not any(self.ws.diverged_engines(p) for p in self.ws.prompts):
            if self.ws.saved:  # nothing runs in a snapshot: R is off
                self.notify("nothing to recheck: this snapshot holds no divergence", severity="warning")
            else:
                self.notify("nothing to recheck: run the prompts (R) and find a divergence first", severity="warning")
            return
        if self.comparing or self.ws.running or self.rechecking:
            what = "a comparison of two snapshots can't be re-run" if self.comparing else "engines are running"
            self.notify(f"{what}: recheck later (gendiff run --recheck float32)", severity="warning")
            return
        batch = prompt.call(self.ws.batches)
        members = [m for m in batch.prompt_ids if self.ws.get(m)] if batch else [pid]
        chosen = sorted(members, key=self.ws.index_of)
        snapshot = export_snapshot(self.ws, only=chosen)
        if snapshot is None or not snapshot.divergences():
            self.notify("no divergence in this prompt's run to recheck", severity="warning")
            return
        pending = [d for p in snapshot.prompts for d in p.divergences if d.diverged and d.recheck is None]
        if not pending:
            self.notify("this call's divergences are already re-checked in float32 (the panel shows the verdicts)")
            return
        plan = RunPlan(tuple(chosen), tuple(self.ws.get(m).text for m in chosen), ())  # type: ignore[union-attr]
        self.ws.recheck = RunState(-1, plan, [], int(snapshot.decoding.get("max_new_tokens") or 0))
        self._rechecked_ids = chosen
        work = partial(recheck_float32, self.post_message, snapshot, chosen, self.model, self.ws.recheck.cancel)
        self.app.run_worker(detached(work), thread=True, group="recheck", exclusive=True, exit_on_error=False)
        self.post_message(self.Changed())

    def cancel_recheck(self) -> bool:
        if not self.rechecking or self.ws.recheck is None or self.ws.recheck.cancel.is_set():
            return False
        self.ws.recheck.cancel.set()
        return True

    def on_recheck_events(self, message: RecheckEvents) -> None:
        if self.ws.recheck is None:
            return
        for event in message.events:
            self.ws.recheck.apply(event)
        self.post_message(self.Changed())

    def on_rechecked(self, message: Rechecked) -> None:
        run = self.ws.recheck
        if run is not None:
            run.finished(None if message.cancelled else message.error)
        if message.cancelled:
            self.notify("float32 recheck cancelled: nothing re-checked")
        elif message.error:
            self.notify(f"recheck failed: {inert(message.error)}", severity="error", timeout=10)
        else:
            for (pid, engine), record in message.records.items():
                prompt = self.ws.get(pid)
                d = self.ws.divergence(prompt, engine) if prompt else None
                if d is not None:
                    self.ws.record_diagnosis(pid, d, replace(d, recheck=record))
            gone = sum(r.verdict == "agrees" for r in message.records.values())
            summary = f"float32 recheck: {gone} of {len(message.records)} divergences gone (rounding)"
            self.notify(inert("; ".join([summary, *message.notes])), timeout=6)
        self.post_message(self.Changed(ended=True))

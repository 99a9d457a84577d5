"""Diagnosing divergences from the main screen: the diagnosis view (b: bisection and
re-convergence) and the float32 re-check (f). Workers replay what ran (the same call: members
and rows from the batch record) and report by message; results go into the state model."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

from gendiff.state import view
from gendiff.tui.messages import Diagnosed, DiagnosisStage, Rechecked
from gendiff.tui.screens.diagnosis import DiagnosisScreen
from gendiff.tui.workers import diagnose, recheck_float32

if TYPE_CHECKING:
    from gendiff.tui.screens.main import MainScreen

    _Base = MainScreen
else:
    _Base = object


class DiagnoseActions(_Base):
    """Mixed into MainScreen (uses its ``ws``, ``options`` and refresh methods)."""

    def action_bisect(self) -> None:
        """Open the diagnosis view for the selected divergence; compute it in a worker if needed."""
        prompt, engine = self.current, self.selected_engine
        d = self.ws.divergence(prompt, engine) if prompt is not None else None
        if prompt is None or d is None:
            self.notify("nothing to bisect: run the prompts (R), then pick a divergence (n/p)", severity="warning")
            return
        if d.reason != "token":
            what = "identical" if not d.diverged else f"{d.reason}: {d.detail}"
            self.notify(f"{d.engine} on prompt {self.current_index + 1} is {what}; b bisects a token divergence")
            return
        title = f"diagnosis · prompt {self.current_index + 1} · {d.engine} vs {d.reference} at step {d.step}"
        batch = view.batch_title(self.ws, prompt)
        if d.bisection is not None and d.reconvergence is not None:
            self.app.push_screen(DiagnosisScreen(f"{title} · {batch}", d))
            return
        if self.comparing:
            self.notify(
                "a comparison of two snapshots can't be replayed here: run gendiff run --bisect on each machine"
            )
            return
        if self.running:
            self.notify("a run is in progress: bisect when it has finished (escape cancels it)", severity="warning")
            return
        replay = self.ws.to_snapshot(only=[prompt.id])
        if replay is None or not replay.prompts:
            self.notify("this result has no run to replay: run it again (r)", severity="warning")
            return
        # the replay snapshot numbers prompts by position: its own record of this divergence
        target = replay.prompts[0].divergence_for(d.engine)
        screen = DiagnosisScreen(f"{title} · {batch}", None, cancellable=True)
        self._diagnosing = (prompt.id, d, target, screen)
        self.app.push_screen(screen)
        model = self.options.model if self.snapshot is None else None
        work = partial(diagnose, self.post_message, prompt.id, replay, target, model, screen.cancel_event)
        self.run_worker(work, thread=True, group="diagnose", exclusive=True, exit_on_error=False, name="diagnose")

    def on_diagnosis_stage(self, message: DiagnosisStage) -> None:
        screen = self._diagnosing[3]
        if screen is not None and self.app.screen is screen:
            screen.set_stage(message.text)

    def on_diagnosed(self, message: Diagnosed) -> None:
        """Record the result (export then carries it); show it if its view is still open."""
        pid, original, target, screen = self._diagnosing
        if message.old is not target:
            return  # an earlier request, superseded
        if message.new is not None:
            new = replace(original, bisection=message.new.bisection, reconvergence=message.new.reconvergence)
            self.ws.record_diagnosis(pid, original, new)
            self.refresh_panel()
        if self.app.screen is screen:  # closed early: nothing to show it in
            if message.error:
                screen.show_error(message.error)
            elif message.new is not None:
                screen.show(new)

    def action_recheck(self) -> None:
        """Re-run the diverging pairs of the selected prompt's call in float32 (same engines, the
        call's members that are still in the list, in its row order) in a worker."""
        prompt = self.current
        if prompt is None or not any(self.ws.diverged_engines(p) for p in self.ws.prompts):
            self.notify("nothing to recheck: run the prompts (R) and find a divergence first", severity="warning")
            return
        if self.comparing or self.running:
            what = "a comparison of two snapshots can't be re-run" if self.comparing else "a run is in progress"
            self.notify(f"{what}: recheck later (gendiff run --recheck float32)", severity="warning")
            return
        batch = self.ws.batches.get(prompt.batch) if prompt.batch is not None else None
        members = [pid for pid in batch.prompt_ids if self.ws.get(pid)] if batch else [prompt.id]
        chosen = sorted(members, key=self.ws.index_of)
        snapshot = self.ws.to_snapshot(only=chosen)
        if snapshot is None or not snapshot.divergences():
            self.notify("no divergence in this prompt's run to recheck", severity="warning")
            return
        self.notify("rechecking the diverging pairs in float32…")
        ids = [self.ws.prompts[self.ws.index_of(pid)].id for pid in chosen]
        model = self.options.model if self.snapshot is None else None
        work = partial(recheck_float32, self.post_message, snapshot, ids, model)
        self.run_worker(work, thread=True, group="diagnose", exclusive=True, exit_on_error=False, name="recheck")

    def on_rechecked(self, message: Rechecked) -> None:
        if message.error:
            self.notify(f"recheck failed: {message.error}", severity="error", timeout=10)
            return
        for (pid, engine), record in message.records.items():
            prompt = self.ws.get(pid)
            d = self.ws.divergence(prompt, engine) if prompt else None
            if d is not None:
                self.ws.record_diagnosis(pid, d, replace(d, recheck=record))
        gone = sum(r.verdict == "agrees" for r in message.records.values())
        summary = f"float32 recheck: {gone} of {len(message.records)} divergences gone (rounding)"
        self.notify("; ".join([summary, *message.notes]), timeout=10)
        self.refresh_panel()

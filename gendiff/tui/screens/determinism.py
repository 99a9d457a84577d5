"""The determinism screen (key D, or the command palette): a nondeterminism protocol of
``gendiff determinism`` run on the selected prompt in a worker, its progress (trial k/N per
engine, the time left) on a strip, then per engine the CLI's table, the first split positions as
bars and the token pairs at the splits as rows; enter on a row opens that split in the usual
divergence view (:class:`gendiff.tui.screens.split_view.SplitScreen`). A run starts only from R
or the Run button (enter on the setup toggles an engine, never runs). escape cancels a run (what
finished is shown, marked partial), and otherwise goes back."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from functools import partial

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Static
from textual.worker import Worker, WorkerState

from gendiff.defaults import DETERMINISM_MAX_BATCH, DETERMINISM_SEED, DETERMINISM_TRIALS
from gendiff.display import inert, one_line
from gendiff.errors import GendiffError, describe
from gendiff.io.fileio import atomic_write_text
from gendiff.io.outputs import check_output
from gendiff.records.determinism import Determinism
from gendiff.run.determinism import trial_plan
from gendiff.run.options import RunOptions
from gendiff.state import progress
from gendiff.state.determinism import (
    common_count,
    histogram_lines,
    json_text,
    split_workspace,
    table_lines,
    token_label,
)
from gendiff.state.determinism_progress import TrialProgress
from gendiff.tui.messages import DeterminismEnded, DeterminismEvents
from gendiff.tui.screens.export import ExportDialog
from gendiff.tui.screens.split_view import SplitScreen
from gendiff.tui.widgets.determinism_setup import DeterminismSetup
from gendiff.tui.workers import detached, run_determinism

TICK_S = 0.5
HISTOGRAM_WIDTH = 36
NARROW = 120  # below this width the bars stand above the pairs table, not beside it
JSON_ONLY = "JSON, whatever the name: the file gendiff determinism --json writes"
SPLIT_COLUMNS = ("engine", "step", "most common", "n", "other", "n", "margin class", "trial")


class DeterminismScreen(Screen[None]):
    BINDINGS = [
        Binding("R", "run", "Run", id="determinism.run", tooltip="Run the protocol on the selected prompt"),
        Binding(
            "x",
            "export",
            "Export",
            id="determinism.export",
            tooltip="Export the result as gendiff determinism --json writes it",
        ),
        # one key, two meanings: the footer shows the one that works now (check_action)
        Binding("escape", "cancel", "Cancel the run", id="determinism.cancel", tooltip="Cancel the run under way"),
        Binding("escape", "close", "Back", id="determinism.back", tooltip="Back to the main screen"),
    ]
    # the focused widget's own enter (the splits table's, the Run button's), listed in help with the bindings
    HELP = [
        Binding("enter", "open", "Open split", tooltip="On a row of the splits: that split in the divergence view"),
        Binding("enter", "press", "Run", tooltip="On the Run button: run the protocol, as R does"),
    ]

    def __init__(
        self,
        options: RunOptions,
        prompt: str,
        others: list[str],
        protocol: str = "needle",
        check_path: Callable[[str], None] | None = None,
    ) -> None:
        """``check_path``: refuses an export path, raising GendiffError (the main screen's: not a
        file open in the app, not in the model folder; without one, the model folder only)."""
        super().__init__()
        self.options, self.prompt, self.others = options, prompt, list(others)
        self.check_path = check_path or partial(check_output, inputs={}, model=options.model, option="")
        self.setup = DeterminismSetup(
            protocol, DETERMINISM_TRIALS, DETERMINISM_SEED, list(options.labels), id="det-setup"
        )
        self.result: Determinism | None = None
        self.error: str | None = None
        self.progress: TrialProgress | None = None
        self.cancel = threading.Event()
        self.run_id = 0
        self.split_rows: list[tuple[str, int]] = []  # per row of the pairs table: (engine, trial)

    def compose(self) -> ComposeResult:
        with Vertical(id="det-main"):
            yield Static("", id="det-title")
            with Horizontal(id="det-head"):
                yield self.setup
                yield Button("Run (R)", id="det-run", compact=True, tooltip="Run the protocol on the selected prompt")
            yield Static("", id="det-progress")
            with VerticalScroll(id="det-body"):
                yield Static("", id="det-table")
                with Horizontal(id="det-lower"):
                    yield Static("", id="det-histogram")
                    yield DataTable(id="det-splits", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.setup.border_title = "←/→ change · space toggles an engine · R runs"
        table = self.query_one("#det-splits", DataTable)
        table.add_columns(*SPLIT_COLUMNS)
        table.border_title = "Splits: enter opens the divergence view"
        self.query_one("#det-histogram", Static).border_title = "First split at step"
        self.setup.focus()
        self.query_one("#det-lower").set_class(self.app.size.width < NARROW, "narrow")
        self.refresh_all()
        self.set_interval(TICK_S, self.tick)

    # ── what it shows ──────────────────────────────────────────────────────
    @property
    def running(self) -> bool:
        return self.progress is not None and not self.progress.ended

    def refresh_all(self) -> None:
        o = self.options
        title = (
            f"determinism · {o.model or 'demo model'} · {o.dtype} · {o.max_new_tokens} tokens · "
            f'prompt "{one_line(self.prompt)[:40]}"'
        )
        self.query_one("#det-title", Static).update(Text(inert(title)))
        self.refresh_progress()
        self.refresh_result()

    def refresh_progress(self) -> None:
        strip = self.query_one("#det-progress", Static)
        items = self.progress.items() if self.progress is not None else []
        if self.error:
            items = [f"the run failed: {self.error}"]
        elif not items and self.result is None:
            items = ["not run yet: R (or the Run button) runs the protocol"]
        elif not items and self.result is not None and self.result.partial:
            items = [f"cancelled: {len(self.result.trials)} of {self.result.planned} trials finished (partial)"]
        width = strip.content_region.width or self.size.width
        strip.update(Text(progress.pack([inert(item) for item in items], width)))
        strip.display = bool(items)

    def refresh_result(self) -> None:
        result = self.result
        table = self.query_one("#det-splits", DataTable)
        table.clear()
        self.split_rows = []
        histogram = self.query_one("#det-histogram", Static)
        text = self.query_one("#det-table", Static)
        if result is None:
            text.update("")
            histogram.update("")
            self.query_one("#det-lower").display = False
            return
        self.query_one("#det-lower").display = True
        lines = table_lines(result) + [f"  {label} failed: {one_line(e)}" for label, e in result.errors.items()]
        text.update(Text(inert("\n".join(lines))))
        bars: list[str] = []
        for label, s in result.spreads.items():
            bars.append(label)
            bars.extend(f"  {line}" for line in histogram_lines(s, HISTOGRAM_WIDTH))
        histogram.update(Text(inert("\n".join(bars))))
        for label, s in result.spreads.items():
            for split in s.splits:
                table.add_row(
                    Text(inert(label)),
                    str(split.step),
                    Text(inert(token_label(split.common, split.common_text))),
                    str(common_count(s, split)),
                    Text(inert(token_label(split.other, split.other_text))),
                    str(split.count),
                    split.margin_class or "",
                    str(split.first_trial + 1),
                )
                self.split_rows.append((label, split.first_trial))
        if result.partial:
            table.border_subtitle = "partial: the trials that finished"
        else:
            table.border_subtitle = "" if self.split_rows else "no splits: every trial as the most common"

    def on_resize(self, event: events.Resize) -> None:
        self.query_one("#det-lower").set_class(event.size.width < NARROW, "narrow")  # bars above the rows
        self.call_after_refresh(self.refresh_progress)  # the strip breaks between entries, at its width

    def tick(self) -> None:
        if self.running:
            self.refresh_progress()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":
            return self.running
        if action == "close":
            return not self.running
        return True

    # ── the run ────────────────────────────────────────────────────────────
    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "det-run":
            event.stop()
            self.action_run()

    def action_run(self) -> None:
        if self.running:
            self.notify("the protocol is running: escape cancels it", severity="warning")
            return
        engines = self.setup.selected
        if not engines:
            self.notify("no engine chosen: space toggles one", severity="warning")
            return
        options = replace(self.options, engines=tuple(engines), reference=None)
        try:
            options.config()
        except GendiffError as exc:  # a bad setting, said in one line
            self.notify(inert(str(exc)), severity="error", timeout=10)
            return
        self.run_id += 1
        self.cancel = threading.Event()
        self.result, self.error = None, None
        trials, protocol, seed = self.setup.trials, self.setup.protocol, self.setup.seed
        _, plan = trial_plan(protocol, self.prompt, self.others, trials, seed, DETERMINISM_MAX_BATCH)
        rows = tuple(len(trial.prompts) for trial in plan)
        self.progress = TrialProgress(trials, tuple(options.labels), options.max_new_tokens, rows)
        work = partial(
            run_determinism,
            self.post_message,
            self.run_id,
            options,
            protocol,
            self.prompt,
            self.others,
            trials,
            seed,
            DETERMINISM_MAX_BATCH,
            self.cancel,
        )
        self.run_worker(
            detached(work), thread=True, group="determinism", exclusive=True, exit_on_error=False, name="determinism"
        )
        self.refresh_all()
        self.refresh_bindings()  # escape now cancels

    def on_determinism_events(self, message: DeterminismEvents) -> None:
        if message.run_id == self.run_id and self.progress is not None:
            for event in message.events:
                self.progress.apply(event)
            self.refresh_progress()

    def on_determinism_ended(self, message: DeterminismEnded) -> None:
        if message.run_id != self.run_id:
            return
        if self.progress is not None:
            self.progress.ended = True
        self.result = message.result  # type: ignore[assignment]
        self.error = message.error
        if self.error:
            self.notify(inert(self.error), severity="error", timeout=12)
        elif self.result is not None and self.result.partial:
            self.notify("cancelled: the trials that finished are shown, marked partial", timeout=4)
        self.refresh_all()
        self.refresh_bindings()  # escape now goes back
        if self.split_rows:  # after the new rows are laid out, so focusing scrolls them into view (80x24)
            table = self.query_one("#det-splits", DataTable)
            self.call_after_refresh(lambda: (table.focus(), table.scroll_visible(animate=False)))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The worker died unexpectedly (its failures are its messages otherwise): said, and nothing runs."""
        if event.worker.group == "determinism" and event.state == WorkerState.ERROR and self.running:
            assert self.progress is not None
            self.progress.ended = True
            self.error = f"the run stopped unexpectedly: {describe(event.worker.error)}"
            self.notify(inert(self.error), severity="error", timeout=12)
            self.refresh_all()
            self.refresh_bindings()

    def action_cancel(self) -> None:
        """escape while a run goes: it stops after the current step (a second escape waits for that)."""
        if self.running and self.progress is not None and not self.cancel.is_set():
            self.cancel.set()
            self.progress.cancelling = True
            self.refresh_progress()

    def action_close(self) -> None:
        if not self.running:
            self.dismiss(None)

    def action_export(self) -> None:
        """The result as ``gendiff determinism --json`` writes it (a cancelled run marked partial,
        as the screen shows it), atomically, through the main screen's export dialog."""
        result = self.result
        if self.running or result is None:
            said = "the protocol is running: export it once it ends (escape cancels, keeping the trials that finished)"
            self.notify(said if self.running else "nothing to export yet: R runs the protocol", severity="warning")
            return
        hold = getattr(self.app, "hold_keys", None)
        if hold is not None:
            hold()  # the path typed right after x is the dialog's (ExportDialog.replay_held_keys)
        text = json_text(result)

        def prepare(path: str):  # noqa: ANN202 — the dialog's job
            self.check_path(path)  # refused in the dialog, the path kept
            return partial(atomic_write_text, path, text)

        def written(path: object) -> None:
            if path is not None:
                cut = f" (partial: {len(result.trials)} of {result.planned} trials)" if result.partial else ""
                self.notify(f"written to {inert(str(path))}{cut}")

        note = f"partial: cancelled after {len(result.trials)} of {result.planned} trials" if result.partial else ""
        default = f"gendiff-determinism-{result.protocol}-{datetime.now():%Y%m%d-%H%M%S}.json"
        dialog = ExportDialog(default, prepare, "Export the protocol's result to:", note, JSON_ONLY)
        self.app.push_screen(dialog, written)

    def stop(self) -> None:
        """Quitting: stop the run (its worker is a daemon thread)."""
        self.cancel.set()

    # ── a split into the divergence view ───────────────────────────────────
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if self.result is None or not 0 <= event.cursor_row < len(self.split_rows):
            return
        label, trial = self.split_rows[event.cursor_row]
        ws = split_workspace(self.result, label, trial, self.options.fragile_threshold)
        self.app.push_screen(SplitScreen(ws, f"{label} · {self.result.protocol}"))

"""MainScreen composes the parts and routes between them: the header and the progress strip
(drawn from the Workspace), the workbench (prompt list, engine columns, divergence panel, with
their own keys), and three invisible parts that own work: the run controller, the diagnoser and
the prompt file. It holds the run-wide keys (R, escape, s, x) and the settings and export dialogs.
Every surface reads the one Workspace; no part keeps its own idea of an engine's state."""

from __future__ import annotations

from datetime import datetime
from functools import partial

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from gendiff.demo import model_name
from gendiff.display import inert
from gendiff.engines import engine_names
from gendiff.engines.vllm import vllm_installed
from gendiff.errors import GendiffError
from gendiff.io.documents import Document
from gendiff.io.outputs import check_output
from gendiff.io.snapshots import save_snapshot
from gendiff.run.options import RunOptions
from gendiff.state import progress, view
from gendiff.state.exchange import export_snapshot, open_workspace
from gendiff.state.workspace import Workspace
from gendiff.tui.config import save_settings
from gendiff.tui.diagnoser import Diagnoser
from gendiff.tui.heap import freeze_heap
from gendiff.tui.messages import Preloaded
from gendiff.tui.prompt_file import PromptFile
from gendiff.tui.run_controller import RunController
from gendiff.tui.screens.determinism import DeterminismScreen
from gendiff.tui.screens.export import ExportDialog
from gendiff.tui.screens.settings import SettingsScreen
from gendiff.tui.widgets.prompt_list import PromptList
from gendiff.tui.widgets.steady_static import SteadyStatic
from gendiff.tui.widgets.workbench import Workbench
from gendiff.tui.workers import detached, preload

MIN_WIDTH, MIN_HEIGHT = 70, 18
TICK_S = 0.5  # the strip's clocks (loading time, tok/s, time left) move this often while work runs
RUN_ONLY = frozenset({"run_all", "cancel", "settings", "determinism"})  # hidden when viewing a snapshot


class MainScreen(Screen[None]):
    BINDINGS = [
        Binding("R", "run_all", "All", id="run.all", tooltip="Run every prompt through every engine"),
        Binding(
            "escape",
            "cancel",
            "Cancel",
            id="run.cancel",
            show=False,
            tooltip="Cancel the running work (run, recheck, bisection)",
        ),
        Binding(
            "s",
            "settings",
            "Settings",
            id="settings",
            show=False,
            tooltip="Settings: engines, reference, dtype, tokens",
        ),
        Binding("x", "export", "Export", id="export", tooltip="Export a snapshot (.gdz compressed, .json readable)"),
        Binding(
            "D",
            "determinism",
            "Determinism",
            id="determinism",
            show=False,
            tooltip="Determinism: one prompt N times, its splits",
        ),
    ]

    def __init__(self, options: RunOptions, document: Document, preload_model: bool = True) -> None:
        super().__init__()
        self.options = options
        self.snapshot = document.snapshot  # viewing saved results (read-only)
        self.snapshot_files = document.files
        if self.snapshot is not None:
            model = options.model if not self.snapshot.sources else None
            self.options = RunOptions.from_snapshot(self.snapshot, model)
            self.ws = open_workspace(self.snapshot)
            freeze_heap()
        else:
            self.ws = Workspace(self.options.labels, self.options.reference_label, self.options.fragile_threshold)
            for text in document.book.prompts if document.book else []:
                self.ws.add(text)
        self.preload_model = preload_model and self.snapshot is None
        self.comparing = self.snapshot is not None and bool(self.snapshot.sources)
        self.runner = RunController(self.ws)
        self.diagnoser = Diagnoser(self.ws, self.options.model if self.snapshot is None else None, self.comparing)
        self.prompt_file = PromptFile(self.ws, document.book)
        self.workbench = Workbench(self.ws, self.comparing, read_only=self.snapshot is not None, id="workbench")

    @property
    def command_targets(self) -> tuple[object, ...]:
        """The parts whose actions the command palette runs (see gendiff.tui.commands)."""
        return (self.workbench.prompt_list, self.workbench)

    # ── layout ─────────────────────────────────────────────────────────────
    def compose(self) -> ComposeResult:
        with Vertical(id="main"):
            yield SteadyStatic("", id="run-line")
            yield SteadyStatic("", id="progress")
            yield self.workbench
        yield Static(
            f"The terminal is too small for gendiff: make it at least {MIN_WIDTH}×{MIN_HEIGHT}.", id="too-small"
        )
        yield Footer(compact=True, show_command_palette=False)  # ? lists every key, ctrl+p too
        yield self.runner
        yield self.diagnoser
        yield self.prompt_file

    async def on_mount(self) -> None:
        self.workbench.where = "snapshot" if self.snapshot is not None else self.prompt_file.path
        self.workbench.prompt_list.focus()
        await self.workbench.set_engines()
        self.check_size(self.app.size.width, self.app.size.height)
        self.refresh_top()
        self.set_interval(TICK_S, self.tick)
        if self.preload_model:  # after the first frame: importing torch must not delay it
            self.call_after_refresh(self.start_preload)

    def start_preload(self) -> None:
        work = partial(preload, self.post_message, self.options)
        self.app.run_worker(detached(work), thread=True, group="preload", exit_on_error=False, name="preload")

    def on_resize(self, event: events.Resize) -> None:
        self.check_size(event.size.width, event.size.height)
        self.call_after_refresh(self.refresh_top)  # the strip breaks its lines between entries, at its width
        if self.workbench.step_cursor is not None:  # the step view breaks its lines at the panel's width
            self.call_after_refresh(self.workbench.refresh_view)

    def check_size(self, width: int, height: int) -> None:
        self.set_class(width < MIN_WIDTH or height < MIN_HEIGHT, "too-small")
        self.workbench.apply_layout(width)

    def refresh_all(self) -> None:
        self.workbench.refresh_all()
        self.refresh_top()

    # ── the header and the strip ───────────────────────────────────────────
    def refresh_top(self) -> None:
        header = self.query_one("#run-line", Static)
        width = header.content_region.width or self.size.width
        parts = [inert(part) for part in self.header_line().split(" · ")]
        header.update(Text(progress.pack(parts, width, " · ")))  # "ref hf-single" never split
        strip = self.query_one("#progress", Static)
        items = self.strip_items()
        strip.display = bool(items)
        width = strip.content_region.width or self.size.width
        strip.update(Text(progress.pack([inert(item) for item in items], width)))

    def strip_items(self) -> list[str]:
        recheck = self.ws.recheck
        if recheck is not None and not recheck.ended:
            return ["float32 re-check (escape cancels)", *progress.strip(recheck)]
        return progress.strip(self.ws.run)

    def header_line(self) -> str:
        o = self.options
        tail = f"{o.max_new_tokens} tokens · top-{o.top_k} · ref {self.ws.reference}"
        if self.snapshot is None:
            return view.header(self.ws, model_name(o.model), "", tail, view.planned_settings(o.dtype, o.attn))
        name = self.snapshot.model.get("name")
        if not self.comparing:
            return view.header(self.ws, f"snapshot of {name} ({self.snapshot.created})", "", tail)
        sides = " vs ".join(
            # ", " inside a side: the header breaks its lines at " · ", never inside what one side ran
            f"{s.get('tag')}: {s.get('model', {}).get('dtype')}, {s.get('model', {}).get('attn')} ({s.get('path')})"
            for s in self.snapshot.sources
        )
        only = self.workbench.only
        return view.header(self.ws, str(name), sides + (f" · only {only} (o)" if only else ""), tail)

    def tick(self) -> None:
        if self.ws.running or self.diagnoser.rechecking:
            self.refresh_top()
            self.workbench.refresh_feet()

    # ── what the parts report ──────────────────────────────────────────────
    def on_run_controller_changed(self, message: RunController.Changed) -> None:
        workbench = self.workbench
        if message.ended:
            workbench.refresh_all()
        else:
            workbench.refresh_rows(message.pids)
            current = workbench.current
            if current is not None and current.id in message.pids:
                workbench.refresh_view()
            else:
                workbench.refresh_feet()
        self.refresh_top()

    def on_diagnoser_changed(self, message: Diagnoser.Changed) -> None:
        self.refresh_top()
        self.workbench.refresh_view()

    def on_prompt_file_changed(self, message: PromptFile.Changed) -> None:
        if message.select is not None and self.ws.get(message.select) is not None:
            self.workbench.refresh_list(self.ws.index_of(message.select))
        else:
            self.workbench.refresh_list()
        self.workbench.refresh_view()
        self.refresh_top()

    def on_preloaded(self, message: Preloaded) -> None:
        if message.error:
            self.notify(f"could not load the model: {inert(message.error)}", severity="error", timeout=12)

    # ── the prompt list's requests ─────────────────────────────────────────
    @on(PromptList.RunRequested)
    def run_one(self, message: PromptList.RunRequested) -> None:
        if self.can_run() and self.ws.get(message.pid) is not None:
            self.runner.start(self.ws.plan_one(message.pid), self.options)
            self.refresh_all()

    @on(PromptList.AddRequested)
    def add_prompt(self, message: PromptList.AddRequested) -> None:
        self.prompt_file.add(message.after)

    @on(PromptList.EditRequested)
    def edit_prompt(self, message: PromptList.EditRequested) -> None:
        self.prompt_file.edit(message.pid)

    @on(PromptList.DeleteRequested)
    def delete_prompt(self, message: PromptList.DeleteRequested) -> None:
        self.prompt_file.delete(message.pid)

    @on(PromptList.MoveRequested)
    def move_prompt(self, message: PromptList.MoveRequested) -> None:
        self.prompt_file.move(message.pid, message.offset)

    @on(Workbench.DiagnoseRequested)
    def diagnose(self, message: Workbench.DiagnoseRequested) -> None:
        self.diagnoser.diagnose(message.pid, message.engine)

    @on(Workbench.ViewChanged)
    def view_changed(self) -> None:
        self.refresh_top()

    @on(Workbench.RecheckRequested)
    def recheck(self, message: Workbench.RecheckRequested) -> None:
        self.diagnoser.recheck(message.pid)

    # ── keys ───────────────────────────────────────────────────────────────
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if getattr(self.app, "keys_held", False):
            return False  # a dialog is opening: the keys typed now are its text
        if action in RUN_ONLY and self.snapshot is not None:
            return False  # a snapshot is read-only: nothing to run or reconfigure
        return True

    def can_run(self) -> bool:
        if self.snapshot is not None:
            self.notify("viewing a saved snapshot: open a prompt file to run engines", severity="warning")
        elif self.ws.running or self.diagnoser.rechecking:
            self.notify("engines are running: escape cancels them", severity="warning")
        elif not self.ws.prompts:
            self.notify("no prompts to run: press a to add one", severity="warning")
        else:
            return True
        return False

    def action_run_all(self) -> None:
        if self.can_run():
            self.runner.start(self.ws.plan_all(), self.options)
            self.refresh_all()

    def action_cancel(self) -> None:
        if self.runner.cancel():
            pass  # the strip says it (cancelling…, each engine "stopping after this step"): no toast over the panel
        elif self.diagnoser.cancel_recheck():
            self.notify("cancelling the float32 re-check…")
        self.refresh_top()

    def cancel_all(self) -> None:
        """Quitting: stop whatever runs (the workers are daemon threads; nothing half-written)."""
        self.runner.cancel()
        self.diagnoser.cancel_recheck()

    def action_determinism(self) -> None:
        """The selected prompt under a nondeterminism protocol, the other prompts its fillers."""
        prompt = self.workbench.current
        if prompt is None:
            self.notify("no prompts to watch: press a to add one", severity="warning")
        elif self.can_run():
            others = [p.text for p in self.ws.prompts]
            self.app.push_screen(DeterminismScreen(self.options, prompt.text, others, check_path=self.check_export))

    def action_settings(self) -> None:
        def resolved(options: RunOptions) -> RunOptions:  # no reference given = the first engine's
            return options.with_changes(reference=options.reference_label)

        available = [name for name in engine_names() if name != "vllm" or vllm_installed()]

        async def applied(options: RunOptions | None) -> None:
            if options is None:
                return
            if resolved(options) == resolved(self.options):  # ctrl+s with nothing changed: say so
                self.notify("settings: nothing changed, nothing to apply or remember")
                return
            if self.ws.running or self.diagnoser.rechecking:
                self.notify("engines are running: settings not changed (escape cancels)", severity="warning")
                return
            self.options = options
            self.diagnoser.model = options.model
            problem = save_settings(options)
            self.ws.fragile_threshold = options.fragile_threshold
            self.ws.set_engines(options.labels, options.reference_label)
            self.ws.run = None
            await self.workbench.set_engines()
            self.refresh_all()
            if problem:
                self.notify(f"settings applied for this session, {inert(problem)}", severity="warning", timeout=10)
            else:
                self.notify("settings applied and saved: results cleared; R runs all prompts")

        self.app.push_screen(SettingsScreen(self.options, available), applied)

    def action_export(self) -> None:
        """Write what is known now (a run still going: the finished traces, marked partial)."""
        hold = getattr(self.app, "hold_keys", None)
        if hold is not None:
            hold()  # the path typed right after x is the dialog's (ExportDialog.replay_held_keys)

        def prepare(path: str):  # noqa: ANN202 — the dialog's job
            snapshot = export_snapshot(self.ws)
            if snapshot is None:
                raise GendiffError("nothing to export yet: run the prompts first (R)")
            self.check_export(path)
            return partial(save_snapshot, snapshot, path)

        def written(path: object) -> None:
            if path is None:
                return
            partial_note = " (partial: the run was still going; what had finished is in it)" if self.ws.running else ""
            self.notify(f"snapshot written to {inert(str(path))}{partial_note}")

        if self.ws.meta is None:  # what export_snapshot says None for, without building it (a run's worth)
            if hold is not None:
                self.app.take_held_keys()  # no dialog to take them: the keys are the screen's again
            self.notify("nothing to export yet: run the prompts first (R)", severity="warning")
            return
        default = f"gendiff-{datetime.now():%Y%m%d-%H%M%S}.gdz"
        self.app.push_screen(ExportDialog(default, prepare, note=view.export_note(self.ws)), written)

    def check_export(self, path: str) -> None:
        """The CLI's check of an output (gendiff.io.outputs.check_output), for the export dialogs:
        refuses the prompt file open, the snapshot viewed (an export is rebuilt from what the app
        holds, which is not all a file can hold: its --repeat results), a file in the model folder."""
        named = ["snapshot A", "snapshot B"] if len(self.snapshot_files) == 2 else ["the snapshot open in gendiff"]
        book = self.prompt_file.book
        inputs = {"the prompt file open in gendiff": book.path if book is not None else None}
        check_output(path, inputs | dict(zip(named, self.snapshot_files)), self.options.model, option="")

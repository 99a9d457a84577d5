"""GendiffApp: bindings, workers and message handlers. No numerics: the core computes, this shows."""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Footer, OptionList, Static
from textual.worker import Worker, WorkerState

from gendiff.decoding import Decoding
from gendiff.divergence import first_difference
from gendiff.engines import DEFAULT_ENGINES, engine_names
from gendiff.errors import GendiffError
from gendiff.prompts import PromptBook, demo_prompts_path
from gendiff.session import EngineFailed, EngineFinished, EngineLoaded, EngineStarted, StepGenerated
from gendiff.snapshot import PromptResult, Snapshot, is_snapshot_file
from gendiff.themes import DEFAULT_THEME, THEMES
from gendiff.tui.config import config_path, load_config, save_config
from gendiff.tui.messages import EngineEvent, RunCompleted, StepsGenerated
from gendiff.tui.screens.confirm import Confirm
from gendiff.tui.screens.diagnosis import DiagnosisScreen
from gendiff.tui.screens.editor import PromptEditor
from gendiff.tui.screens.export import ExportDialog
from gendiff.tui.screens.help import HelpScreen
from gendiff.tui.screens.settings import RunSettings, SettingsScreen
from gendiff.tui.state import PromptEntry
from gendiff.tui.widgets.divergence_panel import DivergencePanel
from gendiff.tui.widgets.prompt_list import PromptList, prompt_label
from gendiff.tui.widgets.token_column import TokenColumn

MIN_WIDTH, MIN_HEIGHT = 70, 18
STREAM_INTERVAL_S = 0.05


@dataclass
class LaunchOptions:
    """What the command line asked for (see ``gendiff --help``)."""

    path: str | None = None
    compare_with: str | None = None  # a second snapshot: view B against A
    model: str | None = None
    engines: tuple[str, ...] = DEFAULT_ENGINES
    reference: str | None = None
    dtype: str = "float32"
    attn: str = "sdpa"
    device: str = "cpu"
    batch_size: int = 16
    max_new_tokens: int = 32
    top_k: int = 5
    stop_at_eos: bool = True
    fragile_threshold: float = 0.05
    theme: str | None = None
    preload: bool = True
    decoding: Decoding | None = None  # run-wide penalties; None: none

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> LaunchOptions:
        from gendiff.cli import decoding_from_args
        from gendiff.engines.base import split_engine_list

        engines = tuple(split_engine_list(args.engines)) if args.engines else DEFAULT_ENGINES
        return cls(
            path=args.path,
            compare_with=getattr(args, "other", None),
            model=args.model,
            engines=engines,
            reference=args.reference,
            dtype=args.dtype,
            attn=args.attn,
            device=args.device,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            top_k=args.top_k,
            stop_at_eos=not args.no_stop_at_eos,
            fragile_threshold=args.fragile_threshold,
            theme=args.theme,
            decoding=decoding_from_args(args),
        )


def _freeze_heap() -> None:
    """Move what exists now (a big snapshot is millions of small objects) out of the cyclic
    garbage collector's reach: otherwise a full collection walks them all and freezes the UI for
    0.5-0.8 s now and then. They are still freed by reference counting."""
    import gc

    gc.collect()
    gc.freeze()


def default_prompt_file() -> Path:
    """Where the prompt list lives when no file is named: beside the config file."""
    return config_path().parent / "prompts.txt"


class GendiffApp(App[None]):
    CSS_PATH = "gendiff.tcss"
    TITLE = "gendiff"
    BINDINGS = [
        Binding("r", "run(False)", "Run", id="run.selected"),
        Binding("R", "run(True)", "Run all", id="run.all"),
        Binding("escape", "cancel_run", "Cancel run", id="run.cancel"),
        Binding("a", "add", "Add", id="prompt.add"),
        Binding("e", "edit", "Edit", id="prompt.edit"),
        Binding("d", "delete", "Delete", id="prompt.delete"),
        Binding("ctrl+up", "move(-1)", "Move prompt up", id="prompt.up", show=False),
        Binding("ctrl+down", "move(1)", "Move prompt down", id="prompt.down", show=False),
        Binding("n", "jump(1)", "Next div", id="nav.next"),
        Binding("p", "jump(-1)", "Prev div", id="nav.prev"),
        Binding("tab", "cycle_engine(1)", "Engine", id="nav.engine", priority=True),
        Binding("b", "bisect", "Bisect", id="diagnose.bisect"),
        Binding("f", "recheck", "Recheck f32", id="diagnose.recheck"),
        Binding("shift+tab", "cycle_engine(-1)", "Previous engine", id="nav.engine-prev", show=False, priority=True),
        Binding("s", "settings", "Settings", id="settings"),
        Binding("x", "export", "Export", id="export"),
        Binding("t", "next_theme", "Theme", id="theme"),
        Binding("question_mark", "help", "Help", id="help"),
        Binding("q", "quit", "Quit", id="quit"),
        Binding("ctrl+c", "quit", "Quit", id="quit.ctrl-c", show=False, priority=True),
    ]

    def __init__(self, options: LaunchOptions | None = None) -> None:
        super().__init__()
        self.options = options or LaunchOptions()
        self.entries: list[PromptEntry] = []
        self.book = PromptBook()
        self.snapshot_mode: Snapshot | None = None
        self.last_snapshot: Snapshot | None = None
        self.run_snapshots: dict[int, Snapshot] = {}  # prompt uid -> the run (batch) that produced its result
        self.selected_engine: str | None = None
        self.engine_status: dict[str, str] = {}
        self.run_id = 0
        self.cancel_event: threading.Event | None = None
        self.running = False
        self.startup_notes: list[tuple[str, str]] = []
        self._rebuilding_list = False
        self.settings = RunSettings(
            engines=tuple(self.options.engines),
            reference=self.options.reference or self.options.engines[0],
            dtype=self.options.dtype,
            attn=self.options.attn,
            max_new_tokens=self.options.max_new_tokens,
            top_k=self.options.top_k,
            batch_size=self.options.batch_size,
        )
        self._load_prompts()

    # ── setup ──────────────────────────────────────────────────────────────
    def _load_prompts(self) -> None:
        path = self.options.path
        try:
            if path and self.options.compare_with:
                from gendiff.compare import load_pair

                self._open_snapshot(load_pair(path, self.options.compare_with))
                return
            if path and is_snapshot_file(path):
                self._open_snapshot(Snapshot.load(path))
                return
            if path:
                file = Path(path).expanduser()
                self.book = PromptBook.load(file) if file.exists() else PromptBook([], file)
                if not file.exists():
                    self.startup_notes.append((f"new prompt file {file}: press a to add a prompt", "information"))
            else:
                self._load_default_book()
        except GendiffError as exc:
            self.startup_notes.append((str(exc), "error"))
            self._load_default_book()
        self.entries = [PromptEntry(text) for text in self.book.prompts]

    def _load_default_book(self) -> None:
        file = default_prompt_file()
        try:
            if file.exists():
                self.book = PromptBook.load(file)
                return
        except GendiffError as exc:
            self.startup_notes.append((str(exc), "error"))
        # the demo prompts, saved to the user's own file at the first edit
        self.book = PromptBook(PromptBook.load(demo_prompts_path()).prompts, file)

    def _open_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshot_mode = snapshot
        self.last_snapshot = snapshot
        labels = snapshot.engine_labels
        self.settings = RunSettings(
            engines=tuple(labels),
            reference=snapshot.reference,
            dtype=snapshot.model.get("dtype", "float32"),
            attn=snapshot.model.get("attn", "sdpa"),
            max_new_tokens=snapshot.decoding["max_new_tokens"],
            top_k=snapshot.decoding["top_k"],
        )
        self.entries = [PromptEntry(p.text, result=p) for p in snapshot.prompts]
        self.run_snapshots = {entry.uid: snapshot for entry in self.entries}
        _freeze_heap()

    def get_theme_variable_defaults(self) -> dict[str, str]:
        # gendiff's own variables, so that any Textual theme (not only ours) can render the app
        return {
            "diverge": "#E5484D",
            "diverge-text": "#000000",
            "after-diverge": "#F5A524",
            "agree-dim": "#808080",
            "chosen": "#46A758",
        }

    def compose(self) -> ComposeResult:
        with Vertical(id="main"):
            yield Static("", id="run-line")
            with Horizontal(id="top"):
                yield PromptList(id="prompts")
                with VerticalScroll(id="columns-scroll"):
                    yield Static("", id="prompt-text")
                    yield Horizontal(id="columns")
            yield DivergencePanel(id="panel")
        yield Static(
            f"The terminal is too small for gendiff: make it at least {MIN_WIDTH}×{MIN_HEIGHT}.", id="too-small"
        )
        yield Footer()

    async def on_mount(self) -> None:
        for theme in THEMES:
            self.register_theme(theme)
        wanted = self.options.theme or load_config().get("theme") or DEFAULT_THEME
        if wanted not in self.available_themes:
            self.startup_notes.append(
                (f"theme {wanted!r} is unknown; using {DEFAULT_THEME} (t cycles themes)", "warning")
            )
            wanted = DEFAULT_THEME
        self.theme = wanted
        self.query_one("#prompts", PromptList).border_title = "Prompts"
        await self.rebuild_columns()
        self.refresh_prompt_list(0)
        self.refresh_view()
        self.check_size()
        for message, severity in self.startup_notes:
            self.notify(message, severity=severity, timeout=8)  # type: ignore[arg-type]
        self.query_one("#prompts", PromptList).focus()
        if self.options.preload and self.snapshot_mode is None:
            self.set_timer(0.2, self.preload)

    def watch_theme(self, theme: str) -> None:
        # t, --theme and the command palette's theme picker all land here
        if self.is_mounted:
            save_config(theme=theme)
            self.refresh_prompt_list(self.current_index)
            self.refresh_view()

    def on_resize(self) -> None:
        self.check_size()

    def check_size(self) -> None:
        small = self.size.width < MIN_WIDTH or self.size.height < MIN_HEIGHT
        self.screen.set_class(small, "too-small")

    @work(thread=True, group="preload", exclusive=True, exit_on_error=False)
    def preload(self) -> None:
        """Import torch and load the reference engine's model while the user looks around."""
        from gendiff.engines import create_engine, parse_engine_spec
        from gendiff.engines.loading import resolve_model_path

        spec = parse_engine_spec(self.settings.reference, self.spec_defaults(), engine_names())
        create_engine(spec, str(resolve_model_path(self.options.model))).load()

    # ── helpers ────────────────────────────────────────────────────────────
    @property
    def current_index(self) -> int:
        highlighted = self.query_one("#prompts", PromptList).highlighted
        return highlighted if highlighted is not None else 0

    @property
    def current(self) -> PromptEntry | None:
        return self.entries[self.current_index] if self.entries else None

    @property
    def labels(self) -> list[str]:
        ref = self.settings.reference
        return [ref] + [label for label in self.settings.engines if label != ref]

    @property
    def comparing(self) -> bool:
        return self.snapshot_mode is not None and bool(self.snapshot_mode.sources)

    @property
    def compared_labels(self) -> list[str]:
        """The columns that have a divergence of their own (tab cycles them): all but the reference,
        or in a comparison of two snapshots the B side of each engine."""
        if self.comparing:
            return [label for label in self.labels if label.endswith("@B")]
        return self.labels[1:]

    def spec_defaults(self) -> dict[str, object]:
        s = self.settings
        return {
            "dtype": s.dtype,
            "attn": s.attn,
            "device": self.options.device,
            "batch_size": s.batch_size,
            "decoding": self.options.decoding,
        }

    def save_book(self) -> None:
        """Write the prompt list at once (atomically): edits are never only in memory."""
        if self.snapshot_mode is not None:
            return
        first_save = self.book.path is not None and not self.book.path.exists()
        self.book.prompts = [e.text for e in self.entries]
        try:
            self.book.save()
        except GendiffError as exc:
            self.notify(f"{exc} (your edit is kept in the app)", severity="error", timeout=10)
            return
        if first_save:
            self.notify(f"prompts saved to {self.book.path}")

    # ── rendering ──────────────────────────────────────────────────────────
    async def rebuild_columns(self) -> None:
        container = self.query_one("#columns", Horizontal)
        await container.remove_children()
        await container.mount_all(TokenColumn(label) for label in self.labels)
        others = self.compared_labels
        if self.selected_engine not in others:
            self.selected_engine = others[0] if others else None
        self.refresh_view()

    def columns(self) -> dict[str, TokenColumn]:
        return {column.label: column for column in self.query(TokenColumn)}

    def column_title(self, label: str) -> tuple[str, str]:
        """(title, subtitle): the engine on top, its settings and progress at the bottom."""
        from gendiff.engines.base import parse_engine_spec

        try:
            spec = parse_engine_spec(label, self.spec_defaults())
            settings = f"{spec.dtype} · {spec.attn}"
        except GendiffError:
            settings = "?"
        title = f"{label} (ref)" if label == self.settings.reference else label
        status = self.engine_status.get(label, "")
        return title, f"{status} · {settings}" if status else settings

    def refresh_prompt_list(self, highlighted: int | None = None) -> None:
        prompt_list = self.query_one("#prompts", PromptList)
        colours = self.theme_variables
        rows = [prompt_label(i, e.text, *e.status, colours) for i, e in enumerate(self.entries, 1)]
        self._rebuilding_list = True
        prompt_list.set_rows(rows, self.current_index if highlighted is None else highlighted)
        self._rebuilding_list = False
        where = "snapshot" if self.snapshot_mode else (str(self.book.path) if self.book.path else "")
        prompt_list.border_subtitle = where[-30:]

    def refresh_view(self) -> None:
        """Columns and panel for the selected prompt (cheap: one prompt's tokens)."""
        entry = self.current
        self.query_one("#prompt-text", Static).update(
            Text("") if entry is None else Text.assemble((f"prompt {self.current_index + 1}: ", "dim"), entry.text)
        )
        labels = self.labels
        ref_ids = [s.token_id for s in entry.steps(labels[0])] if entry else []
        columns = self.columns()
        result = entry.result if entry is not None and not entry.live else None
        selected = result.divergence_for(self.selected_engine or "") if result else None
        for i, label in enumerate(labels):
            column = columns.get(label)
            if column is None:
                continue
            column.border_title, column.border_subtitle = self.column_title(label)
            steps = entry.steps(label) if entry else []
            mark = None
            if result is not None:
                # a column is marked at its own divergence, or as the side the selected one split from
                own = result.divergence_for(label)
                if own is not None and own.diverged:
                    mark = own.step
                elif selected is not None and selected.diverged and selected.reference == label:
                    mark = selected.step
            elif entry is not None:
                if i == 0:
                    d = entry.result.divergence_for(self.selected_engine or "") if entry.result else None
                    mark = d.step if d and d.diverged else None
                    if mark is None and self.selected_engine in entry.live:
                        mark = first_difference(ref_ids, [s.token_id for s in entry.live[self.selected_engine]])
                else:
                    d = entry.result.divergence_for(label) if entry.result else None
                    mark = (
                        d.step
                        if d is not None and d.diverged
                        else first_difference(ref_ids, [s.token_id for s in steps])
                    )
            note = entry.failed.get(label) if entry else None
            column.set_class(label == self.selected_engine, "selected")
            column.show(steps, mark, note)
        self.refresh_panel()
        self.refresh_run_line()

    def refresh_panel(self) -> None:
        panel = self.query_one("#panel", DivergencePanel)
        entry, engine = self.current, self.selected_engine
        number = self.current_index + 1
        if entry is None:
            panel.show_divergence("divergence", None, "no prompts: press a to add one")
            return
        d = entry.result.divergence_for(engine) if entry.result and engine else None
        if d is None:
            hint = "running…" if entry.running else "not run yet: r runs this prompt, R runs all"
            panel.show_divergence(f"prompt {number} · {engine or '—'}", None, hint)
            return
        if d.diverged and d.step is not None:
            title = f"prompt {number} · {d.engine} diverges from {d.reference} at step {d.step}"
            if d.reason == "token" and d.bisection is None and not self.comparing:
                title += " · b bisects"
        elif d.diverged:
            title = f"prompt {number} · {d.engine}: {d.reason}"
        else:
            title = f"prompt {number} · {d.engine} identical to {d.reference}"
        panel.show_divergence(title, d, statistics=entry.result.statistics.get(d.engine) if entry.result else None)

    def refresh_run_line(self) -> None:
        total = sum(len(e.diverged_engines) for e in self.entries)
        run = sum(1 for e in self.entries if e.result is not None)
        model = self.options.model or "demo model"
        if self.snapshot_mode is not None:
            model = f"snapshot of {self.snapshot_mode.model.get('name')} ({self.snapshot_mode.created})"
        state = (
            "running… (escape cancels)"
            if self.running
            else f"{run}/{len(self.entries)} prompts run · {total} divergences"
        )
        s = self.settings
        self.query_one("#run-line", Static).update(
            f"[b]gendiff[/b] · {model} · {s.dtype} · {s.attn} · {s.max_new_tokens} tokens · top-{s.top_k} · ref {s.reference} · {state}"
        )

    # ── prompt list events ─────────────────────────────────────────────────
    @on(OptionList.OptionHighlighted, "#prompts")
    def prompt_highlighted(self) -> None:
        if not self._rebuilding_list:
            self.refresh_view()

    @on(OptionList.OptionSelected, "#prompts")
    def prompt_selected(self) -> None:
        self.action_edit()

    # ── actions: prompts ───────────────────────────────────────────────────
    def _editable(self) -> bool:
        if self.snapshot_mode is not None:
            self.notify("this is a saved snapshot: prompts are read-only here", severity="warning")
            return False
        return True

    def action_add(self) -> None:
        if not self._editable():
            return

        def added(text: str | None) -> None:
            if text is None:
                return
            position = self.current_index + 1 if self.entries else 0
            self.entries.insert(position, PromptEntry(text))
            self.save_book()
            self.refresh_prompt_list(position)
            self.refresh_view()

        self.push_screen(PromptEditor("", "New prompt"), added)

    def action_edit(self) -> None:
        entry = self.current
        if entry is None or not self._editable():
            return

        def edited(text: str | None) -> None:
            if text is None or text == entry.text:
                return
            entry.text = text
            entry.clear()  # old tokens belong to the old text
            self.save_book()
            self.refresh_prompt_list()
            self.refresh_view()

        self.push_screen(PromptEditor(entry.text, f"Edit prompt {self.current_index + 1}"), edited)

    def action_delete(self) -> None:
        entry = self.current
        if entry is None or not self._editable():
            return
        if entry.running:
            self.notify("this prompt is running: cancel (escape) first", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes and entry in self.entries:
                position = self.entries.index(entry)
                self.entries.remove(entry)
                self.save_book()
                self.refresh_prompt_list(max(0, position - 1) if position >= len(self.entries) else position)
                self.refresh_view()

        self.push_screen(Confirm(f"Delete prompt {self.current_index + 1}?"), answered)

    def action_move(self, offset: int) -> None:
        if not self.entries or not self._editable():
            return
        index = self.current_index
        target = index + offset
        if not 0 <= target < len(self.entries):
            return
        self.entries[index], self.entries[target] = self.entries[target], self.entries[index]
        self.save_book()
        self.refresh_prompt_list(target)
        self.refresh_view()

    # ── actions: navigation ────────────────────────────────────────────────
    def action_cycle_engine(self, offset: int) -> None:
        if self.screen is not self.screen_stack[0]:
            # in a dialog, tab keeps its usual meaning
            (self.screen.focus_next if offset > 0 else self.screen.focus_previous)()
            return
        others = self.compared_labels
        if not others:
            return
        position = others.index(self.selected_engine) if self.selected_engine in others else -1
        self.selected_engine = others[(position + offset) % len(others)]
        self.refresh_view()

    def action_jump(self, direction: int) -> None:
        """Move to the next (1) or previous (-1) divergence, over prompts then engines."""
        others = self.compared_labels
        stops = [
            (i, others.index(e)) for i, entry in enumerate(self.entries) for e in entry.diverged_engines if e in others
        ]
        if not stops:
            self.notify(
                "no divergences"
                + (" yet: run the prompts first (R)" if not any(e.result for e in self.entries) else "")
            )
            return
        stops.sort()
        here = (self.current_index, others.index(self.selected_engine) if self.selected_engine in others else -1)
        if direction > 0:
            target = next((s for s in stops if s > here), stops[0])
        else:
            target = next((s for s in reversed(stops) if s < here), stops[-1])
        self.selected_engine = others[target[1]]
        self.refresh_prompt_list(target[0])
        self.refresh_view()

    # ── actions: run ───────────────────────────────────────────────────────
    def action_run(self, run_all: bool) -> None:
        if self.snapshot_mode is not None:
            self.notify("viewing a saved snapshot: open a prompt file to run engines", severity="warning")
            return
        if self.running:
            self.notify("a run is in progress: escape cancels it", severity="warning")
            return
        targets = list(self.entries) if run_all else ([self.current] if self.current else [])
        if not targets:
            self.notify("no prompts to run: press a to add one", severity="warning")
            return
        from gendiff.engines.base import GenerationSettings, parse_engine_spec
        from gendiff.session import RunConfig

        try:
            specs = tuple(parse_engine_spec(label, self.spec_defaults(), engine_names()) for label in self.labels)
            settings = GenerationSettings(self.settings.max_new_tokens, self.settings.top_k, self.options.stop_at_eos)
            settings.validate()
            config = RunConfig(
                self.options.model, specs, self.settings.reference, settings, self.options.fragile_threshold
            )
            config.validate()
        except GendiffError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return
        for entry in targets:
            entry.clear()
            entry.running = True
        self.run_id += 1
        self.running = True
        self.cancel_event = threading.Event()
        self.engine_status = {label: "waiting" for label in self.labels}
        self.refresh_prompt_list()
        self.refresh_view()
        self.run_engines(self.run_id, config, [e.text for e in targets], [e.uid for e in targets], self.cancel_event)

    @work(thread=True, group="run", exclusive=True, exit_on_error=False)
    def run_engines(
        self, run_id: int, config: object, texts: list[str], uids: list[int], cancel: threading.Event
    ) -> None:
        """Worker thread: never touches widgets; reports with post_message only."""
        from gendiff.session import Session

        pending: list[StepGenerated] = []
        last_flush = time.monotonic()

        def flush() -> None:
            nonlocal pending, last_flush
            if pending:
                self.post_message(StepsGenerated(run_id, pending))
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
                self.post_message(EngineEvent(run_id, event))

        try:
            session = Session(config, texts)  # type: ignore[arg-type]
            snapshot = session.run(on_event, cancel)
        except GendiffError as exc:
            self.post_message(RunCompleted(run_id, None, uids, cancel.is_set(), str(exc)))
            return
        except Exception as exc:
            self.post_message(RunCompleted(run_id, None, uids, cancel.is_set(), f"{type(exc).__name__}: {exc}"))
            return
        flush()
        self.post_message(RunCompleted(run_id, snapshot, uids, cancel.is_set()))

    def _entry(self, uid: int) -> PromptEntry | None:
        return next((e for e in self.entries if e.uid == uid), None)

    def _run_uids(self) -> list[int]:
        return [e.uid for e in self.entries if e.running]

    def on_steps_generated(self, message: StepsGenerated) -> None:
        if message.run_id != self.run_id:
            return
        uids = self._run_uids()
        touched_current = False
        for event in message.steps:
            if event.prompt_index >= len(uids):
                continue
            entry = self._entry(uids[event.prompt_index])
            if entry is None:
                continue
            entry.live.setdefault(event.engine, []).append(event.step)
            touched_current |= entry is self.current
            count = len(entry.live[event.engine])
            self.engine_status[event.engine] = (
                f"prompt {event.prompt_index + 1}/{len(uids)} · {count}/{self.settings.max_new_tokens}"
            )
        if touched_current:
            self.refresh_view()
        else:
            self.refresh_columns_titles()

    def refresh_columns_titles(self) -> None:
        for label, column in self.columns().items():
            column.border_title, column.border_subtitle = self.column_title(label)

    def on_engine_event(self, message: EngineEvent) -> None:
        if message.run_id != self.run_id:
            return
        event = message.event
        if isinstance(event, EngineStarted):
            self.engine_status[event.engine] = "loading…"
        elif isinstance(event, EngineLoaded):
            self.engine_status[event.engine] = "generating…"
        elif isinstance(event, EngineFinished):
            tokens = sum(len(t.steps) for t in event.traces)
            self.engine_status[event.engine] = f"{tokens} tok {event.seconds:.2f}s"
        elif isinstance(event, EngineFailed):
            self.engine_status[event.engine] = "FAILED"
            for uid in self._run_uids():
                entry = self._entry(uid)
                if entry is not None:
                    entry.failed[event.engine] = event.error
            self.notify(f"{event.engine} failed: {event.error}", severity="error", timeout=10)
        self.refresh_columns_titles()

    def on_run_completed(self, message: RunCompleted) -> None:
        if message.run_id != self.run_id:
            return
        self.running = False
        results: dict[int, PromptResult] = {}
        if message.snapshot is not None:
            self.last_snapshot = message.snapshot
            results = dict(zip(message.uids, message.snapshot.prompts))
            self.run_snapshots.update({uid: message.snapshot for uid in message.uids})
            _freeze_heap()
        for uid in message.uids:
            entry = self._entry(uid)
            if entry is None:
                continue
            entry.running = False
            entry.live = {}
            if uid in results:
                result = results[uid]
                # the text may have been edited while it ran: then the result is stale
                entry.result = result if result.text == entry.text else None
        if message.error:
            self.notify(message.error, severity="error", timeout=12)
        elif message.cancelled:
            self.notify("run cancelled")
        else:
            count = sum(len(self._entry(u).diverged_engines) for u in message.uids if self._entry(u))
            self.notify(f"run finished: {count} divergence{'s' if count != 1 else ''}")
        self.refresh_prompt_list()
        self.refresh_view()

    def action_cancel_run(self) -> None:
        if self.running and self.cancel_event is not None:
            self.cancel_event.set()
            self.notify("cancelling… (stops after the current step)")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place worker failures become notifications."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            if event.worker.group == "preload":
                self.notify(f"could not load the model: {error}", severity="error", timeout=12)
            else:
                self.running = False
                self.notify(f"{event.worker.name} failed: {error}", severity="error", timeout=12)

    async def action_quit(self) -> None:
        if self.cancel_event is not None:
            self.cancel_event.set()  # the worker stops between steps; nothing half-written
        self.exit()

    # ── actions: diagnosis ─────────────────────────────────────────────────
    def action_bisect(self) -> None:
        """Open the diagnosis view for the selected divergence; compute it in a worker if needed."""
        entry, engine = self.current, self.selected_engine
        d = entry.result.divergence_for(engine) if entry and entry.result and engine else None
        if entry is None or d is None:
            self.notify("nothing to bisect: run the prompts (R), then pick a divergence (n/p)", severity="warning")
            return
        if d.reason != "token":
            what = "identical" if not d.diverged else f"{d.reason}: {d.detail}"
            self.notify(
                f"{d.engine} on prompt {self.current_index + 1} is {what}; b bisects a token divergence (n jumps to one)"
            )
            return
        title = f"diagnosis · prompt {self.current_index + 1} · {d.engine} vs {d.reference} at step {d.step}"
        if d.bisection is not None and d.reconvergence is not None:
            self.push_screen(DiagnosisScreen(title, d))
            return
        if self.comparing:
            self.notify(
                "a comparison of two snapshots can't be replayed here: run gendiff run --bisect on each machine",
                severity="warning",
                timeout=8,
            )
            return
        if self.running:
            self.notify("a run is in progress: bisect when it has finished (escape cancels it)", severity="warning")
            return
        snapshot = self.run_snapshots.get(entry.uid)
        if snapshot is None:
            self.notify("this result has no run to replay: run it again (r)", severity="warning")
            return
        screen = DiagnosisScreen(title, None)
        self.push_screen(screen)
        self.diagnose(entry.uid, snapshot, d, screen)

    @work(thread=True, group="diagnose", exclusive=True, exit_on_error=False)
    def diagnose(self, uid: int, snapshot: Snapshot, d: object, screen: DiagnosisScreen) -> None:
        """Worker: replay the engines (loading the model if needed); the result goes into the
        divergence record, so export includes it and b opens it at once next time."""
        from dataclasses import replace

        from gendiff.session import Session

        try:
            session = Session.from_snapshot(snapshot, self.options.model if self.snapshot_mode is None else None)
            bisection = session.bisect(snapshot, d)  # type: ignore[arg-type]
            reconvergence = session.reconverge(snapshot, d)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 — shown in the view, the app keeps running
            message = str(exc) if isinstance(exc, GendiffError) else f"{type(exc).__name__}: {exc}"
            self.call_from_thread(screen.show_error, f"bisection failed: {message}")
            return
        updated = replace(d, bisection=bisection, reconvergence=reconvergence)  # type: ignore[type-var]
        self.call_from_thread(self._diagnosed, uid, d, updated, screen)

    def _diagnosed(self, uid: int, old: object, new: object, screen: DiagnosisScreen) -> None:
        entry = self._entry(uid)
        if entry is not None and entry.result is not None and old in entry.result.divergences:
            entry.result.divergences[entry.result.divergences.index(old)] = new  # type: ignore[arg-type]
        if screen.is_attached:
            screen.show(new)  # type: ignore[arg-type]
        self.refresh_panel()

    def action_recheck(self) -> None:
        """Re-run this run's diverging pairs in float32 (same engines and batches) in a worker."""
        entry = self.current
        snapshot = self.run_snapshots.get(entry.uid) if entry is not None else None
        if snapshot is None or not snapshot.divergences():
            self.notify("nothing to recheck: run the prompts (R) and find a divergence first", severity="warning")
            return
        if self.comparing or self.running:
            what = "a comparison of two snapshots can't be re-run" if self.comparing else "a run is in progress"
            self.notify(f"{what}: recheck later (gendiff run --recheck float32)", severity="warning")
            return
        self.notify("rechecking the diverging pairs in float32…")
        self.recheck_float32(snapshot)

    @work(thread=True, group="diagnose", exclusive=True, exit_on_error=False)
    def recheck_float32(self, snapshot: Snapshot) -> None:
        """Worker: re-run on a copy of the run; the records go into the divergences on the UI thread."""
        import copy

        from gendiff.recheck import recheck
        from gendiff.session import Session

        rechecked = copy.deepcopy(snapshot)
        try:
            session = Session.from_snapshot(rechecked, self.options.model if self.snapshot_mode is None else None)
            notes = recheck(session, rechecked)
        except Exception as exc:  # noqa: BLE001 — a notification, the app keeps running
            message = str(exc) if isinstance(exc, GendiffError) else f"{type(exc).__name__}: {exc}"
            self.call_from_thread(self.notify, f"recheck failed: {message}", severity="error", timeout=10)
            return
        records = {
            (row, d.engine): d.recheck
            for row, p in enumerate(rechecked.prompts)
            for d in p.divergences
            if d.recheck is not None
        }
        self.call_from_thread(self._rechecked, snapshot, records, notes)

    def _rechecked(self, snapshot: Snapshot, records: dict[tuple[int, str], object], notes: list[str]) -> None:
        from dataclasses import replace

        for row, prompt in enumerate(snapshot.prompts):
            for index, d in enumerate(prompt.divergences):
                record = records.get((row, d.engine))
                if record is not None:
                    prompt.divergences[index] = replace(d, recheck=record)  # type: ignore[arg-type]
        gone = sum(r.verdict == "agrees" for r in records.values())  # type: ignore[attr-defined]
        self.notify(
            "; ".join([f"float32 recheck: {gone} of {len(records)} divergences gone (rounding)", *notes]), timeout=10
        )
        self.refresh_panel()

    # ── actions: settings, export, theme, help ─────────────────────────────
    def action_settings(self) -> None:
        if self.snapshot_mode is not None:
            self.notify("viewing a snapshot: settings are those it was made with", severity="warning")
            return
        available = [n for n in engine_names() if n != "vllm" or self._vllm_available()]

        async def applied(settings: RunSettings | None) -> None:
            if settings is None or settings == self.settings:
                return
            if self.running:
                self.notify("a run is in progress: settings not changed (escape cancels it)", severity="warning")
                return
            self.settings = settings
            for entry in self.entries:
                entry.clear()  # results of other settings would mislead
            self.engine_status = {}
            await self.rebuild_columns()
            self.refresh_prompt_list()
            self.notify("settings applied: results cleared; R runs all prompts")

        self.push_screen(SettingsScreen(self.settings, available), applied)

    @staticmethod
    def _vllm_available() -> bool:
        from gendiff.engines.vllm import vllm_installed

        return vllm_installed()

    def current_snapshot(self) -> Snapshot | None:
        """The results on screen as a Snapshot (metadata from the latest run)."""
        base = self.last_snapshot
        results = [e.result for e in self.entries if e.result is not None]
        if base is None or not results:
            return None
        return Snapshot(
            model=base.model,
            decoding=base.decoding,
            reference=base.reference,
            engines=base.engines,
            prompts=results,
            environment=base.environment,
            notes=base.notes,
            sources=base.sources,
        )

    def action_export(self) -> None:
        snapshot = self.current_snapshot()
        if snapshot is None:
            self.notify("nothing to export yet: run the prompts first (R)", severity="warning")
            return
        default = f"gendiff-{datetime.now():%Y%m%d-%H%M%S}.json"

        def chosen(path: str | None) -> None:
            if path is None:
                return
            try:
                written = snapshot.save(path)
            except GendiffError as exc:
                self.notify(str(exc), severity="error", timeout=10)
                return
            self.notify(f"snapshot written to {written}")

        self.push_screen(ExportDialog(default), chosen)

    def action_next_theme(self) -> None:
        names = [t.name for t in THEMES]
        position = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(position + 1) % len(names)]
        self.notify(f"theme: {self.theme}", timeout=2)

    def action_help(self) -> None:
        groups = [("main screen", [b for b in self.BINDINGS if isinstance(b, Binding)])]
        groups.append(("prompt editor", list(PromptEditor.BINDINGS)))  # type: ignore[arg-type]
        groups.append(("settings", list(SettingsScreen.BINDINGS)))  # type: ignore[arg-type]
        self.push_screen(HelpScreen(groups))

"""MainScreen: the prompt list, the engine columns and the divergence panel; its keys, actions and
the handlers of the workers' messages. Every mark, count and stop comes from the Workspace."""

from __future__ import annotations

import threading
from functools import partial

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static

from gendiff.engines import engine_class
from gendiff.engines.settings import parse_engine_spec
from gendiff.errors import GendiffError
from gendiff.io.documents import Document
from gendiff.run.options import RunOptions
from gendiff.state import view
from gendiff.state.cells import RunPlan
from gendiff.state.progress import FAILED, RunProgress
from gendiff.state.workspace import Workspace
from gendiff.tui.diagnose_actions import DiagnoseActions
from gendiff.tui.dialog_actions import DialogActions
from gendiff.tui.layout_actions import LayoutActions
from gendiff.tui.prompt_actions import PromptActions
from gendiff.tui.run_actions import RunActions, freeze_heap
from gendiff.tui.step_actions import StepActions
from gendiff.tui.widgets.divergence_panel import DivergencePanel
from gendiff.tui.widgets.prompt_list import PromptList, prompt_label, text_cells
from gendiff.tui.widgets.token_column import TokenColumn
from gendiff.tui.workers import preload

MIN_WIDTH, MIN_HEIGHT = 70, 18
# actions that change prompts or start runs: hidden when viewing a snapshot
VIEW_ONLY_HIDDEN = frozenset({"run", "cancel_run", "add", "edit", "delete", "move", "settings"})


class MainScreen(PromptActions, RunActions, DiagnoseActions, StepActions, LayoutActions, DialogActions, Screen[None]):
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
        Binding("right", "step(1)", "Next step", id="step.next"),
        Binding("left", "step(-1)", "Previous step", id="step.prev", show=False),
        Binding("right_square_bracket", "step(1)", "Next step", id="step.next-alt", show=False),
        Binding("left_square_bracket", "step(-1)", "Previous step", id="step.prev-alt", show=False),
        Binding("g", "step_home", "Back to the divergence (step explorer)", id="step.home", show=False),
        Binding("tab", "cycle_engine(1)", "Engine", id="nav.engine"),
        Binding("shift+tab", "cycle_engine(-1)", "Previous engine", id="nav.engine-prev", show=False),
        Binding("o", "filter_engine", "Only engine (compare view)", id="compare.only"),
        Binding("b", "bisect", "Bisect", id="diagnose.bisect"),
        Binding("f", "recheck", "Recheck f32", id="diagnose.recheck"),
        Binding("s", "settings", "Settings", id="settings"),
        Binding("x", "export", "Export", id="export"),
    ]

    def __init__(self, options: RunOptions, document: Document, preload_model: bool = True) -> None:
        super().__init__()
        self.options = options
        self.snapshot = document.snapshot  # viewing saved results (read-only)
        self.book = document.book
        self.preload_model = preload_model and self.snapshot is None
        if self.snapshot is not None:
            self.options = RunOptions.from_snapshot(self.snapshot, options.model if not self.snapshot.sources else None)
            self.ws = Workspace.from_snapshot(self.snapshot)
            freeze_heap()
        else:
            self.ws = Workspace(self.options.labels, self.options.reference_label)
            for text in self.book.prompts if self.book else []:
                self.ws.add(text)
        self.selected_engine: str | None = None
        self.only: str | None = None  # comparing: show only this engine's A and B columns (o cycles)
        self.list_width = 0  # the prompt list's width, set by apply_layout
        self.collapsed = False  # too narrow for every engine: only the reference and the selected one show
        self.step_cursor: int | None = None
        self.step_prompt: int | None = (
            None  # the id of the prompt the step cursor is on  # the step explorer's step, None: the panel shows the divergence
        )
        self.run_progress: RunProgress | None = None  # the last run's per-engine progress
        self.run_id = 0
        self.cancel_event: threading.Event | None = None
        self.plan: RunPlan | None = None
        self.unsaved: str | None = None  # why the last save of the prompt file failed
        self._diagnosing: tuple = (None, None, None, None)  # prompt id, divergence, its replay record, view
        self._isolated: set[str] = set()
        self._rebuilding_list = False

    # ── layout ─────────────────────────────────────────────────────────────
    def compose(self) -> ComposeResult:
        with Vertical(id="main"):
            yield Static("", id="run-line")
            yield Static("", id="progress")
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
        self.query_one("#prompts", PromptList).border_title = "Prompts"
        self.query_one("#prompts", PromptList).focus()
        await self.rebuild_columns()
        self.refresh_prompt_list(0)
        self.check_size(self.app.size.width, self.app.size.height)
        if self.book is not None and self.book.path is not None:
            self.set_interval(2.0, self.check_book_on_disk)
        if self.preload_model:
            self.run_worker(partial(preload, self.post_message, self.options), thread=True, group="preload")

    def on_resize(self, event: events.Resize) -> None:
        # the size in the event is the new one (self.app.size can still be the old one here)
        self.check_size(event.size.width, event.size.height)
        if self.step_cursor is not None:  # the step view breaks its lines at the panel's width
            self.call_after_refresh(self.refresh_view)

    def check_size(self, width: int, height: int) -> None:
        self.set_class(width < MIN_WIDTH or height < MIN_HEIGHT, "too-small")
        self.apply_layout(width)

    def refresh_all(self) -> None:
        self.refresh_prompt_list()
        self.refresh_view()

    # ── derived properties ─────────────────────────────────────────────────
    @property
    def current_index(self) -> int:
        highlighted = self.query_one("#prompts", PromptList).highlighted
        return highlighted if highlighted is not None and highlighted < len(self.ws.prompts) else 0

    @property
    def current(self):  # noqa: ANN201 — Prompt | None
        return self.ws.prompts[self.current_index] if self.ws.prompts else None

    @property
    def running(self) -> bool:
        return self.plan is not None

    @property
    def comparing(self) -> bool:
        return self.snapshot is not None and bool(self.snapshot.sources)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """False hides a key that can't apply here from the footer (and the palette)."""
        if action in VIEW_ONLY_HIDDEN and self.snapshot is not None:
            return False  # a snapshot is read-only: nothing to run, edit or reconfigure
        if action == "filter_engine":
            return self.comparing  # the engine filter is the compare view's
        if action in ("bisect", "recheck") and self.comparing:
            # two machines' runs can't be replayed here; a diagnosis stored in B still opens
            d = self.ws.divergence(self.current, self.selected_engine) if self.current is not None else None
            return action == "bisect" and d is not None and d.bisection is not None and d.reconvergence is not None
        return True

    @property
    def compared_labels(self) -> list[str]:
        """The columns with a divergence of their own (tab cycles them)."""
        if self.comparing:
            return [label for label in self.column_order() if label.endswith("@B")]
        return self.ws.labels[1:]

    @property
    def book_path(self) -> str:
        return str(self.book.path) if self.book and self.book.path else "(no file)"

    def isolated_labels(self) -> set[str]:
        """Engines that run each prompt alone (a batch means nothing to them)."""

        isolated = set()
        for label in self.ws.labels:
            try:
                name = parse_engine_spec(label.removesuffix("@A").removesuffix("@B")).name
                if getattr(engine_class(name), "isolates_prompts", False):
                    isolated.add(label)
            except GendiffError:
                pass
        return isolated

    # ── rendering ──────────────────────────────────────────────────────────
    async def rebuild_columns(self) -> None:
        container = self.query_one("#columns", Horizontal)
        await container.remove_children()
        await container.mount_all(TokenColumn(label) for label in self.ws.labels)
        self._isolated = self.isolated_labels()
        others = self.compared_labels
        if self.selected_engine not in others:
            self.selected_engine = others[0] if others else None
        self.apply_layout()
        self.refresh_view()

    def columns(self) -> dict[str, TokenColumn]:
        return {column.label: column for column in self.query(TokenColumn)}

    def columns_in_order(self) -> list[TokenColumn]:
        """The columns as they sit on screen, left to right."""
        return [c for c in self.query_one("#columns", Horizontal).children if isinstance(c, TokenColumn)]

    def column_title(self, label: str) -> tuple[str, str]:
        """(title, foot): the engine on top; its progress, call and settings at the bottom."""
        title = f"{label} (ref)" if label == self.ws.reference else label
        others = self.compared_labels
        if self.collapsed and label == self.selected_engine and label in others:
            title += f" · {others.index(label) + 1}/{len(others)}"  # tab (first in the footer) moves on
        prompt = self.current
        foot = [self.engine_state(label)]
        if prompt is not None and not self.running:
            foot.append(view.batch_note(self.ws, prompt, label, self._isolated))
        foot.append(f"{self.options.dtype} · {self.options.attn}")
        return title, " · ".join(part for part in foot if part)

    def refresh_prompt_list(self, highlighted: int | None = None) -> None:
        prompt_list = self.query_one("#prompts", PromptList)
        colours = self.app.theme_variables
        cells = text_cells(self.list_width)
        rows = [
            prompt_label(i, p.text, *self.ws.mark(p), colours, cells, self.engines_done(p.id))
            for i, p in enumerate(self.ws.prompts, 1)
        ]
        self._rebuilding_list = True
        prompt_list.set_rows(rows, self.current_index if highlighted is None else highlighted)
        self._rebuilding_list = False
        where = "snapshot" if self.snapshot else self.book_path
        prompt_list.border_subtitle = where[-30:]

    def refresh_progress(self) -> None:
        """Every engine's state in a strip under the header, which never scrolls away."""
        strip = self.query_one("#progress", Static)
        strip.display = self.run_progress is not None
        if self.run_progress is not None:
            strip.update(Text(" │ ".join(self.run_progress.lines(self.options.max_new_tokens))))

    def engine_state(self, label: str) -> str:
        """The engine's progress line without its name, for its column's foot."""
        if self.run_progress is None or label not in self.run_progress.engines:
            return ""
        engine = self.run_progress.engines[label]
        return engine.line(self.options.max_new_tokens, self.run_progress.clock()).removeprefix(label).strip()

    def engines_done(self, prompt_id: int) -> str:
        """While running, one mark per engine in column order: ● finished this prompt, ✗ failed, · not yet."""
        plan, progress = self.plan, self.run_progress
        if plan is None or progress is None or prompt_id not in plan.ids:
            return ""
        marks = []
        for label in self.ws.labels:
            engine = progress.engines.get(label)
            if engine is None:
                marks.append("·")
            else:
                marks.append("●" if prompt_id in engine.done_prompts else "✗" if engine.state == FAILED else "·")
        return "".join(marks)

    def refresh_view(self) -> None:
        """Columns and panel for the selected prompt (cheap: one prompt's tokens)."""
        self.refresh_progress()
        prompt = self.current
        if self.step_cursor is not None and (prompt is None or prompt.id != self.step_prompt):
            self.step_cursor = None  # another prompt: its own divergence first
        self.query_one("#prompt-text", Static).update(
            Text("") if prompt is None else Text.assemble((f"prompt {self.current_index + 1}: ", "dim"), prompt.text)
        )
        for label, column in self.columns().items():
            column.border_title, column.border_subtitle = self.column_title(label)
            column.set_class(label == self.selected_engine, "selected")
            if prompt is None:
                column.show([], None)
                continue
            mark = view.column_mark(self.ws, prompt, label, self.selected_engine, self.comparing)
            column.show(self.ws.steps(prompt, label), mark, view.cell_note(self.ws, prompt, label), self.step_cursor)
        if self.step_cursor is not None and prompt is not None:
            self.refresh_step_panel()
        else:
            self.refresh_panel()
        self.refresh_run_line()
        if self.comparing:  # b shows only where a stored diagnosis can open
            self.refresh_bindings()

    def refresh_panel(self) -> None:
        panel = self.query_one("#panel", DivergencePanel)
        prompt, engine = self.current, self.selected_engine
        number = self.current_index + 1
        if prompt is None:
            panel.show_divergence("divergence", None, "no prompts: press a to add one")
            return
        batch = view.batch_title(self.ws, prompt)
        suffix = f" · {batch}" if batch else ""
        d = self.ws.divergence(prompt, engine)
        early = d is None and self.running
        if early:  # both finished this prompt while other engines still run: compare them now
            d = self.ws.early_divergence(prompt, engine, self.options.fragile_threshold)
            suffix += " · the run goes on"
        if d is None:
            hint = view.panel_hint(self.ws, prompt, engine)
            panel.show_divergence(f"prompt {number} · {engine or '—'}{suffix}", None, hint)
            return
        if d.diverged and d.step is not None:
            title = f"prompt {number} · {d.engine} diverges from {d.reference} at step {d.step}"
            if d.reason == "token" and d.bisection is None and not self.comparing and not early:
                title += " · b bisects"
        elif d.diverged:
            title = f"prompt {number} · {d.engine}: {d.reason}"
        else:
            title = f"prompt {number} · {d.engine} identical to {d.reference}"
        panel.show_divergence(title + suffix, d, statistics=prompt.statistics)

    def refresh_run_line(self) -> None:
        model = self.options.model or "demo model"
        if self.snapshot is not None:
            model = f"snapshot of {self.snapshot.model.get('name')} ({self.snapshot.created})"
        o = self.options
        settings = f"{o.dtype} · {o.attn}"
        if self.comparing:  # each side's own dtype and attention, not A's for both
            model = f"{self.snapshot.model.get('name')}"
            settings = " vs ".join(
                f"{s.get('tag')}: {s.get('model', {}).get('dtype')} · {s.get('model', {}).get('attn')} ({s.get('path')})"
                for s in self.snapshot.sources
            )
            if self.only is not None:
                settings += f" · only {self.only} (o)"
        self.query_one("#run-line", Static).update(
            f"[b]gendiff[/b] · {view.header(self.ws)} · {model} · {settings} · "
            f"{o.max_new_tokens} tokens · top-{o.top_k} · ref {self.ws.reference}"
        )

    @on(OptionList.OptionHighlighted, "#prompts")
    def prompt_highlighted(self) -> None:
        if not self._rebuilding_list:
            self.refresh_view()

    @on(OptionList.OptionSelected, "#prompts")
    def prompt_selected(self) -> None:
        self.action_edit()

    # ── navigation ─────────────────────────────────────────────────────────
    def action_cycle_engine(self, offset: int) -> None:
        others = self.compared_labels
        if not others:
            return
        position = others.index(self.selected_engine) if self.selected_engine in others else -1
        self.selected_engine = others[(position + offset) % len(others)]
        self.apply_layout()
        self.refresh_view()
        self.call_after_refresh(self.scroll_to_token)

    def action_jump(self, direction: int) -> None:
        """Move to the next (1) or previous (-1) divergence, over prompts then engines."""
        others = self.compared_labels
        stops = [(i, others.index(e)) for i, e in self.ws.stops(others)]
        if not stops:
            hint = (
                "" if any(self.ws.mark(p)[0] != "new" for p in self.ws.prompts) else " yet: run the prompts first (R)"
            )
            self.notify("no divergences" + hint)
            return
        here = (self.current_index, others.index(self.selected_engine) if self.selected_engine in others else -1)
        if direction > 0:
            target = next((s for s in stops if s > here), stops[0])
        else:
            target = next((s for s in reversed(stops) if s < here), stops[-1])
        self.selected_engine = others[target[1]]
        self.step_cursor = None
        self.apply_layout()
        self.refresh_prompt_list(target[0])
        self.refresh_view()
        self.call_after_refresh(self.scroll_to_token)

"""The workbench: the prompt list, the engine columns and the divergence panel, and the keys that
move what they show: the selected engine (tab), the next divergence (n/p), the step explorer
(←/→, g), the compare view's engine filter (o). It owns that view state (nothing of it is in the
Workspace) and reads everything else from the Workspace, so its marks, titles and readings say
what the state says. Diagnoses are asked of the screen by message (b, f)."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message

from gendiff.display import inert
from gendiff.state import view
from gendiff.state.cells import Prompt
from gendiff.state.workspace import Workspace
from gendiff.tui.layout import Layout, layout, paired
from gendiff.tui.widgets.divergence_panel import DivergencePanel
from gendiff.tui.widgets.engine_columns import EngineColumns
from gendiff.tui.widgets.prompt_list import PromptList, prompt_label, text_cells
from gendiff.tui.widgets.step_view import step_text


class Workbench(Vertical):
    """``comparing``: two snapshots side by side (labels ``engine@A`` / ``engine@B``)."""

    BINDINGS = [
        Binding("n", "jump(1)", "Next", id="nav.next", tooltip="Next divergence"),
        Binding("p", "jump(-1)", "Prev", id="nav.prev", show=False, tooltip="Previous divergence"),
        Binding("tab", "cycle_engine(1)", "Engine", id="nav.engine", tooltip="Next engine against the reference"),
        Binding("shift+tab", "cycle_engine(-1)", "Previous engine", id="nav.engine-prev", show=False),
        Binding("right", "step(1)", "Step →", id="step.next", show=False, tooltip="Next step"),
        Binding("left", "step(-1)", "Previous step", id="step.prev", show=False),
        Binding("right_square_bracket", "step(1)", "Next step", id="step.next-alt", show=False),
        Binding("left_square_bracket", "step(-1)", "Previous step", id="step.prev-alt", show=False),
        Binding("g", "step_home", "Back to the divergence (step explorer)", id="step.home", show=False),
        Binding("o", "filter_engine", "Only", id="compare.only", tooltip="Only this engine's divergences (again: all)"),
        Binding("b", "bisect", "Bisect", id="diagnose.bisect", tooltip="Bisect: the first module that differs"),
        Binding(
            "f",
            "recheck",
            "f32",
            id="diagnose.recheck",
            tooltip="Recheck in float32 every divergence of this prompt's call (its batch)",
        ),
    ]

    class DiagnoseRequested(Message):
        """b: open the diagnosis view of this prompt's divergence of ``engine``."""

        def __init__(self, pid: int, engine: str) -> None:
            super().__init__()
            self.pid, self.engine = pid, engine

    class ViewChanged(Message):
        """What the workbench shows changed in a way the screen's header says (the o filter)."""

    class RecheckRequested(Message):
        """f: re-run this prompt's call's diverging pairs in float32."""

        def __init__(self, pid: int) -> None:
            super().__init__()
            self.pid = pid

    def __init__(self, ws: Workspace, comparing: bool, read_only: bool, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.ws = ws
        self.comparing = comparing
        self.read_only = read_only
        self.selected_engine: str | None = None
        self.only: str | None = None  # comparing: only this engine's A and B columns (o cycles)
        self.step_cursor: int | None = None  # the step explorer's step; None: the panel shows the divergence
        self.step_prompt: int | None = None  # the prompt the cursor is on
        self.list_width = 0
        self.collapsed = False
        self.where = ""  # the prompt file (or "snapshot"), for the list's border
        self.drawn_row: int | None = None  # n/p moved the highlight here and drew the view already

    def compose(self) -> ComposeResult:
        with Horizontal(id="top"):
            yield PromptList(id="prompts")
            yield EngineColumns(id="columns-area")
        yield DivergencePanel(id="panel")

    def on_mount(self) -> None:
        prompts = self.prompt_list
        prompts.border_title = "Prompts"
        prompts.read_only = self.read_only

    # ── parts ──────────────────────────────────────────────────────────────
    @property
    def prompt_list(self) -> PromptList:
        return self.query_one("#prompts", PromptList)

    @property
    def columns(self) -> EngineColumns:
        return self.query_one("#columns-area", EngineColumns)

    @property
    def panel(self) -> DivergencePanel:
        return self.query_one("#panel", DivergencePanel)

    @property
    def current(self) -> Prompt | None:
        pid = self.prompt_list.selected_id
        prompt = self.ws.get(pid) if pid is not None else None
        return prompt if prompt is not None else (self.ws.prompts[0] if self.ws.prompts else None)

    @property
    def current_number(self) -> int:
        prompt = self.current
        return self.ws.index_of(prompt.id) + 1 if prompt is not None else 0

    @property
    def compared_labels(self) -> list[str]:
        """The engines with a divergence of their own (tab cycles them)."""
        if self.comparing:
            return [label for label in self.column_order() if label.endswith("@B")]
        return self.ws.labels[1:]

    def select(self, pid: int) -> None:
        if self.ws.get(pid) is not None:
            self.move_highlight(self.ws.index_of(pid))
            self.refresh_view()

    # ── layout ─────────────────────────────────────────────────────────────
    def column_order(self) -> list[str]:
        if not self.comparing:
            return self.ws.labels
        return paired(self.ws.labels, {self.only} if self.only is not None else None)

    def current_layout(self, width: int) -> Layout:
        reference = self.ws.reference
        if self.comparing and self.selected_engine:
            reference = self.selected_engine.replace("@B", "@A")
        return layout(width, self.column_order(), reference, self.selected_engine)

    async def set_engines(self) -> None:
        """The Workspace's engines changed (or the first mount): one column per engine."""
        await self.columns.set_engines(self.ws.labels)
        others = self.compared_labels
        if self.selected_engine not in others:
            self.selected_engine = others[0] if others else None
        self.apply_layout(rows=False)
        self.refresh_all()  # the rows too, once

    def apply_layout(self, width: int | None = None, rows: bool = True) -> None:
        """``rows``: redraw the prompt list's rows if its width changed (False: the caller does)."""
        shape = self.current_layout(width or self.app.size.width)
        if shape.prompt_width != self.list_width:
            self.list_width = self.prompt_list.styles.width = shape.prompt_width  # type: ignore[assignment]
            if rows:
                self.refresh_list()
        self.columns.show_only(shape.shown)
        self.collapsed = shape.collapsed

    # ── rendering (everything from the Workspace) ──────────────────────────
    def refresh_all(self) -> None:
        self.refresh_list()
        self.refresh_view()

    def row(self, number: int, prompt: Prompt) -> Text:
        mark, count, engines_done = view.prompt_row(self.ws, prompt)
        return prompt_label(
            number, prompt.text, mark, count, self.app.theme_variables, text_cells(self.list_width), engines_done
        )

    def refresh_list(self, highlighted: int | None = None) -> None:
        prompts = self.prompt_list
        rows = [self.row(i, p) for i, p in enumerate(self.ws.prompts, 1)]
        position = highlighted
        if position is None:
            current = self.current
            position = self.ws.index_of(current.id) if current is not None else 0
        prompts.set_rows(rows, [p.id for p in self.ws.prompts], position)
        prompts.border_subtitle = view.where(self.where, max(8, self.list_width - 6))

    def refresh_rows(self, pids: set[int]) -> None:
        """Only these prompts' rows (cheap while a run streams)."""
        rows = {}
        for pid in pids:
            prompt = self.ws.get(pid)
            if prompt is not None:
                index = self.ws.index_of(pid)
                rows[index] = self.row(index + 1, prompt)
        self.prompt_list.replace_rows(rows)

    def refresh_feet(self) -> None:
        """The columns' titles and foots only (the progress in them moves every tick)."""
        prompt = self.current
        for label, column in self.columns.columns().items():
            column.border_title = inert(self.column_title(label))
            column.border_subtitle = inert(view.column_foot(self.ws, prompt, label))

    def column_title(self, label: str) -> str:
        title = f"{label} (ref)" if label == self.ws.reference else label
        others = self.compared_labels
        if self.collapsed and label == self.selected_engine and label in others:
            title += f" · {others.index(label) + 1}/{len(others)}"  # tab moves on
        return title

    def refresh_view(self) -> None:
        """The columns and the panel for the selected prompt (one prompt's tokens: cheap)."""
        prompt = self.current
        if self.step_cursor is not None and (prompt is None or prompt.id != self.step_prompt):
            self.step_cursor = None  # another prompt: its own divergence first
        self.columns.show_prompt(self.current_number if prompt else None, prompt.text if prompt else "")
        for label, column in self.columns.columns().items():
            if prompt is None:
                column.show_engine(self.column_title(label), "", [], None, None, None, label == self.selected_engine)
                continue
            column.show_engine(
                self.column_title(label),
                view.column_foot(self.ws, prompt, label),
                self.ws.texts(prompt, label),
                view.column_mark(self.ws, prompt, label, self.selected_engine, self.comparing),
                view.cell_note(self.ws, prompt, label),
                self.step_cursor,
                label == self.selected_engine,
            )
        if self.step_cursor is not None and prompt is not None:
            self.refresh_step_panel(prompt)
        else:
            self.refresh_panel(prompt)
        if self.comparing:
            self.screen.refresh_bindings()  # b shows only where a stored diagnosis opens

    def refresh_panel(self, prompt: Prompt | None) -> None:
        panel = self.panel
        if prompt is None:
            panel.show_divergence("divergence", None, "no prompts: press a to add one")
            return
        engine = self.selected_engine
        busy = self.ws.running or (self.ws.recheck is not None and not self.ws.recheck.ended)
        title = view.panel_title(
            self.ws, prompt, self.current_number, engine, not self.comparing and not busy and self.ws.replays
        )
        d = self.ws.divergence(prompt, engine)
        if d is None:
            panel.show_divergence(title, None, view.panel_hint(self.ws, prompt, engine))
            return
        panel.show_divergence(title, d, statistics=prompt.statistics, note=view.panel_reading(self.ws, prompt, d))

    def divergence_step(self) -> int | None:
        prompt = self.current
        d = self.ws.divergence(prompt, self.selected_engine) if prompt is not None else None
        return d.step if d is not None and d.diverged else None

    def refresh_step_panel(self, prompt: Prompt) -> None:
        """The panel at the cursor: every engine's step there; after the split, what the engines
        saw differs, so it says so and adds the teacher-forced step where a re-convergence has it."""
        step = self.step_cursor
        assert step is not None
        reference = self.ws.reference
        if self.comparing and self.selected_engine:
            reference = self.selected_engine.replace("@B", "@A")
        rows = []
        for label in self.ws.labels:
            rows.append((label, self.ws.step_at(prompt, label, step)))
        split = self.divergence_step()
        note = ""
        d = self.ws.divergence(prompt, self.selected_engine)
        if split is not None and step > split and d is not None:
            forced = d.reconvergence.forced_steps if d.reconvergence is not None else ()
            note = (
                f"after step {split} {d.engine} and {d.reference} continue on different prefixes (each its own "
                "tokens): their top candidates here answer different questions."
            )
            if step < len(forced):
                rows.append((f"{d.engine} fed {d.reference}'s tokens", forced[step]))
                note += f" The last block is {d.engine} fed {d.reference}'s tokens (teacher-forced): like with like."
            elif self.ws.replays:
                note += f" b computes the teacher-forced view ({d.engine} fed {d.reference}'s tokens)."
        panel = self.panel
        title = f"prompt {self.current_number} · step {step} · ←/→ step · g back to the divergence"
        if inert(title) != panel.border_title:
            panel.scroll_home(animate=False)
        panel.border_title = inert(title)
        width = panel.body.content_region.width or None
        panel.update(step_text(step, rows, reference, self.app.theme_variables, split, width, note))

    def bring_tokens_into_view(self) -> None:
        """Each shown column's step cursor, or its divergent token, into view."""
        self.columns.bring_into_view("cursor" if self.step_cursor is not None else "mark")

    @on(PromptList.OptionHighlighted, "#prompts")
    def prompt_highlighted(self, event: PromptList.OptionHighlighted) -> None:
        drawn, self.drawn_row = self.drawn_row, None
        if self.prompt_list.rebuilding:
            return
        if event.option_index != drawn:
            self.refresh_view()
        self.bring_tokens_into_view()

    def move_highlight(self, row: int) -> None:
        """Highlight ``row`` for a view that the caller draws now (its highlight message won't again)."""
        if row != self.prompt_list.highlighted and 0 <= row < self.prompt_list.option_count:
            self.drawn_row = row
            self.prompt_list.highlight_row(row)

    # ── keys ───────────────────────────────────────────────────────────────
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if getattr(self.app, "keys_held", False):
            return False  # a dialog is opening: the keys typed now are its text
        if action == "filter_engine":
            return self.comparing
        if action in ("bisect", "recheck") and self.comparing:
            prompt = self.current
            d = self.ws.divergence(prompt, self.selected_engine) if prompt is not None else None
            return action == "bisect" and d is not None and d.bisection is not None and d.reconvergence is not None
        return True

    def action_cycle_engine(self, offset: int) -> None:
        others = self.compared_labels
        if not others:
            return
        position = others.index(self.selected_engine) if self.selected_engine in others else -1
        self.selected_engine = others[(position + offset) % len(others)]
        self.apply_layout()
        self.refresh_view()
        self.bring_tokens_into_view()

    def action_jump(self, direction: int) -> None:
        """The next (1) or previous (-1) divergence, over prompts then engines."""
        others = self.compared_labels
        current = self.current
        here = (
            self.ws.index_of(current.id) if current is not None else -1,
            others.index(self.selected_engine) if self.selected_engine in others else -1,
        )
        target = view.next_stop(self.ws, others, here, direction)
        if target is None:
            ran = any(self.ws.mark(p)[0] != "new" for p in self.ws.prompts)
            self.notify("no divergences" + ("" if ran or self.ws.saved else " yet: run the prompts first (R)"))
            return
        self.selected_engine = others[target[1]]
        self.step_cursor = None
        self.apply_layout()
        self.move_highlight(target[0])  # the rows themselves are unchanged: no rebuild
        self.refresh_view()
        self.bring_tokens_into_view()

    def action_step(self, offset: int) -> None:
        """Move the step cursor; from no cursor, start next to the divergence (or at step 0)."""
        prompt = self.current
        length = max((self.ws.length(prompt, label) for label in self.ws.labels), default=0) if prompt else 0
        if prompt is None or length == 0:
            self.notify(view.no_tokens_note(self.ws))
            return
        if self.step_cursor is None:
            base = self.divergence_step()
            target = base + offset if base is not None else 0
        else:
            target = self.step_cursor + offset
        self.step_cursor = max(0, min(length - 1, target))
        self.step_prompt = prompt.id
        self.refresh_view()
        self.bring_tokens_into_view()

    def action_step_home(self) -> None:
        if self.step_cursor is not None:
            self.step_cursor = None
            self.refresh_view()
            self.bring_tokens_into_view()

    def action_filter_engine(self) -> None:
        """Comparing: every engine's A/B pair, then only the first engine's, the next, … and all again."""
        engines = list(dict.fromkeys(label.rsplit("@", 1)[0] for label in self.ws.labels))
        position = engines.index(self.only) if self.only in engines else -1
        self.only = engines[position + 1] if position + 1 < len(engines) else None
        others = self.compared_labels
        if self.selected_engine not in others:
            self.selected_engine = others[0] if others else None
        self.step_cursor = None
        self.apply_layout()
        self.refresh_all()
        self.post_message(self.ViewChanged())
        self.notify(f"showing {'every engine' if self.only is None else 'only ' + self.only} (o: next)", timeout=3)

    def action_bisect(self) -> None:
        prompt, engine = self.current, self.selected_engine
        if prompt is None or engine is None:
            self.notify("nothing to bisect: run the prompts (R), then pick a divergence (n/p)", severity="warning")
            return
        self.post_message(self.DiagnoseRequested(prompt.id, engine))

    def action_recheck(self) -> None:
        prompt = self.current
        if prompt is None:
            self.notify("nothing to recheck: run the prompts (R) and find a divergence first", severity="warning")
            return
        self.post_message(self.RecheckRequested(prompt.id))

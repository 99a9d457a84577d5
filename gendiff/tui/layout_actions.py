"""Fitting the main screen to the terminal (the rules are gendiff.tui.layout's): the prompt
list's width, which engine columns show, the compare view's A/B pairs and its engine filter
(o), and scrolling the divergent token or the step cursor into view."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.containers import VerticalScroll
from textual.geometry import Region

from gendiff.tui.layout import Layout, layout, paired
from gendiff.tui.widgets.prompt_list import PromptList

if TYPE_CHECKING:
    from gendiff.tui.screens.main import MainScreen

    _Base = MainScreen
else:
    _Base = object


class LayoutActions(_Base):
    """Mixed into MainScreen (uses its ``ws``, ``selected_engine``, ``only`` and ``columns``)."""

    def current_layout(self, width: int | None = None) -> Layout:
        """layout.py's rules for this terminal: the prompt list's width and which columns show."""
        selected = self.selected_engine
        reference = self.ws.reference
        if self.comparing and selected:
            reference = selected.replace("@B", "@A")
        return layout(width or self.app.size.width, self.column_order(), reference, selected)

    def column_order(self) -> list[str]:
        """The columns in order: comparing, each engine's A and B side by side (only the
        filtered engine's when ``o`` picked one)."""
        if not self.comparing:
            return self.ws.labels
        return paired(self.ws.labels, {self.only} if self.only is not None else None)

    def apply_layout(self, width: int | None = None) -> None:
        """Size the prompt list and show only the columns that fit (reference + selected when collapsed)."""
        shape = self.current_layout(width)
        prompt_list = self.query_one("#prompts", PromptList)
        if shape.prompt_width != self.list_width:
            self.list_width = prompt_list.styles.width = shape.prompt_width
            self.refresh_prompt_list()  # the rows' text share changes with the width
        for label, column in self.columns().items():
            column.display = label in shape.shown
        if self.comparing:  # the pairs in layout order, whatever order the columns were mounted in
            container = self.query_one("#columns")
            for index, label in enumerate(shape.shown):
                column = self.columns().get(label)
                if column is not None and container.children.index(column) != index:
                    container.move_child(column, before=index)
        self.collapsed = shape.collapsed

    def scroll_to_token(self) -> None:
        """Scroll the columns so the step cursor's token, or else the selected engine's divergent
        token, is in view (a divergence at a late step is below the fold otherwise)."""
        columns = self.columns()
        what = "cursor" if self.step_cursor is not None else "mark"
        order = [self.selected_engine, *columns] if self.selected_engine else list(columns)
        scroll = self.query_one("#columns-scroll", VerticalScroll)
        for label in order:
            column = columns.get(label)
            if column is None or not column.display:
                continue
            line = column.line_of(what)
            if line is None:
                continue
            top = column.content_region.y - scroll.content_region.y + round(scroll.scroll_y)
            scroll.scroll_to_region(
                Region(0, top + line, 1, 1), animate=False, center=True, x_axis=False, immediate=True
            )
            return

    def action_filter_engine(self) -> None:
        """Comparing: show all engines' A/B pairs, then only the first engine's, the next, … and all again."""
        if not self.comparing:
            self.notify("o filters engines in the compare view (gendiff A.json B.json)")
            return
        engines = list(dict.fromkeys(label.rsplit("@", 1)[0] for label in self.ws.labels))
        position = engines.index(self.only) if self.only in engines else -1
        self.only = engines[position + 1] if position + 1 < len(engines) else None
        others = self.compared_labels
        if self.selected_engine not in others:
            self.selected_engine = others[0] if others else None
        self.step_cursor = None
        self.apply_layout()
        self.refresh_all()
        self.notify(f"showing {'every engine' if self.only is None else 'only ' + self.only} (o: next)", timeout=3)

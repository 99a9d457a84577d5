"""The engine columns: the selected prompt's text above one column per engine. Each column
keeps its title (the engine) and its foot (progress, call, settings) on its frame and scrolls
its tokens inside, so the foot is on screen at every size and each column can bring its own
divergent token into view."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from gendiff.display import inert
from gendiff.tui.widgets.steady_static import SteadyStatic
from gendiff.tui.widgets.token_column import TokenColumn


class EngineColumn(TokenColumn):
    """One engine's frame: ``border_title`` / ``border_subtitle`` stay put, the tokens scroll
    inside (the frame is the token column itself: one widget, drawn with the line API)."""

    DEFAULT_CSS = """
    EngineColumn { width: 1fr; height: 1fr; scrollbar-size-vertical: 1; }
    """

    def __init__(self, label: str) -> None:
        super().__init__(label, classes="engine-column")

    @property
    def tokens(self) -> TokenColumn:
        """The column's tokens (the frame draws them itself)."""
        return self

    def show_engine(
        self,
        title: str,
        foot: str,
        texts: Sequence[str],
        mark: int | None,
        note: str | None,
        cursor: int | None,
        selected: bool,
    ) -> None:
        """The frame's title and foot, the selection, and the tokens; only what changed is redrawn."""
        title, foot = inert(title), inert(foot)
        if self.border_title != title:
            self.border_title = title
        if self.border_subtitle != foot:
            self.border_subtitle = foot
        if self.has_class("selected") != selected:
            self.set_class(selected, "selected")
        self.show(texts, mark, note, cursor)

    def bring_into_view(self, what: str) -> bool:
        """Scroll so the divergent token (``"mark"``) or the step cursor (``"cursor"``) is in view."""
        line = self.line_of(what)
        if line is None:
            return False
        self.scroll_to(y=max(0, line - self.scrollable_content_region.height // 2), animate=False, immediate=True)
        return True


class EngineColumns(Vertical):
    """The prompt's text and the columns (mounted per engine label, shown as the layout says)."""

    DEFAULT_CSS = """
    EngineColumns { width: 1fr; height: 1fr; }
    EngineColumns > #columns { height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield SteadyStatic("", id="prompt-text", settle=True)
        yield Horizontal(id="columns")

    async def set_engines(self, labels: list[str]) -> None:
        row = self.query_one("#columns", Horizontal)
        await row.remove_children()
        await row.mount_all(EngineColumn(label) for label in labels)

    def columns(self) -> dict[str, EngineColumn]:
        return {column.label: column for column in self.query(EngineColumn)}

    def in_order(self) -> list[EngineColumn]:
        """The columns as they sit on screen, left to right (hidden ones too)."""
        row = self.query_one("#columns", Horizontal)
        return [child for child in row.children if isinstance(child, EngineColumn)]

    def show_only(self, shown: tuple[str, ...]) -> None:
        """Show the columns in ``shown``, in that order."""
        row = self.query_one("#columns", Horizontal)
        columns = self.columns()
        for label, column in columns.items():
            column.display = label in shown
        for index, label in enumerate(shown):
            column = columns.get(label)
            if column is not None and row.children.index(column) != index:
                row.move_child(column, before=index)

    def bring_into_view(self, what: str) -> None:
        """Scroll each shown column to its divergent token (``"mark"``) or step cursor
        (``"cursor"``) before this frame is drawn (one paint, not one at the old place and one at
        the new), and again after the next refresh in case a relayout moved it (unmoved: no paint)."""

        def scroll() -> None:
            for column in self.columns().values():
                if column.display:
                    column.bring_into_view(what)

        scroll()
        self.call_after_refresh(scroll)

    def show_prompt(self, number: int | None, text: str) -> None:
        shown = Text("") if number is None else Text.assemble((f"prompt {number}: ", "dim"), inert(text))
        self.query_one("#prompt-text", Static).update(shown)

"""The engine columns: the selected prompt's text above one column per engine. Each column
keeps its title (the engine) and its foot (progress, call, settings) on its frame and scrolls
its tokens inside, so the foot is on screen at every size and each column can bring its own
divergent token into view."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Static

from gendiff.display import inert
from gendiff.records.trace import TokenStep
from gendiff.tui.widgets.token_column import TokenColumn


class EngineColumn(VerticalScroll):
    """One engine's frame: ``border_title`` / ``border_subtitle`` stay put, the tokens scroll."""

    DEFAULT_CSS = """
    EngineColumn { width: 1fr; height: 1fr; scrollbar-size-vertical: 1; }
    """

    def __init__(self, label: str) -> None:
        super().__init__(classes="engine-column")
        self.label = label
        self.tokens = TokenColumn(label)

    def compose(self) -> ComposeResult:
        yield self.tokens

    def show(
        self,
        title: str,
        foot: str,
        steps: list[TokenStep],
        mark: int | None,
        note: str | None,
        cursor: int | None,
        selected: bool,
    ) -> None:
        self.border_title, self.border_subtitle = inert(title), inert(foot)
        self.set_class(selected, "selected")
        self.tokens.show(steps, mark, note, cursor)

    def bring_into_view(self, what: str) -> bool:
        """Scroll so the divergent token (``"mark"``) or the step cursor (``"cursor"``) is in view."""
        line = self.tokens.line_of(what)
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
        yield Static("", id="prompt-text")
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

    def show_prompt(self, number: int | None, text: str) -> None:
        shown = Text("") if number is None else Text.assemble((f"prompt {number}: ", "dim"), inert(text))
        self.query_one("#prompt-text", Static).update(shown)

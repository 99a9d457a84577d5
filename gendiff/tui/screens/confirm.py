"""A yes/no question, optionally quoting what it is about (e.g. the prompt to delete)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from gendiff.display import inert

QUOTE_CHARS = 600  # beyond this the quote is cut; the box shows a few lines anyway


def quoted(text: str) -> Text:
    """``text`` between quotation marks, cut at QUOTE_CHARS."""
    shown = text if len(text) <= QUOTE_CHARS else text[:QUOTE_CHARS] + "…"
    return Text(f"“{inert(shown)}”")


class Confirm(ModalScreen[bool]):
    """Dismisses with True (y / enter) or False (n / escape)."""

    BINDINGS = [
        Binding("y,enter", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str, quote: str | None = None, yes: str = "yes", no: str = "no") -> None:
        super().__init__()
        self.question = question
        self.quote = quote
        self.yes, self.no = yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog small"):
            yield Label(self.question, classes="dialog-title")
            if self.quote is not None:
                yield Static(quoted(self.quote), id="confirm-quote", classes="dialog-quote")
            yield Label(f"y / enter: {self.yes} · n / escape: {self.no}", classes="dialog-help")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)

"""A question with a few answers, each on its own key (the first letter of its line)."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label


class Choice(ModalScreen[str | None]):
    """``answers``: (value, line); a line starts with its key. Escape answers None."""

    BINDINGS = [Binding("escape", "answer_none", "Decide later", id="choice.later")]

    def __init__(self, question: str, answers: list[tuple[str, str]]) -> None:
        super().__init__()
        self.question = question
        self.answers = answers

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog small"):
            yield Label(self.question, classes="dialog-title")
            for _, line in self.answers:
                yield Label(line)
            yield Label("escape: decide later", classes="dialog-help")

    def on_key(self, event: events.Key) -> None:
        for value, line in self.answers:
            if event.character == line[0]:
                event.stop()
                self.dismiss(value)
                return

    def action_answer_none(self) -> None:
        self.dismiss(None)

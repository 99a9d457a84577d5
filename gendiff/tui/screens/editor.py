"""Modal multi-line prompt editor: ctrl+s saves, escape cancels."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, TextArea


class PromptEditor(ModalScreen[str | None]):
    """Returns the edited text, or None when cancelled. ``changed``: the draft differs from the start."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="editor.save"),
        Binding("escape", "cancel", "Cancel", id="editor.cancel"),
    ]

    def __init__(self, text: str, title: str) -> None:
        super().__init__()
        self.text = text
        self.original = text
        self.title_text = title
        self.early: list[str] = []  # keys typed before the text area could take them

    def compose(self) -> ComposeResult:
        if self.early:  # keys taken before compose
            self.text += "".join(self.early)
            self.early = []
        with Vertical(id="editor-box", classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield TextArea(self.text, id="editor-text", soft_wrap=True, show_line_numbers=False)
            yield Label("ctrl+s save · escape cancel", id="editor-help", classes="dialog-help")

    def on_mount(self) -> None:
        area = self.query_one(TextArea)
        area.cursor_blink = False
        area.move_cursor(area.document.end)
        area.focus()

    def take_early_key(self, event: events.Key) -> bool:
        """A printable key typed right after a/e, routed to the screen below before this one
        was active (the app hands it here): typed into the text, not lost."""
        if not (event.is_printable and event.character):
            return False
        area = self.query(TextArea)
        if area and area.first().is_mounted:
            area.first().insert(event.character)
        else:
            self.early.append(event.character)
        return True

    @property
    def changed(self) -> bool:
        areas = self.query(TextArea)
        return bool(self.early) or (bool(areas) and areas.first().text != self.original)

    def action_save(self) -> None:
        text = self.query_one(TextArea).text
        if not text.strip():
            self.notify("a prompt can't be empty: write some text, or escape to cancel", severity="error")
            return
        self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)

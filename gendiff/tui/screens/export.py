"""Path dialog: enter writes through ``write``; a failure is shown here and the typed path stays."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from gendiff.errors import GendiffError


class ExportDialog(ModalScreen[Path | None]):
    """Returns the path written, or None when cancelled. ``write(path)`` raises GendiffError to refuse."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="export.cancel")]

    def __init__(
        self, default_path: str, write: Callable[[str], Path], title: str = "Export snapshot JSON to:"
    ) -> None:
        super().__init__()
        self.default_path = default_path
        self.write = write
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog small"):
            yield Label(self.title_text, classes="dialog-title")
            yield Input(self.default_path, id="export-path")
            yield Label("", id="export-error")
            yield Label("enter write · escape cancel", classes="dialog-help")

    def on_mount(self) -> None:
        self.query_one(Input).cursor_blink = False
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        path = event.value.strip()
        error = self.query_one("#export-error", Label)
        if not path:
            error.update("give a file name")
            return
        try:
            written = self.write(path)
        except GendiffError as exc:
            error.update(f"[b]{exc}[/b]")  # the dialog stays, with what was typed
            return
        self.dismiss(written)

    def action_cancel(self) -> None:
        self.dismiss(None)

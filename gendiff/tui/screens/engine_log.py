"""The engine log (palette: "Open the engine log"): what engines and libraries printed during
this session, captured off the screen by gendiff.capture."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

TAIL_BYTES = 200_000  # the end of a long log is what matters


def log_tail(path: Path | None) -> str:
    """The last TAIL_BYTES of the log, or a line saying why there is nothing to show."""
    if path is None:
        return "output is not being captured in this session (the app was started without gendiff's launcher)"
    try:
        with path.open("rb") as log:
            log.seek(0, 2)
            size = log.tell()
            log.seek(max(0, size - TAIL_BYTES))
            text = log.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"can't read {path}: {exc.strerror or exc}"
    lines = text.splitlines()
    if len(lines) <= 1 and size < TAIL_BYTES:
        return "nothing printed yet"
    return ("…\n" if size > TAIL_BYTES else "") + "\n".join(lines)


class EngineLogScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "close", "Close", id="engine-log.close")]

    def __init__(self, path: Path | None) -> None:
        super().__init__()
        self.path = path

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(f"engine log · {self.path or 'not captured'}", classes="dialog-title")
            with VerticalScroll(id="engine-log-scroll"):
                yield Static(Text(log_tail(self.path)), id="engine-log-text")
            yield Label("escape to close · ↑ ↓ scroll", classes="dialog-help")

    def on_mount(self) -> None:
        scroll = self.query_one("#engine-log-scroll", VerticalScroll)
        scroll.focus()
        scroll.scroll_end(animate=False)

    def action_close(self) -> None:
        self.dismiss(None)

"""Modal multi-line prompt editor: ctrl+s saves; escape (or ctrl+c) closes, asking first when
the text has changed. A typed tab is a tab (prompts can hold code). A chat prompt opens read-only
(its messages as ``[role] content`` lines; editing messages is not built: the .jsonl file is)."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, TextArea

from gendiff.display import inert, uninert
from gendiff.tui.screens.confirm import Confirm


class PromptArea(TextArea):
    """A TextArea that types tabs as tabs and leaves escape to the editor."""

    def __init__(self, text: str, **kwargs: object) -> None:
        super().__init__(text, soft_wrap=True, show_line_numbers=False, tab_behavior="indent", **kwargs)  # type: ignore[arg-type]
        self.indent_type = "tabs"

    async def _on_key(self, event: events.Key) -> None:
        # Textual then calls TextArea's own _on_key (MRO dispatch) unless the default is prevented:
        # in indent mode it would stop escape and move focus; let escape bubble to the editor's
        # binding instead, which asks before discarding
        if event.key == "escape":
            event.prevent_default()


class PromptEditor(ModalScreen[str | None]):
    """Returns the edited text, or None when closed without saving. ``changed``: the draft differs
    from the start."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="editor.save"),
        Binding("escape", "cancel", "Close (asks if changed)", id="editor.cancel"),
        # ctrl+c would otherwise copy (TextArea) or quit the app and lose the draft
        Binding("ctrl+c", "cancel", "Close (asks if changed)", id="editor.cancel-ctrl-c", show=False, priority=True),
    ]

    READ_ONLY_HELP = (
        "a chat prompt: its messages, read-only (editing messages in the app is not built yet; "
        "edit its line in the .jsonl file) · escape close"
    )

    def __init__(self, text: str, title: str, read_only: bool = False) -> None:
        super().__init__()
        self.read_only = read_only
        # control characters as their pictures (␛, ⟨U+202E⟩): a prompt from a file can't drive
        # the terminal from the editor; saving puts them back (display.uninert)
        self.text = inert(text)
        self.original = self.text
        self.title_text = title
        self.asking = False
        self.early: list[str] = []  # keys typed before the text area could take them

    def compose(self) -> ComposeResult:
        if self.early:  # keys taken before compose
            self.text += "".join(self.early)
            self.early = []
        with Vertical(id="editor-box", classes="dialog"):
            yield Label(Text(inert(self.title_text)), classes="dialog-title")
            yield PromptArea(self.text, id="editor-text", read_only=self.read_only)
            help_text = self.READ_ONLY_HELP if self.read_only else "ctrl+s save · escape close (asks if changed)"
            yield Label(help_text, id="editor-help", classes="dialog-help")

    def on_mount(self) -> None:
        release = getattr(self.app, "release_keys", None)
        held, then = release() if release is not None else ("", None)  # typed while this dialog was opening
        area = self.query_one(PromptArea)
        if held:
            area.insert(held, area.document.end)
        area.cursor_blink = False
        area.move_cursor(area.document.end)
        area.focus()
        action = {"ctrl+s": self.action_save, "escape": self.action_cancel}.get(then or "")
        if action is not None:  # typed right after the text, before this dialog had the keys
            self.call_after_refresh(action)

    def take_early_key(self, event: events.Key) -> bool:
        """A printable key typed right after a/e, routed to the screen below before this one
        was active (the app hands it here): typed into the text, not lost."""
        if not (event.is_printable and event.character) or self.read_only:
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
        if self.read_only:
            self.notify("a chat prompt is read-only here: edit its line in the .jsonl file", severity="warning")
            return
        text = uninert(self.query_one(PromptArea).text)
        if not text.strip():
            self.notify("a prompt can't be empty: write some text, or escape to cancel", severity="error")
            return
        self.dismiss(text)

    def action_cancel(self) -> None:
        """Close; with unsaved changes, ask first (y discards, n keeps editing)."""
        if not self.changed:
            self.dismiss(None)
            return
        if self.asking:
            return

        def answered(discard: bool | None) -> None:
            self.asking = False
            if discard:
                self.dismiss(None)

        self.asking = True
        self.app.push_screen(
            Confirm("Discard your changes to this prompt?", yes="discard", no="keep editing"), answered
        )

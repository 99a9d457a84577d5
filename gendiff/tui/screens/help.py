"""Help: every binding of the app, generated from the Binding objects themselves."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.keys import format_key
from textual.screen import ModalScreen
from textual.widgets import Label, Static

SPELLED = {"enter": "enter", "backspace": "backspace", "escape": "escape"}  # words, as the docs and dialogs write them


def key_name(key: str) -> str:
    """A key as a user reads it: ``question_mark`` -> ``?``, ``ctrl+up`` -> ``ctrl+↑``."""
    *modifiers, last = key.strip().split("+")
    return "+".join([*modifiers, SPELLED.get(last) or format_key(last)])


def bindings_table(groups: list[tuple[str, list[Binding]]]) -> Table:
    table = Table(box=None, expand=True, show_header=False, padding=(0, 2))
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("action", ratio=1)  # the keys take what they need, the phrases the rest
    for title, bindings in groups:
        table.add_row(f"[u]{title}[/u]", "")
        for binding in bindings:
            keys = " / ".join(key_name(k) for k in binding.key.split(","))
            table.add_row(keys, binding.tooltip or binding.description)  # the footer's word, spelled out
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close help", id="help.close")]

    def __init__(self, groups: list[tuple[str, list[Binding]]]) -> None:
        super().__init__()
        self.groups = groups

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog wide"):
            yield Label("gendiff keys", classes="dialog-title")
            yield Static(bindings_table(self.groups), id="help-table")
            yield Label("escape / ? to close", classes="dialog-help")

    def action_close(self) -> None:
        self.dismiss(None)

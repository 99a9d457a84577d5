"""Settings modal: engines, reference, dtype, attention, max new tokens, top-k, batch size."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Select, SelectionList

from gendiff.engines.base import ATTN_IMPLEMENTATIONS, DTYPES
from gendiff.options import RunOptions


class SettingsScreen(ModalScreen[RunOptions | None]):
    """Edits the RunOptions of the next run; returns the new options, or None when cancelled."""

    BINDINGS = [
        Binding("ctrl+s", "apply", "Apply", id="settings.apply"),
        Binding("escape", "cancel", "Cancel", id="settings.cancel"),
    ]

    def __init__(self, current: RunOptions, available: list[str]) -> None:
        super().__init__()
        self.current = current
        self.available = list(dict.fromkeys([*current.engines, *available]))

    def compose(self) -> ComposeResult:
        c = self.current
        with Vertical(classes="dialog wide", id="settings-box"):
            yield Label("Settings (apply to the next run)", classes="dialog-title")
            with Horizontal(classes="settings-row"):
                with Vertical():
                    yield Label("engines")
                    yield SelectionList[str](
                        *[(name, name, name in c.engines) for name in self.available], id="set-engines"
                    )
                with Vertical():
                    yield Label("reference")
                    yield Select(
                        [(n, n) for n in self.available],
                        value=c.reference_label,
                        allow_blank=False,
                        id="set-reference",
                    )
                    yield Label("dtype")
                    yield Select([(d, d) for d in DTYPES], value=c.dtype, allow_blank=False, id="set-dtype")
                    yield Label("attention")
                    yield Select([(a, a) for a in ATTN_IMPLEMENTATIONS], value=c.attn, allow_blank=False, id="set-attn")
                with Vertical():
                    yield Label("max new tokens")
                    yield Input(str(c.max_new_tokens), id="set-max-new-tokens", type="integer")
                    yield Label("top-k")
                    yield Input(str(c.top_k), id="set-top-k", type="integer")
                    yield Label("batch size")
                    yield Input(str(c.batch_size), id="set-batch-size", type="integer")
            yield Label("ctrl+s apply · escape cancel · space toggles an engine", classes="dialog-help")

    def on_mount(self) -> None:
        for field in self.query(Input):
            field.cursor_blink = False

    def action_apply(self) -> None:
        engines = tuple(self.query_one("#set-engines", SelectionList).selected)
        reference = str(self.query_one("#set-reference", Select).value)
        try:
            numbers = {
                name: int(self.query_one(f"#set-{name.replace('_', '-')}", Input).value)
                for name in ("max_new_tokens", "top_k", "batch_size")
            }
        except ValueError:
            self.notify("max new tokens, top-k and batch size must be whole numbers", severity="error")
            return
        if not engines:
            self.notify("select at least one engine (space toggles)", severity="error")
            return
        if reference not in engines:
            self.notify(f"reference {reference} is not selected; select it or pick another reference", severity="error")
            return
        bad = [name for name, value in numbers.items() if value < 1]
        if bad:
            self.notify(f"{', '.join(bad)} must be at least 1", severity="error")
            return
        self.dismiss(
            self.current.with_changes(
                engines=engines,
                reference=reference,
                dtype=str(self.query_one("#set-dtype", Select).value),
                attn=str(self.query_one("#set-attn", Select).value),
                **numbers,
            )
        )

    def action_cancel(self) -> None:
        self.dismiss(None)

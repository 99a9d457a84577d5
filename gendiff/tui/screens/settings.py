"""Settings modal: engines (with variants such as ``hf-single:dtype=float32``), reference, dtype,
attention, max new tokens, top-k, batch size, fragile threshold, stop-at-EOS and the model folder.
Returns the new RunOptions (checked as the command line checks them), or None when cancelled."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Select, SelectionList

from gendiff.engines.settings import ATTN_IMPLEMENTATIONS, DTYPES, parse_engine_spec
from gendiff.errors import GendiffError
from gendiff.run.options import RunOptions


def engine_prompt(label: str, enabled: bool) -> Text:
    """An engine row readable without colour: ``[x] hf-left`` or ``[ ] hf-left`` (plain text, not markup)."""
    return Text(f"[{'x' if enabled else ' '}] {label}")


class SettingsScreen(ModalScreen[RunOptions | None]):
    """Edits the RunOptions of the next run; returns the new options, or None when cancelled."""

    BINDINGS = [
        Binding("ctrl+s", "apply", "Apply", id="settings.apply"),
        Binding("escape", "cancel", "Cancel", id="settings.cancel"),
    ]

    def __init__(self, current: RunOptions, available: list[str]) -> None:
        super().__init__()
        self.current = current
        self.known = list(available)
        self.available = list(dict.fromkeys([*current.engines, *available]))

    def compose(self) -> ComposeResult:
        c = self.current
        with VerticalScroll(classes="dialog wide", id="settings-box"):
            yield Label("Settings (apply to the next run; remembered for the next launch)", classes="dialog-title")
            yield Label("", id="settings-error")
            with Horizontal(classes="settings-row"):
                with Vertical():
                    yield Label("engines")
                    yield SelectionList[str](
                        *[(engine_prompt(name, name in c.engines), name, name in c.engines) for name in self.available],
                        id="set-engines",
                    )
                    yield Label("add variant ⏎")
                    yield Input(placeholder="hf-single:dtype=float32", id="set-variant")
                with Vertical():
                    yield Label("reference")
                    yield Select(
                        [(n, n) for n in self.available], value=c.reference_label, allow_blank=False, id="set-reference"
                    )
                    yield Label("dtype")
                    yield Select([(d, d) for d in DTYPES], value=c.dtype, allow_blank=False, id="set-dtype")
                    yield Label("attention")
                    yield Select([(a, a) for a in ATTN_IMPLEMENTATIONS], value=c.attn, allow_blank=False, id="set-attn")
                    yield Label("stop at EOS")
                    yield Select(
                        [("yes", True), ("no", False)], value=c.stop_at_eos, allow_blank=False, id="set-stop-at-eos"
                    )
                with Vertical():
                    yield Label("max new tokens")
                    yield Input(str(c.max_new_tokens), id="set-max-new-tokens", type="integer")
                    yield Label("top-k")
                    yield Input(str(c.top_k), id="set-top-k", type="integer")
                    yield Label("batch size")
                    yield Input(str(c.batch_size), id="set-batch-size", type="integer")
                    yield Label("fragile threshold")
                    yield Input(str(c.fragile_threshold), id="set-fragile-threshold", type="number")
            yield Label("model folder (empty: the demo model)")
            yield Input(c.model or "", placeholder="/path/to/a/hugging-face/model", id="set-model")
            yield Label(
                "ctrl+s apply · escape cancel · space toggles an engine · enter adds a variant (NAME:key=value,…)",
                classes="dialog-help",
            )

    def on_mount(self) -> None:
        for field in self.query(Input):
            field.cursor_blink = False

    def error(self, text: str) -> None:
        """One line in the dialog saying what is wrong (the dialog stays open)."""
        self.query_one("#settings-error", Label).update(f"[b]error:[/b] {text}" if text else "")

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged | None = None) -> None:
        """Keep each row's [x] / [ ] true to the selection (readable without colour)."""
        engines = self.query_one("#set-engines", SelectionList)
        for index in range(engines.option_count):
            option = engines.get_option_at_index(index)
            engines.replace_option_prompt_at_index(index, engine_prompt(option.value, option.value in engines.selected))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "set-variant":
            self.add_variant(event.value)

    def add_variant(self, text: str) -> None:
        """Add ``NAME[:key=value,…]`` as an enabled engine, checked with the command line's parser."""
        text = text.strip()
        if not text:
            return
        try:
            spec = parse_engine_spec(text, self.current.spec_defaults(), self.known)
        except GendiffError as exc:
            self.error(str(exc))
            return
        label = spec.label
        engines = self.query_one("#set-engines", SelectionList)
        if label not in self.available:
            self.available.append(label)
            engines.add_option((engine_prompt(label, True), label, True))
            reference = self.query_one("#set-reference", Select)
            value = reference.value
            reference.set_options([(n, n) for n in self.available])
            reference.value = value
        else:
            engines.select(label)
            self.on_selection_list_selected_changed()
        self.query_one("#set-variant", Input).value = ""
        self.error("")

    def action_apply(self) -> None:
        engines = tuple(self.query_one("#set-engines", SelectionList).selected)
        reference = str(self.query_one("#set-reference", Select).value)
        try:
            numbers = {
                name: int(self.query_one(f"#set-{name.replace('_', '-')}", Input).value)
                for name in ("max_new_tokens", "top_k", "batch_size")
            }
        except ValueError:
            self.error("max new tokens, top-k and batch size must be whole numbers")
            return
        try:
            threshold = float(self.query_one("#set-fragile-threshold", Input).value)
        except ValueError:
            threshold = -1.0
        if not threshold >= 0:
            self.error("the fragile threshold must be a number ≥ 0 (e.g. 0.05)")
            return
        if not engines:
            self.error("select at least one engine (space toggles)")
            return
        if reference not in engines:
            self.error(f"reference {reference} is not selected; select it or pick another reference")
            return
        bad = [name.replace("_", " ") for name, value in numbers.items() if value < 1]
        if bad:
            self.error(f"{', '.join(bad)} must be at least 1")
            return
        model = self.query_one("#set-model", Input).value.strip() or None
        options = self.current.with_changes(
            engines=engines,
            reference=reference,
            dtype=str(self.query_one("#set-dtype", Select).value),
            attn=str(self.query_one("#set-attn", Select).value),
            stop_at_eos=bool(self.query_one("#set-stop-at-eos", Select).value),
            fragile_threshold=threshold,
            model=model,
            **numbers,
        )
        try:
            options.config()  # the command line's own checks (engine specs, reference, model folder)
        except GendiffError as exc:
            self.error(str(exc))
            return
        self.dismiss(options)

    def action_cancel(self) -> None:
        self.dismiss(None)

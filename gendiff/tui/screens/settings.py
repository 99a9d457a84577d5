"""Settings modal: engines (with variants such as ``hf-single:dtype=float32``), reference, dtype,
attention, stop-at-EOS, max new tokens, top-k, batch size, fragile threshold and the model folder.
Returns the new RunOptions, checked as the command line checks them, or None when cancelled.

Focus starts on the first field (a new engine variant) and tab follows the order on screen; the
engines are listed in a stable order (the built-in ones as the registry lists them, then the
variants in the order they were added), each row ``[x]`` or ``[ ]``, readable without colour."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Select
from textual.widgets.option_list import Option

from gendiff.defaults import ATTN_IMPLEMENTATIONS, DTYPES
from gendiff.display import inert
from gendiff.engines import engine_class
from gendiff.engines.settings import parse_engine_spec
from gendiff.errors import GendiffError
from gendiff.run.options import RunOptions


class CheckList(OptionList):
    """Engines to run: space toggles the highlighted one."""

    BINDINGS = [Binding("space", "toggle", "Toggle engine", id="settings.toggle")]

    def __init__(self, labels: list[str], checked: set[str], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.labels = list(labels)
        self.checked = set(checked)

    def on_mount(self) -> None:
        self.rebuild()

    def rebuild(self) -> None:
        highlighted = self.highlighted
        self.clear_options()
        self.add_options(
            [
                Option(Text(f"[{'x' if label in self.checked else ' '}] {inert(label)}"), id=label)
                for label in self.labels
            ]
        )
        if self.labels:
            self.highlighted = min(highlighted or 0, len(self.labels) - 1)

    def add(self, label: str) -> None:
        if label not in self.labels:
            self.labels.append(label)
        self.checked.add(label)
        self.rebuild()

    def action_toggle(self) -> None:
        if self.highlighted is None:
            return
        label = self.labels[self.highlighted]
        self.checked.symmetric_difference_update({label})
        self.rebuild()

    def action_select(self) -> None:  # enter: nothing to open here; space toggles
        pass

    @property
    def selected(self) -> list[str]:
        return [label for label in self.labels if label in self.checked]


def engine_order(current: tuple[str, ...], available: list[str]) -> list[str]:
    """The built-in engines as the registry lists them, then the variants in the order given."""
    return [*available, *(label for label in current if label not in available)]


def check_variant(text: str, current: RunOptions, known: list[str]) -> str:
    """The engine label of ``text``, checked as the command line checks it (the engine's own
    options included); GendiffError says what is wrong."""
    spec = parse_engine_spec(text, current.spec_defaults(), known)
    engine_class(spec.name).check_options(spec)
    return spec.label


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
        self.order = engine_order(current.engines, self.known)

    def compose(self) -> ComposeResult:
        box = VerticalScroll(id="settings-box")
        box.can_focus = False  # a tab stop that shows nothing; focusing a field scrolls it into view
        # the title and the keys stay in view; only the fields scroll (at 80x24 they don't fit)
        with Vertical(classes="dialog wide", id="settings-dialog"):
            yield Label("Settings (apply to the next run; remembered for the next launch)", classes="dialog-title")
            with box:
                yield from self.fields()
            yield Label(
                "ctrl+s apply · escape cancel · tab next field · space toggles an engine", classes="dialog-help"
            )

    def fields(self) -> ComposeResult:
        c = self.current
        yield Label("", id="settings-error")
        yield Label("add an engine variant (NAME:key=value,…) ⏎")
        yield Input(placeholder="hf-single:dtype=float32", id="set-variant")
        with Horizontal(classes="settings-row"):
            with Vertical():
                yield Label("engines: space")
                yield CheckList(self.order, set(c.engines), id="set-engines")
            with Vertical():
                yield Label("reference")
                yield Select(
                    [(n, n) for n in self.order], value=c.reference_label, allow_blank=False, id="set-reference"
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

    def on_mount(self) -> None:
        for field in self.query(Input):
            field.cursor_blink = False
        self.query_one("#set-variant", Input).focus()
        # focusing the field scrolls only it into view: open at the top, its label shown too
        self.call_after_refresh(self.query_one("#settings-box").scroll_home, animate=False)

    def error(self, text: str) -> None:
        """One line in the dialog saying what is wrong (the dialog stays open)."""
        label = self.query_one("#settings-error", Label)
        label.update(Text.assemble(("error: ", "bold"), inert(text)) if text else "")
        if text:  # at 80x24 the box may be scrolled past its top: bring the line into view
            self.query_one("#settings-box").scroll_home(animate=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "set-variant":
            self.add_variant(event.value)

    def add_variant(self, text: str) -> None:
        """Add ``NAME[:key=value,…]`` as an enabled engine, checked with the command line's parser."""
        text = text.strip()
        if not text:
            return
        try:
            label = check_variant(text, self.current, self.known)
        except GendiffError as exc:
            self.error(str(exc))
            return
        engines = self.query_one("#set-engines", CheckList)
        if label not in engines.labels:
            reference = self.query_one("#set-reference", Select)
            value = reference.value
            reference.set_options([(n, n) for n in [*engines.labels, label]])
            reference.value = value
        engines.add(label)
        self.query_one("#set-variant", Input).value = ""
        self.error("")

    def action_apply(self) -> None:
        engines = tuple(self.query_one("#set-engines", CheckList).selected)
        reference = str(self.query_one("#set-reference", Select).value)
        pending = self.query_one("#set-variant", Input).value.strip()
        if pending:
            self.error(f"the variant {pending!r} is typed but not added: enter adds it, or clear the field")
            return
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
            options.config()  # the command line's own checks (engine specs and options, reference, model)
        except GendiffError as exc:
            self.error(str(exc))
            return
        self.dismiss(options)

    def action_cancel(self) -> None:
        self.dismiss(None)

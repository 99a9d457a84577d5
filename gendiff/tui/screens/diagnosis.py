"""The diagnosis view (key b): where in the network a divergence starts, and whether it lasts."""

from __future__ import annotations

import threading

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, LoadingIndicator, Static

from gendiff.display import inert, log_fraction, visible
from gendiff.records.bisection import Bisection
from gendiff.records.divergence import Divergence
from gendiff.records.reconvergence import Reconvergence

CHART_WIDTH = 32


def _bar(value: float, width: int) -> str:
    """A bar on the fixed log axis 1e-7 … 1; bitwise equal is ``·``."""
    if value <= 0:
        return "·"
    return "█" * max(1, round(log_fraction(value) * width))


def layer_chart(bisection: Bisection, colours: dict[str, str]) -> Table:
    """Relative difference of the residual stream after each layer (log scale), first split marked."""
    table = Table(box=None, show_header=True, padding=(0, 1), title_justify="left")
    table.add_column("layer", justify="right", no_wrap=True)
    axis = "1e-7" + " " * (CHART_WIDTH - 5) + "1"
    table.add_column(f"rel. difference after the layer\n{axis}", no_wrap=True, min_width=CHART_WIDTH)
    table.add_column("relative", justify="right", no_wrap=True)
    layers = bisection.layer_outputs()
    first = bisection.first_bitwise
    for m in layers:
        style = colours.get("diverge", "red") if first is not None and m.layer == first.layer else ""
        table.add_row(
            str(m.layer),
            Text(_bar(m.rel_diff, CHART_WIDTH), style=style or colours.get("after-diverge", "yellow")),
            "0" if m.equal else f"{m.rel_diff:.2e}",
        )
    return table


def module_table(bisection: Bisection, colours: dict[str, str]) -> Table:
    """Every captured module in execution order: bitwise equal or not, relative and max difference."""
    table = Table(box=None, show_header=True, padding=(0, 1))
    # short of space the words wrap (a dotted path folds); the numbers keep their width
    table.add_column("module", overflow="fold")
    table.add_column("what it is", overflow="fold")
    table.add_column("bitwise", no_wrap=True, min_width=len("differs"))
    table.add_column("relative", justify="right", no_wrap=True, min_width=len("1.00e-03"))
    table.add_column("max |Δ|", justify="right", no_wrap=True, min_width=len("1.00e-03"))
    table.add_column("", overflow="fold")
    first, over = bisection.first_bitwise, bisection.first_over_tolerance
    for m in bisection.modules:
        note = ""
        style = "dim" if m.equal else ""
        if first is not None and m.name == first.name:
            note, style = "◀ first difference", f"bold {colours.get('diverge', 'red')}"
        elif over is not None and m.name == over.name:
            note, style = f"◀ first above {bisection.tolerance:g}", f"bold {colours.get('after-diverge', 'yellow')}"
        table.add_row(
            Text(m.name, style=style),
            Text(m.role, style="dim"),
            "equal" if m.equal else "differs",
            "0" if m.equal else f"{m.rel_diff:.2e}",
            "0" if m.equal else f"{m.max_abs_diff:.2e}",
            Text(note, style=style),
        )
    return table


def key_value_table(bisection: Bisection, colours: dict[str, str]) -> Table:
    """Layer × position: per layer, the earlier positions of the prompt's row whose key or value
    differs between the engines (a padded prefill shows up here while the divergent position's
    own inputs are still equal), and by how much."""
    table = Table(box=None, show_header=True, padding=(0, 1))
    table.add_column("layer", justify="right", no_wrap=True)
    table.add_column("key/value sources", no_wrap=True)
    table.add_column("earlier positions that differ (relative difference)")
    earlier = bisection.earlier_positions()
    sources: dict[int, list[str]] = {}
    for kv in bisection.key_values:
        sources.setdefault(kv.layer, []).append(kv.name.rsplit(".", 1)[-1])
    for layer, names in sorted(sources.items()):
        found = earlier.get(layer, [])
        cells = Text()
        if not found:
            cells.append("none: every earlier key and value is bitwise equal", style="dim")
        for i, p in enumerate(found):
            if i:
                cells.append("  ")
            cells.append(f"{p.position}", style=f"bold {colours.get('diverge', 'red')}")
            cells.append(f" {p.rel_diff:.1e}")
        table.add_row(str(layer), ", ".join(names), cells)
    return table


def position_split_table(bisection: Bisection, colours: dict[str, str]) -> Table:
    """Per module (earliest first), the earlier positions whose output first differs there."""
    table = Table(box=None, show_header=True, padding=(0, 1))
    table.add_column("first differs at", no_wrap=True)
    table.add_column("what it is", no_wrap=True)
    table.add_column("earlier positions (relative difference)")
    grouped: dict[str, list] = {}
    for split in bisection.position_splits:
        grouped.setdefault(split.name, []).append(split)
    for i, (name, splits) in enumerate(grouped.items()):
        style = f"bold {colours.get('diverge', 'red')}" if i == 0 else ""
        cells = Text("  ".join(f"{s.position} {s.rel_diff:.1e}" for s in splits))
        table.add_row(Text(name, style=style), Text(splits[0].role, style="dim"), cells)
    return table


def reconvergence_text(r: Reconvergence, colours: dict[str, str]) -> Text:
    verdict_style = colours.get("success", "green") if r.verdict == "transient flip" else colours.get("diverge", "red")
    text = Text()
    text.append(r.verdict.upper(), style=f"bold {verdict_style}")
    text.append(f"  {r.summary().split(': ', 1)[-1]}\n")
    text.append(
        f"fed {r.reference}'s {r.steps_checked} tokens, {r.engine} would have picked another token at step"
        f"{'s' if len(r.mismatches) != 1 else ''} {', '.join(str(s) for s in r.mismatches) or '—'}",
        style="dim",
    )
    if not r.reproduced:
        text.append("\nwarning: the replay did not reproduce the divergence (non-deterministic engine?)", style="bold")
    return text


def diagnosis_renderable(d: Divergence, colours: dict[str, str]) -> RenderableType:
    parts: list[RenderableType] = []
    ref_tok = visible(d.reference_step.text) if d.reference_step else "—"
    other_tok = visible(d.other_step.text) if d.other_step else "—"
    parts.append(
        Text.assemble(
            (f"prompt {d.prompt_index + 1} · step {d.step}: ", "bold"),
            (f"{d.reference} chose ", ""),
            (ref_tok, "bold"),
            (f", {d.engine} chose ", ""),
            (other_tok, "bold"),
        )
    )
    b = d.bisection
    # the verdicts first: does the fork last, and where does it start (details below)
    if d.reconvergence is not None:
        parts.append(Text.assemble(("\nverdict: ", "bold"), reconvergence_text(d.reconvergence, colours)))
    if b is not None:
        parts.append(Text.assemble(("starts at: ", "bold"), inert(b.summary_lines()[0])))
    if b is not None:
        parts.append(Text("\nFirst divergent module", style=f"bold underline {colours.get('accent', '')}".strip()))
        parts.append(Text(inert("\n".join(b.summary_lines()))))
        if b.error is not None:
            parts.append(Text("the run itself is kept; only this explanation is missing", style="dim"))
        elif not b.reproduced:
            parts.append(Text("warning: the replay chose other tokens than the run did at this step", style="bold"))
        if b.modules:
            parts.append(Text("\nper layer", style="bold"))
            parts.append(layer_chart(b, colours))
        if b.key_values:
            where = f" (position {b.position})" if b.position is not None else ""
            parts.append(Text(f"\nkeys and values of the positions before the divergent one{where}", style="bold"))
            parts.append(key_value_table(b, colours))
        if b.position_splits:
            parts.append(Text("\nwhere each earlier position first parts", style="bold"))
            parts.append(position_split_table(b, colours))
        if b.modules:
            parts.append(Text("\nevery module at the divergent position, in execution order", style="bold"))
            parts.append(module_table(b, colours))
    return Group(*parts)


LOADING_STAGE = (
    "loading the model (if needed), then replaying both engines to the divergent step with hooks on every module…"
)
HELP_LOADING = "escape to cancel"
# while the worker does not watch cancel_event, closing does not stop it: say so
HELP_LOADING_DETACHED = "escape closes this view (the replay finishes in the background; b reopens it)"
HELP_DONE = "escape / b to close · ↑ ↓ scroll · replays both engines with the reference's tokens"


class DiagnosisScreen(ModalScreen[None]):
    """Opens at once; says what it is doing until the worker delivers the records, then the view.

    A worker reports its stage with ``set_stage`` ("loading the model", "replaying hf-left",
    "bisecting") and checks ``cancel_event``, which is set when the view is closed before the
    result arrives. The title and the key help sit outside the scrolled body, so they never
    scroll away.
    """

    BINDINGS = [Binding("escape,b,q", "close", "Close", id="diagnosis.close")]

    def __init__(self, title: str, divergence: Divergence | None, cancellable: bool = False) -> None:
        """``cancellable``: the worker stops when ``cancel_event`` is set (else closing only hides it)."""
        super().__init__()
        self.cancellable = cancellable
        self.title_text = title
        self.divergence = divergence
        self.cancel_event = threading.Event()
        self.done = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide", id="diagnosis"):
            yield Label(Text(inert(self.title_text)), classes="dialog-title")
            yield Static(LOADING_STAGE, id="diagnosis-stage")
            yield LoadingIndicator(id="diagnosis-loading")
            with VerticalScroll(id="diagnosis-scroll"):
                yield Static("", id="diagnosis-body")
            yield Label(
                HELP_LOADING if self.cancellable else HELP_LOADING_DETACHED, id="diagnosis-help", classes="dialog-help"
            )

    def on_mount(self) -> None:
        if self.divergence is not None and self.divergence.bisection is not None:
            self.show(self.divergence)

    def set_stage(self, text: str) -> None:
        """What the worker is doing now, e.g. ``replaying hf-left to step 13``."""
        if not self.done:
            self.query_one("#diagnosis-stage", Static).update(Text(inert(text)))

    def _finish(self) -> None:
        self.done = True
        self.query_one("#diagnosis-loading").display = False
        self.query_one("#diagnosis-stage").display = False
        self.query_one("#diagnosis-help", Label).update(HELP_DONE)

    def show(self, divergence: Divergence) -> None:
        self.divergence = divergence
        self._finish()
        self.query_one("#diagnosis-body", Static).update(diagnosis_renderable(divergence, self.app.theme_variables))
        self.query_one("#diagnosis-scroll").focus()

    def show_error(self, message: str) -> None:
        self._finish()
        error = self.app.theme_variables.get("error", "red")
        self.query_one("#diagnosis-body", Static).update(Text(inert(message), style=f"bold {error}"))

    def action_close(self) -> None:
        if not self.done:
            self.cancel_event.set()
        self.dismiss(None)

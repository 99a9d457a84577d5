"""The divergence panel: both engines' top-k at the first differing step, with the margins.

The panel is as tall as what it shows now (one row for a hint), up to the share of the screen the
stylesheet gives it, and scrolls beyond that: a shorter reading gives its rows back to the list
and the columns; numbers are never cut (they don't wrap, and a
wrapped summary line breaks only between its items).
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll

from gendiff.display import bar, inert, number, visible
from gendiff.records.classify import reading
from gendiff.records.divergence import Divergence
from gendiff.records.statistics import DistributionStats
from gendiff.records.trace import TokenStep
from gendiff.state import view
from gendiff.tui.widgets.steady_static import SteadyStatic


def top_table(
    title: str, step: TokenStep | None, other_choice: int | None, colours: dict[str, str], missing: str = "(stopped)"
) -> Table:
    """Rank, token, logprob, logit; the engine's own choice and the other side's choice marked."""
    table = Table(title=title, title_justify="left", expand=True, box=None, padding=(0, 1), show_edge=False)
    # numbers never shrink (a 1e-3 margin must stay readable); the token column gives way
    table.add_column("#", justify="right", style="dim", width=2)
    table.add_column("token", ratio=1, no_wrap=True, overflow="ellipsis")
    table.add_column("logprob", justify="right", no_wrap=True, min_width=8)
    table.add_column("logit", justify="right", no_wrap=True, min_width=8)
    table.add_column("", width=1, no_wrap=True)
    if step is None:
        table.add_row("", Text(missing, style="dim"), "", "", "")
        return table
    chosen = colours.get("chosen", "green")
    for rank, candidate in enumerate(step.top, 1):
        mark = Text()
        style = ""
        if candidate.token_id == step.token_id:
            mark.append("◀", style=f"bold {chosen}")
            style = "bold"
        elif candidate.token_id == other_choice:
            mark.append("◁", style=colours.get("after-diverge", "yellow"))
        table.add_row(
            str(rank),
            Text(visible(candidate.text), style=style),
            number(candidate.logprob),
            number(candidate.logit),
            mark,
        )
    return table


def explain(d: Divergence) -> str:
    """One line on what the divergence's classification and margin mean (see gendiff.classify)."""
    if d.reason not in ("token", "length"):
        return ""
    return reading(d)


def statistics_line(engine: str, reference: str, stats: DistributionStats) -> str:
    """``gendiff run --stats`` for one prompt and engine, with a per-step KLD sparkline (log axis
    1e-7 … 1 nats, ``·`` exactly zero)."""
    if not stats.positions:
        return f"{engine}: no positions to compare with {reference}"
    spark = "".join(bar(value) for value in stats.kld_steps)
    kl = "≥" if stats.kld_lower_bound else ""  # over the engine's top k only: a lower bound
    return (
        f"{engine}: KL from {reference}, both fed {reference}'s tokens: mean {kl}{number(stats.kld_mean, 6)} nats · "
        f"max {kl}{number(stats.kld_max, 6)} nats at step {stats.kld_max_position} · "
        f"same top-1 {100 * (stats.same_top1 or 0):.1f}% of steps · "
        f"change of {reference}'s token's probability, rms {number(stats.dp_rms, 6)} · per step {spark}"
    )


def drift_note(d: Divergence) -> str:
    """What the drift shown beside the margin adds: none before step 0, or more / less than the margin."""
    if d.reason != "token" or d.reference_margin is None:
        return ""
    if d.agreeing_steps == 0:
        return "step 0: no earlier tokens, so no drift before it (the prompt's own pass differs)"
    drift, margin = d.max_drift_before, d.reference_margin
    if drift >= margin:
        return f"earlier drift (up to {number(drift)}) was more than this margin"
    return f"earlier drift (at most {number(drift)}) was less than this margin"


class DivergencePanel(VerticalScroll):
    """Shows one Divergence (or a hint when there is none) in a scrollable body."""

    DEFAULT_CSS = """
    DivergencePanel { height: auto; }
    DivergencePanel > #panel-body { height: auto; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.body = SteadyStatic("", id="panel-body", settle=True)

    def compose(self) -> ComposeResult:
        yield self.body

    @property
    def content(self) -> object:
        """What the panel shows (a Rich renderable or Text)."""
        return self.body.content

    def update(self, renderable: RenderableType) -> None:
        self.body.update(renderable)

    def show_divergence(
        self,
        title: str,
        divergence: Divergence | None,
        hint: str = "",
        statistics: dict[str, DistributionStats] | None = None,
        note: str | None = None,
    ) -> None:
        """``statistics``: this prompt's ``--stats`` numbers per engine, one line each (the shown
        engine first; the reference, 0 against itself, left out); ``note``: the reading of the
        divergence (gendiff.state.view.panel_reading; by default :func:`explain`)."""
        lines = []
        if statistics and divergence is not None:
            shown = divergence.engine
            order = [shown] + [engine for engine in statistics if engine != shown]
            lines = [
                statistics_line(engine, divergence.reference, statistics[engine])
                for engine in order
                if engine in statistics and engine != divergence.reference
            ]
        self._statistics = "\n".join(lines) or None
        colours = self.app.theme_variables
        title = inert(title)
        if title != self.border_title:
            self.scroll_home(animate=False)  # another divergence: start at its top
        self.border_title = title
        if divergence is None:
            self.update(Text(inert(hint) or "run the prompts (r / R) to compare engines", style="dim"))
            return
        d = divergence
        fragile = f"{len(d.fragile_steps)} fragile step{'s' if len(d.fragile_steps) != 1 else ''} earlier"
        if not d.diverged:
            # no divergence to be "earlier" than: the steps where a flip could have happened
            count = len(d.fragile_steps)
            fragile = f"{count} fragile step{'s' if count != 1 else ''} (a small margin: where a flip could happen)"
            matches = Text(
                f"{d.engine} matches {d.reference} on all {d.agreeing_steps} tokens · "
                f"max drift {number(d.max_drift_before)} · {fragile}",
                style=colours.get("success", "green"),
            )
            self.update(Group(matches, Text(self._statistics)) if self._statistics else matches)
            return
        if d.reason == "error":
            self.update(Text(inert(d.detail), style=colours.get("error", "red")))
            return
        other_id = d.other_step.token_id if d.other_step else None
        ref_id = d.reference_step.token_id if d.reference_step else None
        tables = Table.grid(expand=True, padding=(0, 2))
        tables.add_column(ratio=1)
        tables.add_column(ratio=1)
        tables.add_row(
            top_table(_scores_title(d.reference, d.reference_step), d.reference_step, other_id, colours),
            top_table(_scores_title(d.engine, d.other_step), d.other_step, ref_id, colours),
        )
        if any(step is not None and step.processed for step in (d.reference_step, d.other_step)):
            # the penalties changed the scores: the raw ones too, the choice still marked
            tables.add_row(
                top_table(f"{d.reference} raw", _raw(d.reference_step), other_id, colours, _no_raw(d.reference_step)),
                top_table(f"{d.engine} raw", _raw(d.other_step), ref_id, colours, _no_raw(d.other_step)),
            )
        # a narrow panel wraps this line at spaces, never inside a number
        items = [
            (f"margin {d.reference} {number(d.reference_margin)}", "bold"),
            (f"margin {d.engine} {number(d.other_margin)}", "bold"),
            (f"flip gap {number(d.flip_gap)}", ""),
            (f"drift before {number(d.max_drift_before)}", ""),
            (fragile, ""),
            ("◀ own choice ◁ the other's", "dim"),
        ]
        summary = Text()
        for index, (item, style) in enumerate(items):
            summary.append(" · " if index else "")
            summary.append(item, style=style)
        if d.reason == "length":
            summary.append(f"\n{inert(d.detail)}", style="italic")
        read = explain(d) if note is None else note
        line = inert(" · ".join(part for part in (read, drift_note(d)) if part))
        # the reading and the margins first: on a small terminal they are what stays in view
        parts = ([Text(line, style="italic")] if line else []) + [summary, tables]
        if self._statistics:
            parts.append(Text(self._statistics))
        if d.decoding_note:
            parts.append(Text(f"penalties differ: {d.decoding_note}", style=colours.get("warning", "yellow")))
        verdicts = view.panel_verdicts(d)
        if verdicts:  # what was measured first: on a small terminal it is what stays in view
            found = Text(inert(" · ".join(verdicts)), style=colours.get("accent", ""))
            if d.bisection is not None or d.reconvergence is not None:
                found.append("  (b: earlier positions, per-layer chart)", style="dim")
            parts.insert(0, found)
        self.update(Group(*parts))


def _scores_title(label: str, step: TokenStep | None) -> str:
    return f"{label} after penalties" if step is not None and step.raw_top is not None else label


def _raw(step: TokenStep | None) -> TokenStep | None:
    """The step as the raw scores rank it (the choice is still the engine's), or None without them."""
    if step is None or step.raw_top is None:
        return step  # no penalty: its scores are the raw ones
    if not step.raw_top or step.raw_logprob is None:
        return None  # processed only (vLLM with a penalty)
    return TokenStep(step.token_id, step.text, step.raw_logprob, step.raw_top)


def _no_raw(step: TokenStep | None) -> str:
    return "(stopped)" if step is None else "(raw scores not recorded by this engine)"

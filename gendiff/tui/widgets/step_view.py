"""The step explorer's view: every engine's top-k at one step, with its margin.

One block per engine, reference first: a line naming the engine, its choice and its margin
(and whether the choice differs from the reference's), then its candidates as
``rank token logprob`` items that break between items (given the width), so numbers are never cut.
"""

from __future__ import annotations

from rich.text import Text

from gendiff.display import number, visible
from gendiff.records.trace import TokenStep


def step_text(
    step: int,
    rows: list[tuple[str, TokenStep | None]],
    reference: str,
    colours: dict[str, str],
    divergence_step: int | None = None,
    width: int | None = None,
    note: str = "",
) -> Text:
    """``rows``: (engine label, its TokenStep at ``step`` or None when it had stopped);
    ``width``: the panel's width in cells, so a line of candidates breaks between items only."""
    text = Text()
    text.append(f"step {step}", style="bold")
    if divergence_step is not None:
        where = (
            "the first divergence" if step == divergence_step else f"the first divergence is at step {divergence_step}"
        )
        text.append(f" · {where}", style="dim")
    if note:
        text.append(f"\n{note}", style="italic")
    reference_step = next((s for label, s in rows if label == reference), None)
    reference_choice = reference_step.token_id if reference_step is not None else None
    chosen = colours.get("chosen", "green")
    differs_style = f"bold {colours.get('diverge', 'red')}"
    for label, engine_step in rows:
        text.append("\n")
        text.append(label + (" (ref)" if label == reference else ""), style="bold")
        if engine_step is None:
            text.append("  stopped before this step", style="dim")
            continue
        text.append("  chose ")
        text.append(visible(engine_step.text) or "∅", style="bold")
        text.append(f"  margin {number(engine_step.margin)}")
        if label != reference and reference_choice is not None and engine_step.token_id != reference_choice:
            text.append("  ≠ ref", style=differs_style)
        text.append("\n  ")
        used = 2
        for rank, candidate in enumerate(engine_step.top, 1):
            item = Text()
            item.append(f"{rank} ", style="dim")
            item.append(
                visible(candidate.text) or "∅", style="bold" if candidate.token_id == engine_step.token_id else ""
            )
            item.append(f" {number(candidate.logprob)}")
            if candidate.token_id == engine_step.token_id:
                item.append(" ◀", style=f"bold {chosen}")
            elif candidate.token_id == reference_choice and label != reference:
                item.append(" ◁", style=colours.get("after-diverge", "yellow"))
            if rank > 1:
                if width is not None and used + 3 + item.cell_len > width:
                    text.append("\n  ")  # the next item on its own line, never cut inside
                    used = 2
                else:
                    text.append(" · ", style="dim")
                    used += 3
            text.append_text(item)
            used += item.cell_len
    return text

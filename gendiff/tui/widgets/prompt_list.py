"""The prompt list: one line per prompt with its run status."""

from __future__ import annotations

from rich.cells import cell_len, set_cell_size
from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from gendiff.state.cells import MARK_ICONS

TEXT_CELLS = 22  # the prompt's share of a row, in terminal cells, in a list 34 cells wide
ROW_OVERHEAD = 12  # border, padding, the mark, the count and the number
PREFIX_CELLS = 6  # the mark with its count (3) and the number (3) as ROW_OVERHEAD counts them


def fit_cells(text: str, cells: int) -> str:
    """``text`` on one line, at most ``cells`` terminal cells wide (an emoji or CJK character
    takes two), cut with ``…``."""
    flat = " ".join(text.split())
    if cell_len(flat) <= cells:
        return flat
    return set_cell_size(flat, cells - 1).rstrip() + "…"


def text_cells(list_width: int) -> int:
    """The prompt text's share of a row in a prompt list ``list_width`` cells wide."""
    return max(6, list_width - ROW_OVERHEAD)


def prompt_label(
    number: int,
    text: str,
    status: str,
    count: int,
    colours: dict[str, str],
    cells: int = TEXT_CELLS,
    engines_done: str = "",
) -> Text:
    """One row: the mark (see gendiff.workspace: ✓ only when every engine finished and all agree),
    the count of diverged (or failed) engines, the number, while running ``engines_done`` (a mark
    per engine: ● finished this prompt), and the start of the text."""
    icon = MARK_ICONS.get(status, "?")
    style = {
        "diverged": f"bold {colours.get('diverge', 'red')}",
        "identical": colours.get("success", "green"),
        "error": colours.get("error", "red"),
    }.get(status, "")
    label = Text(no_wrap=True, overflow="ellipsis")
    # "✗2" = diverged in 2 engines; the count sits beside the icon so the text never wraps
    shown = str(count) if count else ""
    label.append(f"{icon}{shown:<2}", style=style)
    label.append(f"{number:>2} ", style="dim")
    if engines_done:
        label.append(engines_done + " ", style=colours.get("accent", ""))
    # one line per prompt (OptionList wraps a longer one): the text gets what the prefix leaves,
    # measured, so a prompt number past 99 or a wide count takes its room from the text
    label.append(fit_cells(text, max(4, cells + PREFIX_CELLS - label.cell_len)))
    return label


class PromptList(OptionList):
    """Rows are rebuilt by the app; the highlighted row is the selected prompt."""

    DEFAULT_CSS = """
    PromptList { width: 34; height: 1fr; }
    """

    def set_rows(self, rows: list[Text], highlighted: int | None) -> None:
        self.clear_options()
        self.add_options([Option(row, id=str(i)) for i, row in enumerate(rows)])
        if rows:
            self.highlighted = min(highlighted or 0, len(rows) - 1)

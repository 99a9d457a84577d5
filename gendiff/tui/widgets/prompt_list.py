"""The prompt list: one line per prompt with its mark, and the keys that act on the prompt it
highlights (add, edit, delete, move, run it). It only posts requests: the screen changes the
workspace and the prompt file, then hands the list its new rows."""

from __future__ import annotations

from rich.cells import cell_len, set_cell_size
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.visual import VisualType
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from gendiff.display import inert
from gendiff.state.cells import MARK_ICONS

TEXT_CELLS = 22  # the prompt's share of a row, in terminal cells, in a list 34 cells wide
ROW_OVERHEAD = 12  # border, padding, the mark, the count and the number
PREFIX_CELLS = 6  # the mark with its count (3) and the number (3) as ROW_OVERHEAD counts them


def fit_cells(text: str, cells: int) -> str:
    """``text`` on one line, at most ``cells`` terminal cells wide (an emoji or CJK character
    takes two), cut with ``…``; control characters made visible and inert."""
    flat = " ".join(inert(text).split())
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
    """One row: the mark (see gendiff.state.workspace: ✓ only when every engine finished and all
    agree), the count of diverged (or failed) engines, the number, while running ``engines_done``
    (a mark per engine: ● finished this prompt), and the start of the text."""
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
    """Rows are handed in by the screen (``set_rows``); the highlighted row is the selected prompt.
    ``ids`` are the prompts' stable ids, in row order, so a request names the prompt, not a row."""

    DEFAULT_CSS = """
    PromptList { width: 34; height: 1fr; }
    """

    BINDINGS = [
        Binding("r", "run_selected", "Run", id="prompt.run", tooltip="Run the selected prompt"),
        Binding("a", "add", "Add", id="prompt.add", show=False, tooltip="Add a prompt below the selected one"),
        Binding("e", "edit", "Edit", id="prompt.edit", show=False, tooltip="Edit the selected prompt"),
        Binding(
            "d", "delete", "Delete", id="prompt.delete", show=False, tooltip="Delete the selected prompt (asks first)"
        ),
        Binding("ctrl+up", "move(-1)", "Move prompt up", id="prompt.up", show=False),
        Binding("ctrl+down", "move(1)", "Move prompt down", id="prompt.down", show=False),
    ]
    # what the list's inherited keys do in gendiff (their OptionList descriptions are generic)
    INHERITED = {
        "enter": "Edit the selected prompt",
        "up": "Previous prompt",
        "down": "Next prompt",
        "home": "First prompt",
        "end": "Last prompt",
        "pageup": "A page of prompts up",
        "pagedown": "A page of prompts down",
    }

    class AddRequested(Message):
        """Add a prompt after ``after`` (an id; None: at the top of an empty list)."""

        def __init__(self, after: int | None) -> None:
            super().__init__()
            self.after = after

    class EditRequested(Message):
        def __init__(self, pid: int) -> None:
            super().__init__()
            self.pid = pid

    class DeleteRequested(Message):
        def __init__(self, pid: int) -> None:
            super().__init__()
            self.pid = pid

    class MoveRequested(Message):
        def __init__(self, pid: int, offset: int) -> None:
            super().__init__()
            self.pid = pid
            self.offset = offset

    class RunRequested(Message):
        """Run the engines on this prompt (in the call it ran in, if any)."""

        def __init__(self, pid: int) -> None:
            super().__init__()
            self.pid = pid

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.ids: list[int] = []
        self.read_only = False  # a snapshot: no edits, no runs
        self.rebuilding = False  # set_rows' own highlight changes are not the user's
        self._drawn_width = -1  # the width the rows were drawn at

    @property
    def selected_id(self) -> int | None:
        row = self.highlighted
        return self.ids[row] if row is not None and 0 <= row < len(self.ids) else None

    def set_rows(self, rows: list[Text], ids: list[int], highlighted: int | None) -> None:
        self.rebuilding = True
        try:
            self.ids = list(ids)
            self.clear_options()
            self.add_options([Option(row, id=str(i)) for i, row in enumerate(rows)])
            if rows:
                self.highlighted = min(highlighted or 0, len(rows) - 1)
                self.call_after_refresh(self.scroll_to_highlight)  # the rebuilt list starts at its top
        finally:
            self.rebuilding = False

    def highlight_row(self, row: int) -> None:
        """Move the highlight to ``row`` (the rows as they are: nothing is rebuilt)."""
        if 0 <= row < self.option_count and row != self.highlighted:
            self.highlighted = row

    def replace_rows(self, rows: dict[int, Text]) -> None:
        """New text for some rows (by position), the list otherwise as it is: cheap while a run streams."""
        for row, text in rows.items():
            if 0 <= row < self.option_count:
                self.replace_option_prompt_at_index(row, text)

    # Every row is one line (prompt_label cuts the text to fit the row), so the list measures no
    # row, and a changed row re-renders only itself: OptionList measures every option again (and
    # drops every rendered row) on any change, which costs a keypress at a thousand prompts.
    def _update_lines(self) -> None:
        if not self.scrollable_content_region:
            return
        cache = self._line_cache
        count = len(self.options)
        if len(cache.lines) > count:
            cache.clear()
        known = len(cache.lines)
        if known < count:
            cache.lines.extend((index, 0) for index in range(known, count))
            for index in range(known, count):
                cache.heights[index] = 1
                cache.index_to_line[index] = index
        virtual = Size(self.scrollable_content_region.width - self._get_left_gutter_width(), count)
        if virtual != self.virtual_size:
            self.virtual_size = virtual
            self._scroll_update(virtual)

    def _on_resize(self) -> None:
        # the rows are one line each at any height: only a new width draws them anew
        width = self.scrollable_content_region.width
        if width != self._drawn_width:
            self._drawn_width = width
            self._clear_caches()
        else:
            self._update_lines()
        # shorter (the panel took rows to fit a taller reading, or the terminal shrank): the
        # selected prompt stays in view
        self.call_after_refresh(self.scroll_to_highlight)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return self.option_count

    def _replace_option_prompt(self, index: int, prompt: VisualType) -> None:
        option = self.get_option_at_index(index)
        option._set_prompt(prompt)
        cache = self._option_render_cache
        for key in [key for key in cache.keys() if key[0] is option]:
            cache.discard(key)
        self.refresh()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if getattr(self.app, "keys_held", False):
            return False  # a dialog is opening: the keys typed now are its text
        if action in ("run_selected", "add", "edit", "delete", "move"):
            return not self.read_only
        return True

    def _request(self, make: type[Message], *extra: object) -> None:
        pid = self.selected_id
        if pid is not None:
            self.post_message(make(pid, *extra))  # type: ignore[call-arg]

    def action_run_selected(self) -> None:
        self._request(self.RunRequested)

    def _hold(self) -> None:
        hold = getattr(self.app, "hold_keys", None)
        if hold is not None:
            hold()

    def action_add(self) -> None:
        self._hold()
        self.post_message(self.AddRequested(self.selected_id))

    def action_edit(self) -> None:
        if self.selected_id is not None:
            self._hold()
        self._request(self.EditRequested)

    def action_delete(self) -> None:
        self._request(self.DeleteRequested)

    def action_move(self, offset: int) -> None:
        self._request(self.MoveRequested, offset)

    def action_select(self) -> None:  # enter
        if not self.read_only:
            self.action_edit()

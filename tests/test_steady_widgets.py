"""The widgets that change on every key press repaint in place: a Static whose new text keeps its
height does not relayout the screen (one that grows does), and a changed prompt-list row re-renders
only itself."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from test_token_column import LayoutCalls
from textual.app import App, ComposeResult

from gendiff.tui.app import GendiffApp
from gendiff.tui.widgets.prompt_list import PromptList, prompt_label
from gendiff.tui.widgets.steady_static import SteadyStatic

TCSS = Path(__file__).resolve().parent.parent / "gendiff" / "tui" / "gendiff.tcss"


class Host(App[None]):
    CSS_PATH = str(TCSS)
    CSS = "SteadyStatic { width: 20; height: auto; }"
    get_theme_variable_defaults = GendiffApp.get_theme_variable_defaults

    def compose(self) -> ComposeResult:
        yield SteadyStatic("", id="steady")
        yield PromptList(id="prompts")


async def test_a_steady_static_relayouts_only_when_its_height_changes(monkeypatch):
    app = Host()
    async with app.run_test(size=(40, 20)) as pilot:
        steady = app.query_one(SteadyStatic)
        steady.update(Text("one line"))
        await pilot.pause()
        assert steady.size.height == 1
        calls = LayoutCalls(monkeypatch)
        steady.update(Text("another line"))  # still one line at 20 cells
        await pilot.pause()
        assert calls.asked == [] and "another line" in steady.render_line(0).text
        steady.update(Text("a line that wraps over two lines at twenty cells"))
        await pilot.pause()
        assert "SteadyStatic" in calls.asked and steady.size.height == 3  # grew: laid out
        calls.asked.clear()
        steady.update(Text("a line that wraps over two lines at twenty cells"))  # the same: nothing
        await pilot.pause()
        assert calls.asked == []


async def test_a_changed_prompt_row_is_drawn_alone():
    app = Host()
    async with app.run_test(size=(40, 20)) as pilot:
        prompts = app.query_one(PromptList)
        texts = [f"prompt {i}" for i in range(300)]
        prompts.set_rows([prompt_label(i, t, "new", 0, {}) for i, t in enumerate(texts, 1)], list(range(300)), 0)
        await pilot.pause()
        assert prompts.virtual_size.height == 300
        lines = prompts._line_cache.lines
        prompts.replace_rows({1: prompt_label(2, "changed", "diverged", 1, {})})
        await pilot.pause()
        assert prompts._line_cache.lines is lines and len(lines) == 300  # no row measured again
        assert "changed" in prompts.render_line(1).text and "prompt 0" in prompts.render_line(0).text

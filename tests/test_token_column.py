"""Token columns wrap at token boundaries: a token (the highlighted one included) is never split
across lines unless it alone is wider than the column."""

from __future__ import annotations

from pathlib import Path

from helpers import step
from textual.app import App, ComposeResult
from textual.geometry import Region

from gendiff.tui.app import GendiffApp
from gendiff.tui.widgets.token_column import TokenColumn, token_piece, token_text

TCSS = Path(__file__).resolve().parent.parent / "gendiff" / "tui" / "gendiff.tcss"
WORDS = [" The", " capital", " of", " France", " is", " Paris", ",", " a", " beautiful", " city", "\n", "It", " has"]


def steps_of(words: list[str]):
    out = []
    for index, word in enumerate(words):
        s = step(index, (index, -0.1))
        out.append(type(s)(s.token_id, word, s.logprob, s.top))
    return out


class ColumnHost(App[None]):
    CSS_PATH = str(TCSS)
    CSS = "TokenColumn { width: 14; }"
    get_theme_variable_defaults = GendiffApp.get_theme_variable_defaults

    def compose(self) -> ComposeResult:
        yield TokenColumn("hf-single")


def test_a_plain_space_only_separates_tokens():
    assert token_piece(" a\tb\n") == "␣a⇥b↵"
    assert token_piece("\u00a0x\u3000") == "⍽x⍽"
    assert token_piece("") == "∅"
    text = token_text(WORDS, 8, {}).plain
    assert text.startswith("␣The ␣capital ␣of ")
    assert "↵\nIt ␣has" in text


async def test_tokens_wrap_whole_at_every_mark_position():
    app = ColumnHost()
    async with app.run_test(size=(40, 30)) as pilot:
        column = app.query_one(TokenColumn)
        for mark in (None, 1, 8):
            column.show(WORDS, mark)
            await pilot.pause()
            width = column.content_region.width
            assert width == 12  # 14 minus the padding (the frame is the engine column's)
            strips = column.render_lines(Region(0, 0, *column.outer_size))
            lines = [strip.text.strip() for strip in strips if strip.text.strip()]
            assert len(lines) > 1 and all(len(line) <= width for line in lines)  # it did wrap
            drawn = [piece for line in lines for piece in line.split(" ")]
            assert drawn == [token_piece(w) for w in WORDS], (mark, lines)


def test_the_step_cursor_is_marked_without_moving_the_layout():
    steps = WORDS
    plain = token_text(steps, 8, {}).plain
    with_cursor = token_text(steps, 8, {}, cursor=3)
    assert len(with_cursor.plain) == len(plain)
    assert with_cursor.plain.startswith("␣The ␣capital ␣of ␣France◂␣is ")
    start = with_cursor.plain.index("␣France")
    styles = [str(span.style) for span in with_cursor.spans if span.start <= start < span.end]
    assert "bold reverse" in styles
    # on the divergent token as well, after its own style
    at_mark = token_text(steps, 8, {}, cursor=8)
    assert str(at_mark.spans[-1].style) == "bold reverse"
    assert at_mark.plain.count("◂") == 1


class LayoutCalls:
    """Records the widgets that ask Textual for a relayout of the screen."""

    def __init__(self, monkeypatch):
        from textual.widget import Widget

        self.asked: list[str] = []
        original = Widget.refresh

        def refresh(widget, *regions, layout=False, **kwargs):
            if layout:
                self.asked.append(type(widget).__name__)
            return original(widget, *regions, layout=layout, **kwargs)

        monkeypatch.setattr(Widget, "refresh", refresh)


async def test_a_long_column_draws_only_its_lines_in_view_as_a_static_would(monkeypatch):
    from textual.widgets import Static

    words = [f" w{i}" for i in range(500)]
    app = ColumnHost()
    async with app.run_test(size=(40, 12)) as pilot:
        column = app.query_one(TokenColumn)
        column.show(words, 250)  # the first long prompt brings the scrollbar (a relayout)
        await pilot.pause()
        calls = LayoutCalls(monkeypatch)
        column.show(words[:400], 100)  # another prompt
        await pilot.pause()
        assert calls.asked == []  # its tokens are drawn without a relayout of the screen
        height = column.scrollable_content_region.height
        assert len(column._lines) > 5 * height  # far more wrapped lines than the column shows
        assert len(column._strips) <= height  # only the lines in view became Strips
        # the same lines as a Static of the column's width draws them (the old widget)
        width = column.scrollable_content_region.width
        static = Static(column.content)
        await app.mount(static)
        static.styles.width = width
        await pilot.pause()
        expected = [strip.text.rstrip() for strip in static.render_lines(Region(0, 0, width, static.size.height))]
        column.scroll_to(y=30, animate=False, immediate=True)
        await pilot.pause()
        drawn = [column.render_line(y).text.rstrip() for y in range(height)]
        assert drawn == expected[30 : 30 + height]
        assert column.line_of("mark") == next(i for i, line in enumerate(expected) if "␣w100" in line.split(" "))


async def test_a_text_shown_again_is_drawn_from_its_kept_lines(monkeypatch):
    from gendiff.tui.widgets import token_column

    made: list[int] = []
    original = token_column._Wrapped.__init__

    def counting(self, hard, width):
        made.append(width)
        original(self, hard, width)

    monkeypatch.setattr(token_column._Wrapped, "__init__", counting)
    app = ColumnHost()
    async with app.run_test(size=(40, 12)) as pilot:
        column = app.query_one(TokenColumn)
        first, second = [f" a{i}" for i in range(60)], [f" b{i}" for i in range(60)]
        column.show(first, 10)
        await pilot.pause()
        drawn = [column.render_line(y).text for y in range(5)]
        column.show(second, 10)
        await pilot.pause()
        wraps = len(made)
        column.show(first, 10)  # back to the first prompt (p after n)
        await pilot.pause()
        assert len(made) == wraps  # no new wrap
        assert [column.render_line(y).text for y in range(5)] == drawn
        column.show(first, 11)  # the same tokens with another mark: another text, wrapped anew
        await pilot.pause()
        assert len(made) > wraps

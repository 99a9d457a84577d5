"""How the app fits the terminal: too small says so, a narrow terminal collapses the engines to
the reference and the selected one, every prompt row is one line (emoji, CJK, three-digit
numbers), each column's frame (its engine and foot) stays on screen while its tokens scroll, and
a dialog wraps a long path."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_helpers import (
    SIZE,
    FakeRun,
    app_for,
    column,
    hand_made_snapshot,
    late_divergence_snapshot,
    prompt_file,
    shown_columns,
    wait_until,
)
from rich.cells import cell_len
from textual.app import App, ComposeResult
from textual.widgets import Label

from gendiff.tui.app import GendiffApp
from gendiff.tui.layout import prompt_width
from gendiff.tui.screens.choice import Choice
from gendiff.tui.widgets.prompt_list import TEXT_CELLS, PromptList, fit_cells, prompt_label

TCSS = Path(__file__).resolve().parent.parent / "gendiff" / "tui" / "gendiff.tcss"


async def test_too_small_check_follows_every_resize():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        assert main.query_one("#main").display and not main.has_class("too-small")
        await pilot.resize_terminal(50, 12)
        await pilot.pause()
        assert main.has_class("too-small") and main.query_one("#too-small").display
        await pilot.resize_terminal(*SIZE)
        await pilot.pause()
        assert not main.has_class("too-small") and main.query_one("#main").display


async def test_narrow_terminal_collapses_to_reference_and_selected_engine(tmp_path):
    app = app_for(hand_made_snapshot(tmp_path / "snap.json"))
    async with app.run_test(size=(80, 24)) as pilot:
        main = app.main
        assert shown_columns(main) == ["hf-single", "hf-left"]
        assert main.query_one("#prompts").outer_size.width == prompt_width(80)
        left = column(main, "hf-left")
        assert left.border_title.endswith("· 1/2")
        assert left.outer_size.width > 25  # readable, not a 6-character column
        await pilot.press("tab")
        assert shown_columns(main) == ["hf-single", "packed"] and main.workbench.selected_engine == "packed"
        assert column(main, "packed").border_title.endswith("· 2/2")
        await pilot.resize_terminal(200, 50)
        await pilot.pause()
        assert shown_columns(main) == ["hf-single", "hf-left", "packed"]
        assert not column(main, "packed").border_title.endswith("2/2")  # every engine shows: no count
        assert main.query_one("#prompts").outer_size.width == prompt_width(200)


async def test_each_columns_frame_stays_on_screen_while_its_tokens_scroll(tmp_path):
    app = app_for(late_divergence_snapshot(tmp_path / "late.json"))
    async with app.run_test(size=(80, 24)) as pilot:
        main = app.main
        await pilot.pause()
        panel = main.query_one("#panel")
        for label in shown_columns(main):
            frame = column(main, label)
            assert frame.max_scroll_y > 0  # 150 tokens: more than the column holds
            # the whole frame (title and foot on its border) is above the panel, inside the screen
            assert frame.region.y >= 0 and frame.region.bottom <= panel.region.y
            assert frame.border_subtitle == "ran alone"  # its call, said at its foot
        await pilot.press("n")
        await pilot.pause()
        frame = column(main, "hf-left")
        assert frame.scroll_y > 0 and frame.region.bottom <= panel.region.y


async def test_external_change_dialog_wraps_a_long_path_at_120_wide(tmp_path):
    deep = tmp_path / ("a-rather-long-folder-name-" * 2) / "prompts"
    deep.mkdir(parents=True)
    file = prompt_file(deep, "first")
    app = app_for(file)
    async with app.run_test(size=(120, 40)) as pilot:
        file.write_text("first\nsecond\n")
        await wait_until(pilot, lambda: isinstance(app.screen, Choice), 5)
        await pilot.pause()
        box = app.screen.query_one(".dialog").content_region
        question = app.screen.query(Label).first()
        text = str(question.content)
        assert str(file) in text and text.endswith("since gendiff read it.")
        # inside the dialog, on as many lines as the text needs
        assert question.region.x >= box.x and question.region.right <= box.right
        assert question.region.width * question.region.height >= cell_len(text)
        assert question.region.height >= 2


# ── the prompt rows ────────────────────────────────────────────────────────
@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_every_prompt_row_is_one_line_with_emoji_and_three_digit_numbers(tmp_path, size):
    texts = [f"prompt {i}" for i in range(100)] + [
        "🎉 party",
        "🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉",
        "日本語のテキストです。",
        "hello world",
    ]
    app = app_for(prompt_file(tmp_path, *texts))
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        rows = app.main.query_one("#prompts")
        assert rows.option_count == len(texts) and rows.virtual_size.height == len(texts)
        # and while running, with a mark per engine on every row
        FakeRun(app.main, app.main.ws.plan_all())
        await pilot.pause()
        marks = "·" * len(app.main.ws.labels)
        assert "🎉" in rows.get_option_at_index(100).prompt.plain
        assert all(f" {marks} " in rows.get_option_at_index(i).prompt.plain for i in (0, 100, 103))
        assert rows.virtual_size.height == len(texts)  # no row wrapped onto a second line
        app.main.ws.finish(None)


def test_fit_cells_measures_wide_characters():
    assert fit_cells("short", 22) == "short"
    wide = "🙂 emoji " * 10
    cut = fit_cells(wide, 22)
    assert cell_len(cut) <= 22 and cut.endswith("…")
    assert len(cut) < 22  # fewer characters than cells: the emoji take two each
    cjk = fit_cells("東京の天気はどうですか今日は晴れです", 10)
    assert cell_len(cjk) <= 10


def test_a_label_with_emoji_is_no_wider_than_a_plain_one():
    colours: dict[str, str] = {}
    plain = prompt_label(1, "x" * 60, "new", 0, colours)
    emoji = prompt_label(1, "🙂" * 60, "new", 0, colours)
    assert cell_len(emoji.plain) <= cell_len(plain.plain)
    assert cell_len(plain.plain) == 3 + 3 + TEXT_CELLS


class ListHost(App[None]):
    CSS_PATH = str(TCSS)
    get_theme_variable_defaults = GendiffApp.get_theme_variable_defaults

    def compose(self) -> ComposeResult:
        yield PromptList(id="prompts")


async def test_emoji_prompts_take_one_row_each_at_80x24():
    app = ListHost()
    texts = ["🙂🙃😉 Once upon a time, emoji everywhere 🎉🎉🎉", "東京の天気はどうですか今日は晴れです", "plain"]
    async with app.run_test(size=(80, 24)) as pilot:
        prompts = app.query_one(PromptList)
        prompts.set_rows([prompt_label(i, t, "new", 0, {}) for i, t in enumerate(texts, 1)], [10, 11, 12], 0)
        await pilot.pause()
        assert prompts.virtual_size.height == len(texts)
        assert prompts.selected_id == 10


def footer_keys_fit(app, width):
    """The keys the footer shows: each whole on the screen's one row, and ``?`` (where the rest are) among them."""
    from textual.widgets._footer import FooterKey

    keys = [key for key in app.screen.query(FooterKey) if key.display]
    assert keys, "no footer keys"
    for key in keys:
        assert key.region.x >= 0 and key.region.right <= width, (key.key, key.region)
        assert key.region.height == 1 and key.region.y == app.screen.size.height - 1, key.key
    shown = {key.key_display or key.key for key in keys}
    assert "?" in shown, shown
    return shown


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)])
async def test_the_footer_and_the_feet_fit_in_every_state(tmp_path, size):
    from app_helpers import snapshot_pair

    file = prompt_file(tmp_path, "The capital of France is", "How to make tea:\n-")
    a, b = snapshot_pair(tmp_path)
    for app in (app_for(file), app_for(hand_made_snapshot(tmp_path / "s.json")), app_for(a, b)):
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            main = app.main
            if main.snapshot is None:  # an editable prompt file: its run keys, and the same while a run goes
                assert {"r", "R"} <= footer_keys_fit(app, size[0])
                run = FakeRun(main, main.ws.plan_all())
                await run.post(pilot, run.started(), *run.engine_events("hf-single", {p: [5] for p in run.plan.ids}))
                await pilot.pause()
            footer_keys_fit(app, size[0])
            panel = main.query_one("#panel")
            for label in shown_columns(main):
                frame = column(main, label)  # the foot lies on the frame's bottom border, above the panel
                assert frame.region.bottom <= panel.region.y and frame.region.bottom <= size[1] - 1, label
            if main.snapshot is not None:
                assert all(column(main, label).border_subtitle for label in shown_columns(main))
            if main.ws.running:
                await run.end(pilot)

"""Pilot tests for problems found trying the app in tmux (the polish pass). Fast."""

from __future__ import annotations

from rich.cells import cell_len
from test_tui import app_for, prompt_file, wait_until
from textual.widgets import Label

from gendiff.tui.screens.choice import Choice


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

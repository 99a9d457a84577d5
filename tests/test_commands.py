"""gendiff's palette commands resolve to the actions the keys run."""

from __future__ import annotations

from test_tui import app_for

from gendiff.tui.commands import COMMANDS, palette_commands, target_of
from gendiff.tui.screens.help import HelpScreen


async def test_palette_commands_run_the_same_actions_as_the_keys(tmp_path):
    (tmp_path / "prompts.txt").write_text("The capital of France is\n")
    app = app_for(tmp_path / "prompts.txt")
    async with app.run_test(size=(100, 30)) as pilot:
        commands = {c.title: c for c in palette_commands(app, app.screen)}
        implemented = {c.title for c in COMMANDS if target_of(app, app.screen, c) is not None}
        assert set(commands) == implemented
        assert {"Run all prompts", "Next divergence", "Export a snapshot", "Themes", "Help"} <= set(commands)
        await commands["Help"].callback()
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)

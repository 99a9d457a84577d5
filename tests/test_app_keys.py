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
        # those the screen hides here are left out (o filters only the compare view)
        assert set(commands) == implemented - {"Only one engine"}
        assert {"Run all prompts", "Next divergence", "Export a snapshot", "Themes", "Help"} <= set(commands)
        await commands["Help"].callback()
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)


async def test_only_gendiff_themes_and_valid_user_themes_are_offered(tmp_path, isolated_config):
    import json

    from gendiff.themes import GENDIFF_DARK, THEMES

    themes = isolated_config / "themes"
    themes.mkdir()
    mine = {"name": "mine", "dark": True, "variables": dict(GENDIFF_DARK.variables)}
    mine |= {f: getattr(GENDIFF_DARK, f) for f in ("primary", "secondary", "accent", "warning", "error", "success")}
    mine |= {f: getattr(GENDIFF_DARK, f) for f in ("background", "surface", "panel")}
    (themes / "mine.json").write_text(json.dumps(mine))
    (themes / "grey.json").write_text(json.dumps({**mine, "name": "grey", "background": "#777777"}))
    (tmp_path / "prompts.txt").write_text("The capital of France is\n")
    app = app_for(tmp_path / "prompts.txt")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert set(app.available_themes) == {t.name for t in THEMES} | {"mine"}
        assert any("grey.json" in n.message for n in app._notifications)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Run all prompts" in titles and "Themes" in titles
        assert "Keys" not in titles and "Screenshot" not in titles


async def test_help_lists_the_prompt_list_palette_question_and_diagnosis_keys(tmp_path):
    from rich.console import Console

    from gendiff.tui.screens.help import bindings_table

    (tmp_path / "prompts.txt").write_text("The capital of France is\n")
    app = app_for(tmp_path / "prompts.txt")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        console = Console(width=120, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
        console.print(bindings_table(app.screen.groups))
        text = console.export_text()
    for key in ("enter", "↑", "↓", "ctrl+p", "y / enter", "n / esc", "esc / b / q"):
        assert key in text, key
    assert "question_mark" not in text


async def test_the_engine_log_opens_from_the_palette(tmp_path):
    from textual.widgets import Static

    from gendiff.io.capture import _active
    from gendiff.tui.screens.engine_log import EngineLogScreen

    log = tmp_path / "engine-output.log"
    log.write_text("gendiff: engine and library output, now\nutils.cpp:68] Warning: NUMA binding\n")
    (tmp_path / "prompts.txt").write_text("The capital of France is\n")
    app = app_for(tmp_path / "prompts.txt")
    _active.append(log)  # as captured_output does while the app runs
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            commands = {c.title: c for c in app.get_system_commands(app.screen)}
            await commands["Open the engine log"].callback()
            await pilot.pause()
            assert isinstance(app.screen, EngineLogScreen)
            assert "NUMA binding" in str(app.screen.query_one("#engine-log-text", Static).render())
    finally:
        _active.remove(log)

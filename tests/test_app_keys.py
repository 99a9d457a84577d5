"""The keys: the palette's commands run the actions the keys run (on the part that owns the key),
the help lists every key of every part as users read them, and the footer shows what applies."""

from __future__ import annotations

from app_helpers import SIZE, app_for, notifications, wait_until
from rich.console import Console

from gendiff.tui.commands import COMMANDS, palette_commands, target_of
from gendiff.tui.screens.editor import PromptEditor
from gendiff.tui.screens.help import HelpScreen, bindings_table, key_name
from gendiff.tui.screens.main import MainScreen
from gendiff.tui.widgets.prompt_list import PromptList
from gendiff.tui.widgets.workbench import Workbench


def help_text(app) -> str:
    console = Console(width=120, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(bindings_table(app.screen.groups))
    return console.export_text()


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
        assert any("grey.json" in m for m in notifications(app))
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Run all prompts" in titles and "Themes" in titles
        assert "Keys" not in titles and "Screenshot" not in titles


async def test_help_lists_the_prompt_list_palette_question_and_diagnosis_keys(tmp_path):
    (tmp_path / "prompts.txt").write_text("The capital of France is\n")
    app = app_for(tmp_path / "prompts.txt")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        text = help_text(app)
    for key in ("enter", "↑", "↓", "ctrl+p", "y / enter", "n / escape", "escape / b / q"):
        assert key in text, key
    assert "question_mark" not in text


async def test_help_lists_every_binding_of_every_part():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = help_text(app)
        assert "ctrl+↑" in text and "ctrl+s" in text and "question_mark" not in text
        for binding in [*MainScreen.BINDINGS, *PromptList.BINDINGS, *Workbench.BINDINGS, *app.BINDINGS]:
            # the footer's one word is spelled out here: every line of help is a phrase
            said = binding.tooltip or binding.description
            assert said in text, binding
            assert len(said.split()) >= 2, binding


def test_help_names_keys_as_users_read_them():
    assert key_name("question_mark") == "?"
    assert key_name("ctrl+up") == "ctrl+↑"
    assert key_name("left_square_bracket") == "["
    assert key_name("R") == "R"
    assert key_name(" ctrl+c") == "ctrl+c"
    assert key_name("enter") == "enter"
    assert key_name("escape") == "escape"  # as the dialogs and docs say it, not "esc"


async def test_palette_commands_run_on_the_part_that_owns_the_key(tmp_path):
    (tmp_path / "prompts.txt").write_text("first\nsecond\n")
    app = app_for(tmp_path / "prompts.txt")
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        by_title = {c.title: c for c in COMMANDS}
        assert target_of(app, main, by_title["Add a prompt"]) is main.workbench.prompt_list
        assert target_of(app, main, by_title["Next divergence"]) is main.workbench
        assert target_of(app, main, by_title["Run all prompts"]) is main
        assert target_of(app, main, by_title["Themes"]) is app
        commands = {c.title: c for c in palette_commands(app, main)}
        await commands["Add a prompt"].callback()  # as the a key does: the editor on a new prompt
        await wait_until(pilot, lambda: isinstance(app.screen, PromptEditor) and app.screen.query("#editor-text"), 10)
        assert app.screen.query_one("#editor-text").text == "" and app.screen.title_text == "New prompt"


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

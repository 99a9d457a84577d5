"""The settings dialog (s) and what the app remembers: engines, variants, dtype, threshold and
stop-at-EOS checked as the command line checks them, applied to the next run (clearing results of
other settings), saved for the next launch where the command line does not override them; a broken
saved config is a startup note; the theme (t) is remembered too."""

from __future__ import annotations

import json

from app_helpers import SIZE, FakeRun, app_for, marks, notifications, prompt_file, shown_columns, wait_until
from textual.widgets import Select

from gendiff.tui.screens.settings import CheckList, SettingsScreen


def engine_rows(screen):
    engines = screen.query_one("#set-engines")
    return [str(engines.get_option_at_index(i).prompt) for i in range(engines.option_count)]


async def toggle(pilot, screen, label):
    """Space on the engine's row, as the user toggles it."""
    engines = screen.query_one("#set-engines")
    engines.focus()
    engines.highlighted = engines.labels.index(label)
    await pilot.press("space")
    await pilot.pause()


async def test_settings_change_engines_and_dtype(tmp_path):
    app = app_for(prompt_file(tmp_path, "one"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, SettingsScreen)
        assert app.focused is screen.query_one("#set-variant")  # the first field has the focus
        await toggle(pilot, screen, "packed")
        screen.query_one("#set-dtype", Select).value = "bfloat16"
        screen.query_one("#set-max-new-tokens").value = "7"
        await pilot.press("ctrl+s")
        await pilot.pause()
        options = app.main.options
        assert options.dtype == "bfloat16" and options.max_new_tokens == 7
        await wait_until(pilot, lambda: len(app.main.workbench.columns.in_order()) == 3, 5)
        assert shown_columns(app.main) == ["hf-single", "hf-left", "hf-right"]
        assert app.main.ws.labels == ["hf-single", "hf-left", "hf-right"]
        header = str(app.main.query_one("#run-line").content)
        assert "7 tokens" in header
        assert any("settings applied and saved" in m for m in notifications(app))


async def test_settings_variants_threshold_eos_are_checked_remembered_and_restored(tmp_path):
    app = app_for(prompt_file(tmp_path, "one"))
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("s")
        await pilot.pause()
        screen = app.screen
        assert "[x] packed" in engine_rows(screen)
        await toggle(pilot, screen, "packed")
        assert "[ ] packed" in engine_rows(screen)  # enabled or not, readable without colour
        screen.query_one("#set-variant").focus()
        await pilot.press(*"hf-single:dtype", "enter")
        await pilot.pause()
        error = str(screen.query_one("#settings-error").content)
        assert "is not key=value" in error and "\n" not in error
        assert not any("dtype" in row for row in engine_rows(screen))
        screen.query_one("#set-variant").value = ""
        await pilot.press(*"hf-single:dtype=float32", "enter")
        await pilot.pause()
        assert "[x] hf-single:dtype=float32" in engine_rows(screen)
        assert engine_rows(screen)[-1] == "[x] hf-single:dtype=float32"  # variants after the built-in engines
        assert str(screen.query_one("#settings-error").content) == ""
        screen.query_one("#set-fragile-threshold").value = "-1"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is screen and "fragile threshold" in str(screen.query_one("#settings-error").content)
        screen.query_one("#set-fragile-threshold").value = "0.125"
        screen.query_one("#set-stop-at-eos").value = False
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is not screen
        options = app.main.options
        assert options.engines == ("hf-single", "hf-left", "hf-right", "hf-single:dtype=float32")
        assert options.fragile_threshold == 0.125 and options.stop_at_eos is False
    # the next launch restores them; an option given on the command line wins
    restored = app_for(prompt_file(tmp_path, "one"), given=frozenset({"max_new_tokens"}), max_new_tokens=5)
    async with restored.run_test(size=(160, 50)):
        options = restored.main.options
        assert options.engines[-1] == "hf-single:dtype=float32" and options.fragile_threshold == 0.125
        assert options.stop_at_eos is False and options.max_new_tokens == 5
        assert [c.label for c in restored.main.workbench.columns.in_order()][-1] == "hf-single:dtype=float32"


async def test_a_reference_that_is_not_selected_is_refused_in_the_dialog(tmp_path):
    app = app_for(prompt_file(tmp_path, "one"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await pilot.pause()
        screen = app.screen
        await toggle(pilot, screen, "hf-single")  # the reference
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is screen
        assert "reference hf-single is not selected" in str(screen.query_one("#settings-error").content)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.main and app.main.ws.labels[0] == "hf-single"  # nothing changed


async def test_new_settings_clear_the_results_of_the_old_ones(tmp_path):
    app = app_for(prompt_file(tmp_path, "one"))
    async with app.run_test(size=SIZE) as pilot:
        main, ws = app.main, app.main.ws
        run = FakeRun(main, ws.plan_all())
        await run.post(pilot, run.started())
        for label in ws.labels:
            await run.post(pilot, *run.engine_events(label, {ws.prompts[0].id: [5, 6]}))
        await run.end(pilot)
        assert marks(app) == ["identical"]
        await pilot.press("s")
        await pilot.pause()
        app.screen.query_one("#set-max-new-tokens").value = "9"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert main.options.max_new_tokens == 9
        assert marks(app) == ["new"]  # a result of 4 tokens is not one of these settings
        assert "0/1 complete" in str(main.query_one("#run-line").content)
        assert not main.query_one("#progress").display  # no strip of a run of other settings


async def test_settings_are_not_changed_while_a_run_goes(tmp_path):
    app = app_for(prompt_file(tmp_path, "one"))
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        FakeRun(main, main.ws.plan_all())
        before = main.options
        await pilot.press("s")
        await pilot.pause()
        app.screen.query_one("#set-max-new-tokens").value = "9"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert main.options == before and main.ws.running
        assert any("settings not changed" in m for m in notifications(app))
        main.ws.finish(None)


async def test_broken_saved_settings_are_a_startup_note_not_a_crash(tmp_path):
    from gendiff.tui.config import save_config

    save_config(settings={"engines": ["nonsense-engine"], "dtype": "bfloat16"})
    app = app_for(prompt_file(tmp_path, "one"), given=frozenset())
    async with app.run_test(size=(160, 50)):
        assert app.main.options.dtype != "bfloat16"  # none of them applied
        assert any("saved settings not used" in note for note, _ in app.startup_notes)


def test_given_options_are_those_on_the_command_line_even_at_their_default():
    from gendiff.cli.args import given_options, tui_parser
    from gendiff.defaults import DTYPE

    given = given_options(tui_parser(), ["--dtype", DTYPE, "prompts.txt", "--no-stop-at-eos"])
    assert {"dtype", "no_stop_at_eos"} <= given and "max_new_tokens" not in given and "engines" not in given


async def test_theme_switch_is_remembered(isolated_config):
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        assert app.theme == "gendiff-dark"
        await pilot.press("t")
        assert app.theme == "gendiff-light"
        assert json.loads((isolated_config / "config.json").read_text())["theme"] == "gendiff-light"
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        assert app.theme == "gendiff-light"
    app = app_for(theme="gendiff-contrast")
    async with app.run_test(size=SIZE) as pilot:
        assert app.theme == "gendiff-contrast"


async def test_every_tab_stop_of_the_settings_is_a_field_and_shift_tab_wraps_to_the_last(tmp_path):
    from textual.widgets import Input

    app = app_for(prompt_file(tmp_path, "first"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s")
        await pilot.pause()
        chain = app.screen.focus_chain
        assert all(isinstance(w, (Input, Select, CheckList)) for w in chain), [type(w).__name__ for w in chain]
        assert app.focused.id == "set-variant"
        await pilot.press("shift+tab")
        assert app.focused.id == "set-model"
        await pilot.press("tab", "tab")
        assert app.focused.id == "set-engines"
        # the field focused last sits below the fold at 80x24: focus scrolled it into view
        await pilot.press("shift+tab", "shift+tab")
        assert app.focused.id == "set-model"
        assert app.screen.query_one("#settings-box").region.contains_region(app.focused.region)


async def test_a_refused_variant_is_said_where_it_can_be_seen_at_80x24(tmp_path):
    from textual.widgets import Input

    app = app_for(prompt_file(tmp_path, "first"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s")
        await pilot.pause()
        box = app.screen.query_one("#settings-box")
        box.scroll_end(animate=False)  # as it opens scrolled at a small size
        await pilot.pause()
        app.screen.query_one("#set-variant", Input).value = "hf-left:bogus=1"
        app.screen.query_one("#set-variant", Input).focus()
        await pilot.press("enter")
        await pilot.pause()
        error = app.screen.query_one("#settings-error")
        assert "bogus" in str(error.content)
        assert box.region.contains_region(error.region), (box.region, error.region)

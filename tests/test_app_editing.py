"""Editing the prompt list: the editor and the confirmation (alone, in a small host app, and in
the app), each edit saved to the file at once and atomically, a failed save kept and said, quitting
that would lose something asks first, and the file changed by another program: noticed, never
overwritten silently, reloaded keeping the results of unchanged prompts."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_helpers import SIZE, FakeRun, app_for, notifications, prompt_file, wait_until
from textual.app import App, ComposeResult
from textual.widgets import Label, Static

from gendiff.errors import GendiffError
from gendiff.themes import THEMES
from gendiff.tui.app import GendiffApp
from gendiff.tui.prompt_file import PromptFile
from gendiff.tui.screens.choice import Choice
from gendiff.tui.screens.confirm import Confirm
from gendiff.tui.screens.editor import PromptArea, PromptEditor
from gendiff.tui.screens.export import ExportDialog

TCSS = Path(__file__).resolve().parent.parent / "gendiff" / "tui" / "gendiff.tcss"


# ── the editor and the confirmation on their own ───────────────────────────
class Host(App[None]):
    """An empty screen that opens the editor; remembers what it returned."""

    CSS_PATH = str(TCSS)
    get_theme_variable_defaults = GendiffApp.get_theme_variable_defaults

    def __init__(self) -> None:
        super().__init__()
        self.results: list[object] = []

    def compose(self) -> ComposeResult:
        yield Static("host")

    def on_mount(self) -> None:
        for theme in THEMES:
            self.register_theme(theme)
        self.theme = THEMES[0].name

    def edit(self, text: str) -> None:
        self.push_screen(PromptEditor(text, "Edit prompt 1"), self.results.append)


async def test_editor_keeps_a_typed_tab():
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        app.edit("def f(x):\n")
        await pilot.pause()
        await pilot.press("tab", "r", "e", "t", "ctrl+s")
        await pilot.pause()
    assert app.results == ["def f(x):\n\tret"]


async def test_escape_without_changes_closes_at_once():
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        app.edit("hello")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, PromptEditor)
    assert app.results == [None]


async def test_escape_with_changes_asks_and_n_keeps_the_draft():
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        app.edit("hello")
        await pilot.pause()
        await pilot.press("!", "escape")
        await pilot.pause()
        assert isinstance(app.screen, Confirm)
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, PromptEditor)
        assert app.screen.query_one(PromptArea).text == "hello!"
        assert app.results == []
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert not isinstance(app.screen, (PromptEditor, Confirm))
    assert app.results == [None]


async def test_ctrl_c_in_the_editor_asks_instead_of_dropping_the_draft():
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        app.edit("hello")
        await pilot.pause()
        await pilot.press("x", "ctrl+c")
        await pilot.pause()
        assert isinstance(app.screen, Confirm)
        await pilot.press("escape")  # "no": back to the draft
        await pilot.pause()
        assert app.screen.query_one(PromptArea).text == "hellox"
        await pilot.press("ctrl+s")
        await pilot.pause()
    assert app.results == ["hellox"]


async def test_delete_confirmation_quotes_the_prompt():
    app = Host()
    answers: list[bool | None] = []
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(Confirm("Delete prompt 3?", quote="The capital of Ghana"), answers.append)
        await pilot.pause()
        quote = app.screen.query_one("#confirm-quote", Static)
        assert "“The capital of Ghana”" in str(quote.render())
        assert quote.region.height >= 1
        await pilot.press("y")
        await pilot.pause()
    assert answers == [True]


# ── in the app ─────────────────────────────────────────────────────────────
async def test_edit_add_delete_reorder_are_saved_atomically(tmp_path):
    file = prompt_file(tmp_path, "first prompt", "second prompt")
    app = app_for(file)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        await pilot.pause()
        app.screen.query_one("#editor-text").text = "first prompt, edited\nwith a second line"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert file.read_text() == "first prompt, edited\\nwith a second line\nsecond prompt\n"
        await pilot.press("a")
        await pilot.pause()
        app.screen.query_one("#editor-text").text = "added"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert file.read_text().splitlines() == ["first prompt, edited\\nwith a second line", "added", "second prompt"]
        assert app.main.workbench.current.text == "added"  # the new prompt is selected
        await pilot.press("ctrl+down")
        assert file.read_text().splitlines()[1:] == ["second prompt", "added"]
        assert app.main.workbench.current_number == 3  # the moved prompt stays selected
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert file.read_text().splitlines() == ["first prompt, edited\\nwith a second line", "second prompt"]
        assert app.main.workbench.prompt_list.option_count == 2
        await pilot.press("e")
        await pilot.pause()
        app.screen.query_one("#editor-text").text = "never saved"
        await pilot.press("escape")
        await pilot.pause()
        assert "never saved" not in file.read_text()
        assert [p.name for p in tmp_path.iterdir()] == ["prompts.txt"]  # no temp files left behind


async def test_in_the_app_delete_quotes_the_prompt_and_the_editor_keeps_a_tab(tmp_path):
    app = app_for(prompt_file(tmp_path, "The capital of Ghana", "second"))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, Confirm)
        assert "“The capital of Ghana”" in str(app.screen.query_one("#confirm-quote", Static).render())
        await pilot.press("n")
        await pilot.pause()
        assert [p.text for p in app.main.ws.prompts] == ["The capital of Ghana", "second"]
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, PromptEditor)
        await pilot.press("tab", "x", "ctrl+s")
        await pilot.pause()
        assert app.main.ws.prompts[0].text == "The capital of Ghana\tx"


async def test_tab_typed_in_the_real_apps_editor_is_text_not_the_engine_key(tmp_path):
    app = app_for(prompt_file(tmp_path, "first"))
    async with app.run_test(size=(120, 40)) as pilot:
        engine = app.main.workbench.selected_engine
        await pilot.press("a")
        await pilot.pause()
        await pilot.press(*"Line one", "tab", *"tab here", "ctrl+s")
        await pilot.pause()
        assert [p.text for p in app.main.ws.prompts] == ["first", "Line one\ttab here"]
        assert app.main.workbench.selected_engine == engine  # the workbench's tab (next engine) did not fire


async def test_a_running_prompt_is_not_deleted(tmp_path):
    file = prompt_file(tmp_path, "first", "second")
    app = app_for(file)
    async with app.run_test(size=SIZE) as pilot:
        FakeRun(app.main, app.main.ws.plan_all())
        await pilot.press("d")
        await pilot.pause()
        assert not isinstance(app.screen, Confirm)
        assert any("this prompt is running" in m for m in notifications(app))
        assert len(app.main.ws.prompts) == 2 and file.read_text() == "first\nsecond\n"
        app.main.ws.finish(None)


async def test_demo_prompts_are_copied_to_the_user_file_on_first_edit(isolated_config):
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a")
        await pilot.pause()
        app.screen.query_one("#editor-text").text = "my own prompt"
        await pilot.press("ctrl+s")
        await pilot.pause()
        saved = (isolated_config / "prompts.txt").read_text().splitlines()
        assert len(saved) == 17 and saved[1] == "my own prompt"


async def test_bad_user_prompt_file_notifies_and_is_left_alone(isolated_config):
    bad = isolated_config / "prompts.txt"
    bad.write_bytes(b"ok\n\xff\xfe\n")
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert any("not UTF-8" in m for m in notifications(app))
        assert len(app.main.ws.prompts) == 16  # the demo prompts, read-only
        await pilot.press("a")
        await pilot.pause()
        app.screen.query_one("#editor-text").text = "mine"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert bad.read_bytes() == b"ok\n\xff\xfe\n"  # the user's file is untouched


async def test_q_after_a_failed_save_asks_before_quitting(tmp_path, monkeypatch):
    app = app_for(prompt_file(tmp_path, "first"))
    async with app.run_test(size=SIZE) as pilot:

        def disk_full(path, text):
            raise GendiffError(f"cannot write {path}: No space left on device; pick a writable path")

        monkeypatch.setattr("gendiff.io.prompts.atomic_write_text", disk_full)  # as a full disk would
        await pilot.press("a")
        await pilot.pause()
        app.screen.query_one("#editor-text").text = "kept in the app"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.main.prompt_file.unsaved and any("No space left" in m for m in notifications(app))
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, Confirm) and "not saved" in app.screen.question
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running and [p.text for p in app.main.ws.prompts] == ["first", "kept in the app"]
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
    assert app.return_code in (0, None)


async def test_ctrl_c_in_the_apps_editor_asks_before_dropping_the_draft(tmp_path):
    app = app_for(prompt_file(tmp_path, "first"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a")
        await pilot.pause()
        await pilot.press("h", "i")
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert isinstance(app.screen, Confirm) and "editing" in app.screen.question
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, PromptEditor) and app.screen.query_one("#editor-text").text == "hi"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert (tmp_path / "prompts.txt").read_text().splitlines() == ["first", "hi"]


async def test_keys_typed_at_once_after_start_are_not_lost(tmp_path):
    from textual import events

    app = app_for(prompt_file(tmp_path, "first"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        # as a terminal delivers fast typing: all four queued before the first is handled
        for key in "ahey":
            app.post_message(events.Key(key, key))
        await pilot.pause(0.5)
        assert [type(screen) for screen in app.screen_stack[1:]] == [PromptEditor]
        assert app.screen.query_one("#editor-text").text == "hey"


# ── the prompt file changed by another program ─────────────────────────────
async def edit_first_prompt(app, pilot, text):
    await pilot.press("e")
    await pilot.pause()
    app.screen.query_one("#editor-text").text = text
    await pilot.press("ctrl+s")
    await pilot.pause()


@pytest.mark.parametrize("answer", ["k", "r", "s"])
async def test_external_edit_is_noticed_and_the_user_chooses(tmp_path, answer, monkeypatch):
    # the 2 s timer's check is held back (it could fire at any point under load): the save after
    # the in-app edit must notice the change by itself; the real check is then called directly
    periodic_check = PromptFile.check_on_disk
    monkeypatch.setattr(PromptFile, "check_on_disk", lambda self: None)
    file = prompt_file(tmp_path, "first", "second")
    app = app_for(file)
    async with app.run_test(size=SIZE) as pilot:
        file.write_text("theirs\n")
        await edit_first_prompt(app, pilot, "mine")
        assert isinstance(app.screen, Choice), app.screen  # asked by the save itself
        periodic_check(app.main.prompt_file)  # the timer's check now: already asked, so it must not ask again
        await pilot.pause()
        assert sum(isinstance(screen, Choice) for screen in app.screen_stack) == 1
        assert file.read_text() == "theirs\n"  # nothing overwritten before the user chose
        await pilot.press(answer)
        await pilot.pause()
        if answer == "k":
            assert file.read_text() == "mine\nsecond\n"
        elif answer == "r":
            assert [p.text for p in app.main.ws.prompts] == ["theirs"] and file.read_text() == "theirs\n"
            assert app.main.workbench.prompt_list.option_count == 1
        else:
            assert isinstance(app.screen, ExportDialog)
            await pilot.press("enter")
            await wait_until(pilot, lambda: not isinstance(app.screen, ExportDialog), 10)
            assert file.read_text() == "theirs\n"
            assert (tmp_path / "prompts-mine.txt").read_text() == "mine\nsecond\n"
            assert any("gendiff now edits that file" in m for m in notifications(app))
            await edit_first_prompt(app, pilot, "mine again")  # the next edit goes to the new file
            assert (tmp_path / "prompts-mine.txt").read_text() == "mine again\nsecond\n"
            assert file.read_text() == "theirs\n"


async def test_external_edit_is_noticed_without_an_edit_in_the_app(tmp_path):
    file = prompt_file(tmp_path, "first")
    app = app_for(file)
    async with app.run_test(size=SIZE) as pilot:
        file.write_text("theirs\n")
        await wait_until(pilot, lambda: isinstance(app.screen, Choice), 5)
        await pilot.press("r")
        await pilot.pause()
        assert [p.text for p in app.main.ws.prompts] == ["theirs"]


async def test_reload_after_an_external_edit_keeps_results_of_unchanged_prompts(tmp_path):
    file = prompt_file(tmp_path, "first", "second", "third")
    app = app_for(file)
    async with app.run_test(size=(120, 40)) as pilot:
        main, ws = app.main, app.main.ws
        # results as a run leaves them (hand-made traces for the app's engines; no model)
        run = FakeRun(main, ws.plan_all())
        await run.post(pilot, run.started())
        for label in ws.labels:
            await run.post(pilot, *run.engine_events(label, {p.id: [5, 6, 7] for p in ws.prompts}))
        await run.end(pilot)
        before = {p.text: {label: c.trace for label, c in p.cells.items()} for p in ws.prompts}
        assert all(t is not None for traces in before.values() for t in traces.values())
        file.write_text("third\nsecond, changed\nfirst\nfourth\n")  # another program reorders and edits
        await wait_until(pilot, lambda: isinstance(app.screen, Choice), 5)
        assert any("keep their results" in str(label.content) for label in app.screen.query(Label))
        await pilot.press("r")
        await pilot.pause()
        assert [p.text for p in ws.prompts] == ["third", "second, changed", "first", "fourth"]
        for prompt in ws.prompts:
            traces = {label: c.trace for label, c in prompt.cells.items()}
            if prompt.text in before:
                assert traces == before[prompt.text]  # the same text: the same results
            else:
                assert all(t is None for t in traces.values())  # new or changed text: not run
        assert any("2 prompts kept their results" in m for m in notifications(app))
        assert app.main.workbench.prompt_list.option_count == 4
        assert [app.main.ws.mark(p)[0] for p in ws.prompts] == ["identical", "new", "identical", "new"]


async def test_the_first_edit_on_a_fresh_machine_is_saved_though_the_config_folder_does_not_exist_yet(
    tmp_path, monkeypatch
):
    """The prompt list beside the config is gendiff's own file: its folder is made at the first save
    (a fresh HOME has no ~/.config/gendiff yet); a file the user named keeps its folder as it is."""
    folder = tmp_path / "fresh" / "gendiff"
    monkeypatch.setenv("GENDIFF_CONFIG_DIR", str(folder))
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        first = app.main.ws.prompts[0].text
        await pilot.press("e")
        await pilot.press("end", "space", "Z", "ctrl+s")
        await wait_until(pilot, lambda: (folder / "prompts.txt").exists(), timeout=20)
        assert (folder / "prompts.txt").read_text().splitlines()[0] == first + " Z"
        assert not any("cannot write" in m for m in notifications(app)), notifications(app)

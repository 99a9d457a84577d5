"""The editor, the confirmation and the prompt list, driven by the Pilot in a small host app
(the widgets' own behaviour; the main screen's wiring is tested in test_tui.py)."""

from __future__ import annotations

from pathlib import Path

from rich.cells import cell_len
from textual.app import App, ComposeResult
from textual.widgets import Static

from gendiff.themes import THEMES
from gendiff.tui.app import GendiffApp
from gendiff.tui.screens.confirm import Confirm
from gendiff.tui.screens.editor import PromptArea, PromptEditor
from gendiff.tui.widgets.prompt_list import TEXT_CELLS, PromptList, fit_cells, prompt_label

TCSS = Path(__file__).resolve().parent.parent / "gendiff" / "tui" / "gendiff.tcss"


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
    plain = prompt_label(1, "x" * 60, "new", "", colours)
    emoji = prompt_label(1, "🙂" * 60, "new", "", colours)
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
        prompts.set_rows([prompt_label(i, t, "new", "", {}) for i, t in enumerate(texts, 1)], 0)
        await pilot.pause()
        assert prompts.virtual_size.height == len(texts)


async def test_diagnosis_view_says_what_it_is_doing_and_how_to_cancel():
    from gendiff.tui.screens.diagnosis import HELP_DONE, HELP_LOADING, HELP_LOADING_DETACHED, DiagnosisScreen

    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = DiagnosisScreen("diagnosis · prompt 3 · hf-left vs hf-single at step 13", None, cancellable=True)
        app.push_screen(screen)
        await pilot.pause()
        stage = screen.query_one("#diagnosis-stage", Static)
        assert "loading the model" in str(stage.render())
        screen.set_stage("replaying hf-left to step 13")
        await pilot.pause()
        assert "replaying hf-left" in str(stage.render())
        help_label = screen.query_one("#diagnosis-help")
        assert str(help_label.render()) == HELP_LOADING
        assert help_label.region.height == 1 and help_label.region.bottom <= 24
        await pilot.press("escape")
        await pilot.pause()
        assert screen.cancel_event.is_set() and app.screen is not screen

        # a long result scrolls in its body; the key help stays on screen
        screen = DiagnosisScreen("diagnosis", None)
        app.push_screen(screen)
        await pilot.pause()
        assert str(screen.query_one("#diagnosis-help").render()) == HELP_LOADING_DETACHED
        screen.show_error("\n".join(f"line {i}" for i in range(100)))
        await pilot.pause()
        help_label = screen.query_one("#diagnosis-help")
        assert str(help_label.render()) == HELP_DONE
        assert help_label.region.height >= 1 and help_label.region.bottom <= 24
        assert not screen.query_one("#diagnosis-stage").display
        assert screen.query_one("#diagnosis-scroll").max_scroll_y > 0
        await pilot.press("escape")
        await pilot.pause()
        assert not screen.cancel_event.is_set()


def test_help_names_keys_as_users_read_them():
    from gendiff.tui.screens.help import key_name

    assert key_name("question_mark") == "?"
    assert key_name("ctrl+up") == "ctrl+↑"
    assert key_name("left_square_bracket") == "["
    assert key_name("R") == "R"
    assert key_name(" ctrl+c") == "ctrl+c"
    assert key_name("enter") == "enter"


async def test_in_the_app_delete_quotes_the_prompt_and_the_editor_keeps_a_tab(tmp_path):
    from test_tui import app_for

    (tmp_path / "prompts.txt").write_text("The capital of Ghana\nsecond\n")
    app = app_for(tmp_path / "prompts.txt")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, Confirm)
        assert "“The capital of Ghana”" in str(app.screen.query_one("#confirm-quote", Static).render())
        await pilot.press("n")
        await pilot.pause()
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, PromptEditor)
        await pilot.press("tab", "x", "ctrl+s")
        await pilot.pause()
        assert app.main.ws.prompts[0].text == "The capital of Ghana\tx"


def test_the_diagnosis_worker_says_its_stage_and_stops_once_cancelled():
    import threading

    from gendiff.tui.messages import Diagnosed, DiagnosisStage
    from gendiff.tui.workers import diagnose

    cancel = threading.Event()
    posted: list[object] = []

    def post(message: object) -> None:
        posted.append(message)
        cancel.set()  # the user closes the view as soon as the first stage shows

    diagnose(post, 1, None, flip_divergence(), None, cancel)  # type: ignore[arg-type]
    assert [type(m) for m in posted] == [DiagnosisStage]
    assert "loading torch" in posted[0].text
    assert not any(isinstance(m, Diagnosed) for m in posted)


def flip_divergence():
    from helpers import step, trace

    from gendiff.records.divergence import compare

    ref = trace("hf-single", [step(5, (5, -0.5), (6, -0.6))])
    other = trace("hf-left", [step(6, (6, -0.5), (5, -0.6))])
    return compare(ref, other)

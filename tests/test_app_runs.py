"""The TUI, driven with Textual's Pilot on the real demo model."""

import json

import pytest

from gendiff.io.documents import open_document
from gendiff.io.snapshots import load_snapshot, save_snapshot, validate
from gendiff.run.options import RunOptions
from gendiff.tui.app import GendiffApp, LaunchOptions
from gendiff.tui.widgets.token_column import TokenColumn

SIZE = (150, 42)


async def wait_until(pilot, condition, timeout=600.0):
    waited = 0.0
    while not condition():
        await pilot.pause(0.1)
        waited += 0.1
        assert waited < timeout, "timed out waiting"


def app_for(path=None, other=None, preload=False, theme=None, given=None, **run):
    """The app as ``gendiff [path [other]] --option …`` starts it (the file is opened first, as the CLI does)."""
    run.setdefault("max_new_tokens", 24)
    document = open_document(str(path), str(other) if other else None) if path else None
    return GendiffApp(LaunchOptions(RunOptions(**run), document, theme, preload, given))


def marks(app):
    ws = app.main.ws
    return [ws.mark(p)[0] for p in ws.prompts]


def prompt_file(tmp_path, *prompts):
    file = tmp_path / "prompts.txt"
    file.write_text("".join(p.replace("\n", "\\n") + "\n" for p in prompts))
    return file


def plain(widget, width=140):
    """What a Static shows, as plain text (rendered with Rich at ``width``)."""
    from rich.console import Console

    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(widget.content)
    return console.export_text()


def notifications(app):
    return [n.message for n in app._notifications]


def running(app):
    return app.main.ws.running


@pytest.mark.slow
async def test_run_all_in_bfloat16_marks_divergences_and_n_moves_to_them(tmp_path):
    app = app_for(dtype="bfloat16")
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        assert len(main.ws.prompts) == 16  # the demo prompts
        await pilot.press("R")
        # the key reaches the screen within a frame or two, however busy the machine
        # (with the model already loaded in this process the run can also end within a frame)
        for _ in range(100):
            if running(app) or "new" not in marks(app):
                break
            await pilot.pause(0.1)
        assert running(app) or "new" not in marks(app), notifications(app)
        await wait_until(pilot, lambda: not running(app))
        diverged = [i for i, m in enumerate(marks(app)) if m == "diverged"]
        assert diverged, marks(app)
        # every other prompt is ✓: all four engines finished it and agree
        for i, prompt in enumerate(main.ws.prompts):
            if i not in diverged:
                assert marks(app)[i] == "identical"
                assert all(c.state == "finished" for c in prompt.cells.values())
        await pilot.press("n")
        assert (main.workbench.current_number - 1) in diverged
        prompt = main.workbench.current
        assert main.workbench.selected_engine in main.ws.diverged_engines(prompt)
        d = main.ws.divergence(prompt, main.workbench.selected_engine)
        assert d.diverged and d.step is not None
        panel = app.main.query_one("#panel")
        assert f"diverges from hf-single at step {d.step}" in panel.border_title
        assert "batch of 16" in panel.border_title
        column = next(c for c in app.main.query(TokenColumn) if c.label == main.workbench.selected_engine)
        assert [span for span in column.render().spans if "underline" in str(span.style)], "no marked token"
        first = ((main.workbench.current_number - 1), main.workbench.selected_engine)
        await pilot.press("n")
        await pilot.press("p")
        assert ((main.workbench.current_number - 1), main.workbench.selected_engine) == first
        before = main.workbench.selected_engine
        await pilot.press("tab")
        assert main.workbench.selected_engine != before
        header = str(app.main.query_one("#run-line").content)
        assert f"16/16 complete · {sum(len(main.ws.diverged_engines(p)) for p in main.ws.prompts)} divergence" in header
        target = tmp_path / "export.json"
        await pilot.press("x")
        await pilot.pause()
        app.screen.query_one("#export-path").value = str(target)
        await pilot.press("enter")
        await pilot.pause()
        data = json.loads(target.read_text())
        validate(data, "export")
        assert len(data["prompts"]) == 16 and data["schema"] == "gendiff.snapshot/2"
        assert any(f"snapshot written to {target}" in m for m in notifications(app))
        snapshot = load_snapshot(target)
        assert snapshot.model["dtype"] == "bfloat16"
        assert len(snapshot.divergences()) == sum(len(main.ws.diverged_engines(p)) for p in main.ws.prompts)
        assert [b.prompt_ids for b in snapshot.batches] == [tuple(range(16))]


@pytest.mark.slow
async def test_run_selected_prompt_streams_into_columns(tmp_path):
    app = app_for(
        prompt_file(tmp_path, "The capital of France is", "How to make tea:\n-"), engines=("hf-single", "hf-left")
    )
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down", "r")
        await wait_until(pilot, lambda: not running(app))
        ws = app.main.ws
        assert marks(app)[0] == "new"
        second = ws.prompts[1]
        assert {label for label, c in second.cells.items() if c.state == "finished"} == {"hf-single", "hf-left"}
        column = app.main.query(TokenColumn).first()
        assert "Boil" in str(column.render())
        assert "␣" in str(column.render())  # whitespace visible
        assert " tok " in column.border_subtitle and column.border_title == "hf-single (ref)"
        # never run before: the batched engine ran it alone, and its column foot says so
        left = next(c for c in app.main.query(TokenColumn) if c.label == "hf-left")
        assert "ran alone" in left.border_subtitle
        assert "ran alone" in app.main.query_one("#panel").border_title


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
        await pilot.press("ctrl+down")
        assert file.read_text().splitlines()[1:] == ["second prompt", "added"]
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert file.read_text().splitlines() == ["first prompt, edited\\nwith a second line", "second prompt"]
        await pilot.press("e")
        await pilot.pause()
        app.screen.query_one("#editor-text").text = "never saved"
        await pilot.press("escape")
        await pilot.pause()
        assert "never saved" not in file.read_text()
        assert [p.name for p in tmp_path.iterdir()] == ["prompts.txt"]  # no temp files left behind


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


@pytest.mark.slow
async def test_escape_mid_run_never_marks_engines_that_did_not_run(tmp_path):
    app = app_for(
        # 16 prompts x 400 tokens: hf-single can't finish them all before escape lands, however fast the machine
        prompt_file(
            tmp_path,
            *[f"Once upon a time, there was a {n} number {i}" for i in range(4) for n in ("cat", "dog", "king", "fox")],
        ),
        max_new_tokens=400,
        stop_at_eos=False,
        engines=("hf-single", "hf-left"),
    )
    async with app.run_test(size=SIZE) as pilot:
        ws = app.main.ws
        await pilot.press("R")
        await wait_until(pilot, lambda: any(c.live for p in ws.prompts for c in p.cells.values()))
        await pilot.press("down")  # navigation works mid-run
        assert (app.main.workbench.current_number - 1) == 1
        await pilot.press("escape")
        await wait_until(pilot, lambda: not running(app), timeout=60)
        assert any("run cancelled" in m for m in notifications(app))
        assert "identical" not in marks(app), marks(app)
        # hf-left never ran: nothing says it agreed
        assert all(p.cells["hf-left"].state == "not run" for p in ws.prompts)
        assert all(m == "incomplete" for m in marks(app))
        header = str(app.main.query_one("#run-line").content)
        assert "0/16 complete · 0 divergences" in header and "16 incomplete" in header
        cancelled = [p.cells["hf-single"] for p in ws.prompts]
        assert any(c.state == "cancelled" and len(c.trace.steps) < 400 for c in cancelled)


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


async def test_bad_model_path_notifies_on_run_and_keeps_what_was_shown(tmp_path):
    app = app_for(prompt_file(tmp_path, "hello"), model=str(tmp_path / "no-model"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_until(pilot, lambda: not running(app), timeout=60)
        assert any("no such directory" in m for m in notifications(app))
        assert marks(app) == ["new"]
        await pilot.press("a")  # still alive
        await pilot.pause()
        assert app.screen.query("#editor-text")


async def test_export_before_any_run_says_so():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("x")
        assert any("nothing to export yet" in m for m in notifications(app))


async def test_help_lists_every_binding():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        from rich.console import Console

        from gendiff.tui.screens.help import HelpScreen, bindings_table
        from gendiff.tui.screens.main import MainScreen

        assert isinstance(app.screen, HelpScreen)
        console = Console(width=120, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
        console.print(bindings_table(app.screen.groups))
        text = console.export_text()
        assert "ctrl+↑" in text and "ctrl+s" in text and "question_mark" not in text
        for binding in [*MainScreen.BINDINGS, *app.BINDINGS]:
            assert binding.description in text


async def test_settings_change_engines_and_dtype():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await pilot.pause()
        from textual.widgets import Select, SelectionList

        app.screen.query_one("#set-engines", SelectionList).deselect("packed")
        app.screen.query_one("#set-dtype", Select).value = "bfloat16"
        app.screen.query_one("#set-max-new-tokens").value = "7"
        await pilot.press("ctrl+s")
        await pilot.pause()
        options = app.main.options
        assert options.dtype == "bfloat16" and options.max_new_tokens == 7
        await wait_until(pilot, lambda: len(app.main.query(TokenColumn)) == 3, 5)
        assert [c.label for c in app.main.query(TokenColumn)] == ["hf-single", "hf-left", "hf-right"]
        assert app.main.ws.labels == ["hf-single", "hf-left", "hf-right"]


@pytest.mark.slow  # the demo_snapshot fixture runs the model
async def test_snapshot_opens_without_a_model(tmp_path, demo_snapshot):
    app = app_for(demo_snapshot)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.main.snapshot is not None
        assert "new" not in marks(app)
        await pilot.press("n")
        assert "diverges from" in app.main.query_one("#panel").border_title
        await pilot.press("r")  # read-only: the run keys are hidden and do nothing
        await pilot.pause()
        assert not app.main.ws.running and not app.main.check_action("run", (False,))


@pytest.mark.slow
async def test_b_bisects_the_selected_divergence_and_shows_the_layer_chart(tmp_path):
    app = app_for(dtype="bfloat16", engines=("hf-single", "hf-left"))
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        await pilot.press("b")  # nothing run yet: a hint, no crash
        assert any("nothing to bisect" in m for m in notifications(app))
        await pilot.press("R")
        await wait_until(pilot, lambda: not running(app))
        await pilot.press("n")
        d = main.ws.divergence(main.workbench.current, "hf-left")
        assert d.reason == "token" and d.bisection is None
        assert "b bisects" in app.main.query_one("#panel").border_title
        await pilot.press("b")
        from gendiff.tui.screens.diagnosis import DiagnosisScreen

        assert isinstance(app.screen, DiagnosisScreen)
        await wait_until(
            pilot, lambda: main.ws.divergence(main.workbench.current, "hf-left").bisection is not None, 120
        )
        await pilot.pause(0.2)
        done = main.ws.divergence(main.workbench.current, "hf-left")
        assert done.reconvergence is not None and done.bisection.reproduced
        body = plain(app.screen.query_one("#diagnosis-body"))
        assert "First divergent module" in body and done.bisection.first_bitwise.name in body
        assert "per layer" in body and "█" in body
        await pilot.press("escape")
        assert not isinstance(app.screen, DiagnosisScreen)
        assert "bisection: first differs at" in plain(app.main.query_one("#panel"))
        await pilot.press("b")  # again: opens at once, no recomputation
        assert isinstance(app.screen, DiagnosisScreen) and not app.screen.query_one("#diagnosis-loading").display
        await pilot.press("escape")
        target = tmp_path / "diag.json"
        save_snapshot(main.ws.to_snapshot(), target)
        assert any(x.bisection is not None for x in load_snapshot(target).divergences())


@pytest.mark.slow
async def test_two_snapshots_open_side_by_side(tmp_path, demo_snapshot):
    from gendiff.cli.main import main as cli

    float32 = tmp_path / "f32.json"
    assert cli(["run", "--quiet", "--max-new-tokens", "24", "--json", str(float32)]) == 0
    app = app_for(float32, demo_snapshot)
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        assert main.comparing
        labels = [c.label for c in app.main.query(TokenColumn)]
        assert labels[:4] == ["hf-single@A", "hf-single@B", "hf-left@A", "hf-left@B"]
        assert main.workbench.compared_labels == [label for label in labels if label.endswith("@B")]
        await pilot.press("n")
        d = main.ws.divergence(main.workbench.current, main.workbench.selected_engine)
        assert d.diverged and d.reference == main.workbench.selected_engine.replace("@B", "@A")
        assert f"diverges from {d.reference}" in app.main.query_one("#panel").border_title
        marked = {
            c.label for c in app.main.query(TokenColumn) if any("underline" in str(s.style) for s in c.render().spans)
        }
        assert {d.reference, d.engine} <= marked
        await pilot.press("tab")
        assert main.workbench.selected_engine.endswith("@B")
        await pilot.press("b")  # two machines' runs can't be replayed here: b is hidden and does nothing
        await pilot.pause()
        assert app.screen is main and not main.check_action("bisect", ())

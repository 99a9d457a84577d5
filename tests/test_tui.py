"""The TUI, driven with Textual's Pilot on the real demo model."""

import json

import pytest

from gendiff.snapshot import Snapshot, validate
from gendiff.tui.app import GendiffApp, LaunchOptions
from gendiff.tui.widgets.token_column import TokenColumn

SIZE = (150, 42)


async def wait_until(pilot, condition, timeout=180.0):
    waited = 0.0
    while not condition():
        await pilot.pause(0.1)
        waited += 0.1
        assert waited < timeout, "timed out waiting"


def app_for(path=None, **options):
    options.setdefault("preload", False)
    options.setdefault("max_new_tokens", 24)
    return GendiffApp(LaunchOptions(path=str(path) if path else None, **options))


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


@pytest.mark.slow
async def test_run_all_in_bfloat16_marks_divergences_and_n_moves_to_them(tmp_path):
    app = app_for(dtype="bfloat16")
    async with app.run_test(size=SIZE) as pilot:
        assert len(app.entries) == 16  # the demo prompts
        await pilot.press("R")
        assert app.running
        await wait_until(pilot, lambda: not app.running)
        diverged = [i for i, e in enumerate(app.entries) if e.status[0] == "diverged"]
        assert diverged, [e.status for e in app.entries]
        await pilot.press("n")
        assert app.current_index in diverged
        entry = app.current
        assert app.selected_engine in entry.diverged_engines
        d = entry.result.divergence_for(app.selected_engine)
        assert d.diverged and d.step is not None
        panel = app.query_one("#panel")
        assert f"diverges from hf-single at step {d.step}" in panel.border_title
        # the divergent token is marked in the engine's column: its text renders with the diverge style
        column = next(c for c in app.query(TokenColumn) if c.label == app.selected_engine)
        rendered = column.render()
        marked = [span for span in rendered.spans if "underline" in str(span.style)]
        assert marked, "no marked token"
        # n again walks on (wrapping), p walks back
        first = (app.current_index, app.selected_engine)
        await pilot.press("n")
        await pilot.press("p")
        assert (app.current_index, app.selected_engine) == first
        # tab cycles engines
        before = app.selected_engine
        await pilot.press("tab")
        assert app.selected_engine != before
        # export and validate
        target = tmp_path / "export.json"
        await pilot.press("x")
        await pilot.pause()
        field = app.screen.query_one("#export-path")
        field.value = str(target)
        await pilot.press("enter")
        await pilot.pause()
        data = json.loads(target.read_text())
        validate(data, "export")
        assert len(data["prompts"]) == 16
        assert any(f"snapshot written to {target}" in m for m in notifications(app))
        snapshot = Snapshot.load(target)
        assert snapshot.model["dtype"] == "bfloat16"
        assert len(snapshot.divergences()) == sum(len(e.diverged_engines) for e in app.entries)


@pytest.mark.slow
async def test_run_selected_prompt_streams_into_columns(tmp_path):
    app = app_for(
        prompt_file(tmp_path, "The capital of France is", "How to make tea:\n-"), engines=("hf-single", "hf-left")
    )
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down", "r")
        await wait_until(pilot, lambda: not app.running)
        assert app.entries[0].result is None
        result = app.entries[1].result
        assert result is not None and set(result.traces) == {"hf-single", "hf-left"}
        column = app.query(TokenColumn).first()
        assert "Boil" in str(column.render())
        assert "␣" in str(column.render())  # whitespace visible
        assert " tok " in column.border_subtitle and column.border_title == "hf-single (ref)"


async def test_edit_add_delete_reorder_are_saved_atomically(tmp_path):
    file = prompt_file(tmp_path, "first prompt", "second prompt")
    app = app_for(file)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        await pilot.pause()
        area = app.screen.query_one("#editor-text")
        area.text = "first prompt, edited\nwith a second line"
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
        # cancel keeps the text
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
async def test_escape_cancels_a_run_and_keys_still_respond(tmp_path):
    app = app_for(
        prompt_file(tmp_path, *["Once upon a time, there was a"] * 6),
        max_new_tokens=400,
        stop_at_eos=False,
        engines=("hf-single", "hf-left"),
    )
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("R")
        await wait_until(pilot, lambda: any(e.live for e in app.entries))
        await pilot.press("down")  # navigation works mid-run
        assert app.current_index == 1
        await pilot.press("escape")
        await wait_until(pilot, lambda: not app.running, timeout=60)
        assert "run cancelled" in notifications(app)
        traces = [t for e in app.entries if e.result for t in e.result.traces.values()]
        assert traces and any(t.finish_reason == "cancelled" for t in traces)
        assert any(len(t.steps) < 400 for t in traces)


async def test_theme_switch_is_remembered(isolated_config):
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        assert app.theme == "gendiff-dark"
        await pilot.press("t")
        assert app.theme == "gendiff-light"
        assert "gendiff-light" in app.available_themes
        assert json.loads((isolated_config / "config.json").read_text())["theme"] == "gendiff-light"
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        assert app.theme == "gendiff-light"
    app = app_for(theme="gendiff-contrast")
    async with app.run_test(size=SIZE) as pilot:
        assert app.theme == "gendiff-contrast"


async def test_bad_prompt_file_notifies_and_app_stays_up(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{oops\n')
    app = app_for(bad)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert any("bad.jsonl:2: not valid JSON" in m for m in notifications(app))
        assert len(app.entries) == 16  # fell back to the demo prompts
        assert bad.read_text() == '{"prompt": "ok"}\n{oops\n'  # the user's file is untouched


async def test_bad_model_path_notifies_on_run(tmp_path):
    app = app_for(prompt_file(tmp_path, "hello"), model=str(tmp_path / "no-model"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_until(pilot, lambda: not app.running, timeout=60)
        assert any("no such directory" in m for m in notifications(app))
        await pilot.press("a")  # still alive
        await pilot.pause()
        assert app.screen.query("#editor-text")


@pytest.mark.slow
async def test_unwritable_export_path_notifies(tmp_path):
    app = app_for(prompt_file(tmp_path, "The capital of France is"), engines=("hf-single", "hf-left"), max_new_tokens=4)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_until(pilot, lambda: not app.running)
        await pilot.press("x")
        await pilot.pause()
        app.screen.query_one("#export-path").value = str(tmp_path / "missing" / "s.json")
        await pilot.press("enter")
        await pilot.pause()
        assert any("does not exist" in m for m in notifications(app))


async def test_export_before_any_run_says_so():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("x")
        assert any("nothing to export yet" in m for m in notifications(app))


async def test_terminal_too_small_shows_a_message():
    app = app_for()
    async with app.run_test(size=(50, 12)) as pilot:
        await pilot.pause()
        assert app.query_one("#too-small").display
        assert not app.query_one("#main").display


async def test_help_lists_every_binding():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        from rich.console import Console

        from gendiff.tui.screens.help import HelpScreen, bindings_table

        assert isinstance(app.screen, HelpScreen)
        console = Console(width=120, record=True, file=open("/dev/null", "w"))
        console.print(bindings_table(app.screen.groups))
        text = console.export_text()
        assert "ctrl+↑" in text and "ctrl+s" in text and "question_mark" not in text
        for binding in app.BINDINGS:
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
        assert app.settings.dtype == "bfloat16" and app.settings.max_new_tokens == 7
        assert [c.label for c in app.query(TokenColumn)] == ["hf-single", "hf-left", "hf-right"]


async def test_snapshot_opens_without_a_model(tmp_path, demo_snapshot):
    app = app_for(demo_snapshot)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.snapshot_mode is not None
        assert all(e.result is not None for e in app.entries)
        await pilot.press("n")
        assert "diverges from" in app.query_one("#panel").border_title
        await pilot.press("r")
        assert any("saved snapshot" in m for m in notifications(app))


@pytest.mark.slow
async def test_b_bisects_the_selected_divergence_and_shows_the_layer_chart(tmp_path):
    app = app_for(dtype="bfloat16", engines=("hf-single", "hf-left"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")  # nothing run yet: a hint, no crash
        assert any("nothing to bisect" in m for m in notifications(app))
        await pilot.press("R")
        await wait_until(pilot, lambda: not app.running)
        await pilot.press("n")
        d = app.current.result.divergence_for("hf-left")
        assert d.reason == "token" and d.bisection is None
        assert "b bisects" in app.query_one("#panel").border_title
        await pilot.press("b")
        from gendiff.tui.screens.diagnosis import DiagnosisScreen

        assert isinstance(app.screen, DiagnosisScreen)
        await wait_until(pilot, lambda: app.current.result.divergence_for("hf-left").bisection is not None, 120)
        await pilot.pause(0.2)
        done = app.current.result.divergence_for("hf-left")
        assert done.reconvergence is not None and done.bisection.reproduced
        body = plain(app.screen.query_one("#diagnosis-body"))
        assert "First divergent module" in body and done.bisection.first_bitwise.name in body
        assert "per layer" in body and "█" in body  # the chart
        assert done.reconvergence.verdict.upper() in body
        await pilot.press("escape")
        assert not isinstance(app.screen, DiagnosisScreen)
        panel_text = plain(app.query_one("#panel"))
        assert "bisection: first differs at" in panel_text
        # b again opens at once (no recomputation), and export carries the records
        await pilot.press("b")
        assert isinstance(app.screen, DiagnosisScreen) and not app.screen.query_one("#diagnosis-loading").display
        await pilot.press("escape")
        snapshot = app.current_snapshot()
        target = tmp_path / "diag.json"
        snapshot.save(target)
        saved = Snapshot.load(target)
        assert any(x.bisection is not None for x in saved.divergences())


@pytest.mark.slow
async def test_two_snapshots_open_side_by_side(tmp_path, demo_snapshot):
    from gendiff.cli import main

    float32 = tmp_path / "f32.json"
    assert main(["run", "--quiet", "--max-new-tokens", "24", "--json", str(float32)]) == 0
    app = GendiffApp(LaunchOptions(path=str(float32), compare_with=str(demo_snapshot), preload=False))
    async with app.run_test(size=SIZE) as pilot:
        assert app.comparing
        labels = [c.label for c in app.query(TokenColumn)]
        assert labels[:4] == ["hf-single@A", "hf-single@B", "hf-left@A", "hf-left@B"]
        assert app.compared_labels == [label for label in labels if label.endswith("@B")]
        await pilot.press("n")
        d = app.current.result.divergence_for(app.selected_engine)
        assert d.diverged and d.reference == app.selected_engine.replace("@B", "@A")
        assert f"diverges from {d.reference}" in app.query_one("#panel").border_title
        # both sides of the pair are marked; tab stays on B columns
        marked = {c.label for c in app.query(TokenColumn) if any("underline" in str(s.style) for s in c.render().spans)}
        assert {d.reference, d.engine} <= marked
        await pilot.press("tab")
        assert app.selected_engine.endswith("@B")
        await pilot.press("b")  # can't replay a comparison: says so
        assert any("can't be replayed" in m for m in notifications(app))


async def test_two_snapshots_of_other_prompts_are_refused(tmp_path, demo_snapshot):
    other = json.loads(demo_snapshot.read_text())
    other["prompts"] = other["prompts"][:3]
    file = tmp_path / "other.json"
    file.write_text(json.dumps(other))
    app = GendiffApp(LaunchOptions(path=str(demo_snapshot), compare_with=str(file), preload=False))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert any("compare needs the same prompts" in m for m in notifications(app))
        assert not app.comparing

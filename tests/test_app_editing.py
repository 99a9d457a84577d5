"""One Pilot (or subprocess) test per reported app problem: the TUI items of the app-truth and
bad-input issues. Fast unless a model runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_snapshots import hand_made_snapshot
from test_tui import SIZE, app_for, marks, notifications, prompt_file, running, wait_until

from gendiff.errors import GendiffError
from gendiff.io.snapshots import load_snapshot, save_snapshot
from gendiff.tui.screens.choice import Choice
from gendiff.tui.screens.confirm import Confirm
from gendiff.tui.screens.editor import PromptEditor
from gendiff.tui.screens.export import ExportDialog

REPO = Path(__file__).parent.parent


def gendiff(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "gendiff", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )


# ── the app's own checks (fast) ────────────────────────────────────────────
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


async def test_export_dialog_stays_open_on_a_bad_path_with_what_was_typed(tmp_path):
    app = app_for(hand_made_snapshot(tmp_path / "snap.json"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("x")
        await pilot.pause()
        bad = str(tmp_path / "missing" / "out.json")
        app.screen.query_one("#export-path").value = bad
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ExportDialog)
        assert app.screen.query_one("#export-path").value == bad
        assert "does not exist" in str(app.screen.query_one("#export-error").content)
        app.screen.query_one("#export-path").value = str(tmp_path / "out.json")
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, ExportDialog)
        assert load_snapshot(tmp_path / "out.json").prompts


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


async def test_ctrl_c_in_the_editor_asks_before_dropping_the_draft(tmp_path):
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
        assert isinstance(app.screen, PromptEditor)
        assert app.screen.query_one("#editor-text").text == "hey"


def test_app_with_an_empty_engine_list_is_one_error_line():
    result = gendiff("--engines", ",")
    assert result.returncode == 2
    assert result.stderr.startswith("gendiff: error: --engines ','") and "Traceback" not in result.stderr


# ── files recognised by content ────────────────────────────────────────────
def test_snapshot_with_sorted_keys_opens_as_a_snapshot(tmp_path):
    from gendiff.io.documents import open_document

    file = hand_made_snapshot(tmp_path / "snap.json")
    data = json.loads(file.read_text())
    sorted_file = tmp_path / "sorted.json"
    sorted_file.write_text(json.dumps(data, sort_keys=True, indent=2))  # as jq -S writes it
    assert open_document(str(sorted_file)).snapshot is not None


def test_v1_snapshot_made_by_the_previous_version_still_opens():
    """tests/data/snapshot-v1.json was written by gendiff before schema /2."""
    file = REPO / "tests" / "data" / "snapshot-v1.json"
    assert json.loads(file.read_text())["schema"] == "gendiff.snapshot/1"
    snapshot = load_snapshot(file)
    assert [p.id for p in snapshot.prompts] == [0, 1]
    assert snapshot.replay_case(snapshot.prompts[1], "hf-left") == ([[1, 2, 3], [1, 5]], 1)


async def test_v1_snapshot_opens_in_the_app_with_its_marks():
    app = app_for(REPO / "tests" / "data" / "snapshot-v1.json")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert marks(app) == ["diverged", "diverged"]


def test_snapshot_of_an_unknown_version_says_so(tmp_path):
    from gendiff.io.documents import open_document

    data = json.loads(hand_made_snapshot(tmp_path / "snap.json").read_text())
    data["schema"] = "gendiff.snapshot/3"
    file = tmp_path / "future.json"
    file.write_text(json.dumps(data))
    with pytest.raises(GendiffError, match="schema gendiff.snapshot/3 is a version this gendiff can't read"):
        open_document(str(file))


def test_missing_file_is_an_error_not_an_empty_list(tmp_path):
    result = gendiff(str(tmp_path / "missing.json"))
    assert result.returncode == 2 and "missing.json: no such file" in result.stderr


def test_two_snapshots_with_different_prompt_counts_are_an_error_at_launch(tmp_path):
    a = hand_made_snapshot(tmp_path / "a.json")
    data = json.loads(a.read_text())
    data["prompts"] = data["prompts"][:1]
    b = tmp_path / "b.json"
    b.write_text(json.dumps(data))
    result = gendiff(str(a), str(b))
    assert result.returncode == 2
    assert "gendiff: error: a.json has 2 prompts but b.json has 1" in result.stderr


# ── the prompt file changed by another program ─────────────────────────────
async def edit_first_prompt(app, pilot, text):
    await pilot.press("e")
    await pilot.pause()
    app.screen.query_one("#editor-text").text = text
    await pilot.press("ctrl+s")
    await pilot.pause()


@pytest.mark.parametrize("answer", ["k", "r", "s"])
async def test_external_edit_is_noticed_and_the_user_chooses(tmp_path, answer, monkeypatch):
    from gendiff.tui.screens.main import MainScreen

    # the 2 s timer's check is held back (it could fire at any point under load): the save after
    # the in-app edit must notice the change by itself; the real check is then called directly
    periodic_check = MainScreen.check_book_on_disk
    monkeypatch.setattr(MainScreen, "check_book_on_disk", lambda self: None)
    file = prompt_file(tmp_path, "first", "second")
    app = app_for(file)
    async with app.run_test(size=SIZE) as pilot:
        file.write_text("theirs\n")
        await edit_first_prompt(app, pilot, "mine")
        assert isinstance(app.screen, Choice), app.screen  # asked by the save itself
        periodic_check(app.main)  # the timer's check now: already asked, so it must not ask again
        await pilot.pause()
        assert sum(isinstance(screen, Choice) for screen in app.screen_stack) == 1
        assert file.read_text() == "theirs\n"  # nothing overwritten before the user chose
        await pilot.press(answer)
        await pilot.pause()
        if answer == "k":
            assert file.read_text() == "mine\nsecond\n"
        elif answer == "r":
            assert [p.text for p in app.main.ws.prompts] == ["theirs"] and file.read_text() == "theirs\n"
        else:
            assert isinstance(app.screen, ExportDialog)
            await pilot.press("enter")
            await pilot.pause()
            assert file.read_text() == "theirs\n"
            assert (tmp_path / "prompts-mine.txt").read_text() == "mine\nsecond\n"
            assert app.main.prompt_file.book.path == tmp_path / "prompts-mine.txt"


async def test_external_edit_is_noticed_without_an_edit_in_the_app(tmp_path):
    file = prompt_file(tmp_path, "first")
    app = app_for(file)
    async with app.run_test(size=SIZE) as pilot:
        file.write_text("theirs\n")
        await wait_until(pilot, lambda: isinstance(app.screen, Choice), 5)
        await pilot.press("r")
        await pilot.pause()
        assert [p.text for p in app.main.ws.prompts] == ["theirs"]


# ── with the demo model (slow) ─────────────────────────────────────────────
@pytest.mark.slow
async def test_a_too_long_prompt_gets_its_own_error_and_the_others_run(tmp_path):
    long = "word " * 600  # beyond the demo model's 512-token context
    app = app_for(
        prompt_file(tmp_path, "The capital of France is", long, "Once upon a time"),
        engines=("hf-single", "hf-left"),
        max_new_tokens=6,
    )
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")  # prompt 1 alone first: its result must survive the next run
        await wait_until(pilot, lambda: not running(app))
        first = app.main.ws.prompts[0].cells["hf-single"].trace
        await pilot.press("R")
        await wait_until(pilot, lambda: not running(app))
        assert marks(app)[1] == "error" and marks(app)[0] != "error" and marks(app)[2] != "error"
        assert all(
            c.state == "finished" for p in (app.main.ws.prompts[0], app.main.ws.prompts[2]) for c in p.cells.values()
        )
        error = app.main.ws.prompts[1].error
        assert "too long" in error and "--" not in error
        said = [m for m in notifications(app) if "can't run" in m]
        assert said and said[0].startswith("prompt 2 can't run") and "--max-new-tokens" not in said[0]
        assert app.main.ws.prompts[0].cells["hf-single"].trace.token_ids == first.token_ids


@pytest.mark.slow
async def test_r_reruns_a_prompt_in_the_batch_it_ran_in(tmp_path):
    app = app_for(dtype="bfloat16", engines=("hf-single", "hf-left"))
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        await pilot.press("R")
        await wait_until(pilot, lambda: not running(app))
        await pilot.press("n")
        before = main.ws.divergence(main.workbench.current, "hf-left")
        assert before.diverged
        await pilot.press("r")
        await wait_until(pilot, lambda: not running(app))
        after = main.ws.divergence(main.workbench.current, "hf-left")
        assert after.diverged and after.step == before.step  # the batch effect is still there
        assert "batch of 16" in main.query_one("#panel").border_title
        left = next(c for c in main.query("TokenColumn") if c.label == "hf-left")
        assert f"row {(main.workbench.current_number - 1) + 1}/16" in left.border_subtitle


@pytest.mark.slow
async def test_two_single_runs_export_reopen_and_b_replays_the_right_prompt(tmp_path):
    """Prompt 2 (run alone with r, like prompt 1) is replayed as itself after export and reopen."""
    file = prompt_file(tmp_path, "The capital of France is", "Once upon a time, there was a")
    app = app_for(file, dtype="bfloat16", engines=("hf-single", "hf-single:dtype=float32"), max_new_tokens=16)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_until(pilot, lambda: not running(app))
        await pilot.press("down", "r")
        await wait_until(pilot, lambda: not running(app))
        target = tmp_path / "export.json"
        save_snapshot(app.main.ws.to_snapshot(), target)
    snapshot = load_snapshot(target)
    assert [p.id for p in snapshot.prompts] == [0, 1]
    for prompt in snapshot.prompts:
        batch, row = snapshot.replay_case(prompt, "hf-single")
        assert batch == [prompt.token_ids] and row == 0
    app = app_for(target)
    async with app.run_test(size=SIZE) as pilot:
        assert marks(app)[1] in ("diverged", "identical")
        await pilot.press("down")
        d = app.main.ws.divergence(app.main.workbench.current, "hf-single:dtype=float32")
        if d is not None and d.reason == "token":
            await pilot.press("b")
            await wait_until(
                pilot, lambda: app.main.ws.divergence(app.main.workbench.current, d.engine).bisection is not None, 120
            )
            done = app.main.ws.divergence(app.main.workbench.current, d.engine)
            assert done.bisection.reproduced and done.bisection.prompt_index == 1


@pytest.mark.slow
async def test_closing_the_diagnosis_view_early_is_quiet(tmp_path):
    from gendiff.tui.screens.diagnosis import DiagnosisScreen

    app = app_for(dtype="bfloat16", engines=("hf-single", "hf-left"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("R")
        await wait_until(pilot, lambda: not running(app))
        await pilot.press("n", "b")
        assert isinstance(app.screen, DiagnosisScreen)
        await pilot.press("escape")
        await wait_until(
            pilot, lambda: app.main.ws.divergence(app.main.workbench.current, "hf-left").bisection is not None, 120
        )
        await pilot.pause(0.3)
        assert not any("No nodes match" in m or "failed" in m for m in notifications(app))
        await pilot.press("b")  # the result was kept: opens at once
        assert not app.screen.query_one("#diagnosis-loading").display


@pytest.mark.slow
def test_r_right_after_start_does_not_race_the_preload(tmp_path):
    """A fresh process: preload and the first run both need transformers; neither may see it half-imported."""
    script = f"""
import asyncio, sys
sys.path.insert(0, {str(REPO / "tests")!r})
from test_tui import app_for, running, notifications, prompt_file
from pathlib import Path
async def main():
    app = app_for(prompt_file(Path({str(tmp_path)!r}), "The capital of France is"), preload=True, engines=("hf-single",), max_new_tokens=4)
    async with app.run_test(size=(150, 42)) as pilot:
        await pilot.press("r")
        for _ in range(900):
            await pilot.pause(0.1)
            if not running(app):
                break
        print("MARKS", [app.main.ws.mark(p)[0] for p in app.main.ws.prompts])
        print("NOTES", notifications(app))
asyncio.run(main())
"""
    env = dict(os.environ, PYTHONPATH=str(REPO), GENDIFF_CONFIG_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert "MARKS ['identical']" in result.stdout, result.stdout + result.stderr
    assert "ImportError" not in result.stdout

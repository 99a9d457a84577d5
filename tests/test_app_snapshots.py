"""Saved results in the app: opening a snapshot (read-only: nothing runs or edits, the keys that
can't apply are hidden), two snapshots side by side, files recognised by their content and old or
unknown versions, and exporting what the app shows (x), with a bad path kept in the dialog."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from app_helpers import SIZE, app_for, column, hand_made_snapshot, marks, notifications, wait_until
from textual.widgets._footer import FooterKey

from gendiff.errors import GendiffError
from gendiff.io.documents import open_document
from gendiff.io.snapshots import load_snapshot
from gendiff.tui.screens.export import ExportDialog
from gendiff.tui.widgets.token_column import TokenColumn

REPO = Path(__file__).parent.parent


def gendiff(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "gendiff", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )


def footer_keys(app):
    """The keys the footer shows now."""
    return {key.key for key in app.screen.query(FooterKey)}


# ── viewing ────────────────────────────────────────────────────────────────
async def test_a_snapshot_is_read_only_and_its_keys_that_cannot_apply_are_hidden(tmp_path):
    file = hand_made_snapshot(tmp_path / "a.json")
    saved = file.read_text()
    app = app_for(file)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        main = app.main
        assert marks(app) == ["diverged", "diverged"]  # what the file records, no model needed
        shown = footer_keys(app)
        assert not shown & {"r", "R", "a", "e", "d", "escape", "s"}, shown  # read-only: nothing runs or edits
        assert {"n", "b", "x"} <= shown
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Add a prompt" not in titles and "Run all prompts" not in titles and "Settings" not in titles
        assert "Export a snapshot" in titles
        await pilot.press("r", "R", "a", "e", "d", "s", "enter")
        await pilot.pause()
        assert app.screen is main and main.ws.run is None  # no dialog, no run
        assert [p.text for p in main.ws.prompts] == ["The capital of France is", "Shopping list:\n1."]
        assert file.read_text() == saved
    (tmp_path / "prompts.txt").write_text("first\n")
    app = app_for(tmp_path / "prompts.txt")  # a prompt file, for contrast: all of them apply
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        assert {"r", "R", "b", "x"} <= footer_keys(app)


async def test_the_compare_view_hides_the_keys_that_replay_a_run(tmp_path):
    a, b = hand_made_snapshot(tmp_path / "a.json"), hand_made_snapshot(tmp_path / "b.json")
    app = app_for(a, b)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("n")
        await pilot.pause()
        main = app.main
        assert main.comparing and main.ws.divergence(main.workbench.current, main.workbench.selected_engine)
        shown = footer_keys(app)
        assert "b" not in shown and "f" not in shown, shown  # two machines' runs can't be replayed here
        assert {"n", "o"} <= shown
        await pilot.press("b", "f")
        await pilot.pause()
        assert app.screen is main and main.ws.recheck is None


async def test_v1_snapshot_opens_in_the_app_with_its_marks():
    app = app_for(REPO / "tests" / "data" / "snapshot-v1.json")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert marks(app) == ["diverged", "diverged"]


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
        assert not app.main.ws.running and app.main.ws.run is None
        assert app.main.workbench.prompt_list.check_action("run_selected", ()) is False
        assert app.main.check_action("run_all", ()) is False


@pytest.mark.slow
async def test_two_snapshots_open_side_by_side(tmp_path, demo_snapshot):
    from gendiff.cli.main import main as cli

    float32 = tmp_path / "f32.json"
    assert cli(["run", "--quiet", "--max-new-tokens", "24", "--json", str(float32)]) == 0
    app = app_for(float32, demo_snapshot)
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        assert main.comparing
        labels = [c.label for c in main.workbench.columns.in_order()]  # shown or not (150 columns: two shown)
        assert labels[:4] == ["hf-single@A", "hf-single@B", "hf-left@A", "hf-left@B"]
        assert main.workbench.compared_labels == [label for label in labels if label.endswith("@B")]
        await pilot.press("n")
        d = main.ws.divergence(main.workbench.current, main.workbench.selected_engine)
        assert d.diverged and d.reference == main.workbench.selected_engine.replace("@B", "@A")
        assert f"diverges from {d.reference}" in main.query_one("#panel").border_title
        marked = {
            c.label for c in main.query(TokenColumn) if any("underline" in str(s.style) for s in c.render().spans)
        }
        assert {d.reference, d.engine} <= marked
        assert column(main, d.engine).display and column(main, d.reference).display
        await pilot.press("tab")
        assert main.workbench.selected_engine.endswith("@B")
        await pilot.press("b")  # two machines' runs can't be replayed here: b is hidden and does nothing
        await pilot.pause()
        assert app.screen is main and not main.workbench.check_action("bisect", ())


# ── files recognised by content ────────────────────────────────────────────
def test_snapshot_with_sorted_keys_opens_as_a_snapshot(tmp_path):
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


def test_snapshot_of_an_unknown_version_says_so(tmp_path):
    data = json.loads(hand_made_snapshot(tmp_path / "snap.json").read_text())
    data["schema"] = "gendiff.snapshot/9"  # a future version (/3 is the .gdz format's)
    file = tmp_path / "future.json"
    file.write_text(json.dumps(data))
    with pytest.raises(GendiffError, match="schema gendiff.snapshot/9 is a version this gendiff can't read"):
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


def test_app_with_an_empty_engine_list_is_one_error_line():
    result = gendiff("--engines", ",")
    assert result.returncode == 2
    assert result.stderr.startswith("gendiff: error: --engines ','") and "Traceback" not in result.stderr


# ── export ─────────────────────────────────────────────────────────────────
async def test_export_before_any_run_says_so(tmp_path):
    (tmp_path / "prompts.txt").write_text("first\n")
    app = app_for(tmp_path / "prompts.txt")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("x")
        await pilot.pause()
        assert any("nothing to export yet" in m for m in notifications(app))
        assert not isinstance(app.screen, ExportDialog)


async def test_export_offers_a_gdz_name_says_how_names_choose_the_format_and_writes_it(tmp_path, monkeypatch):
    original = load_snapshot(hand_made_snapshot(tmp_path / "snap.json"))
    monkeypatch.chdir(tmp_path)
    app = app_for(tmp_path / "snap.json")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("x")
        await pilot.pause()
        offered = app.screen.query_one("#export-path").value
        assert offered.startswith("gendiff-") and offered.endswith(".gdz")
        formats = str(app.screen.query_one("#export-formats").content)
        assert ".gdz" in formats and "JSON" in formats
        await pilot.press("enter")
        await wait_until(pilot, lambda: not isinstance(app.screen, ExportDialog), 10)
    written = tmp_path / offered
    assert written.read_bytes()[:2] == b"PK"  # a zip container, not JSON text
    reopened = load_snapshot(written)
    assert [p.text for p in reopened.prompts] == [p.text for p in original.prompts]


async def test_export_dialog_stays_open_on_a_bad_path_with_what_was_typed(tmp_path):
    original = load_snapshot(hand_made_snapshot(tmp_path / "snap.json"))
    app = app_for(tmp_path / "snap.json")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("x")
        await pilot.pause()
        bad = str(tmp_path / "missing" / "out.json")
        app.screen.query_one("#export-path").value = bad
        await pilot.press("enter")
        error = app.screen.query_one("#export-error")
        await wait_until(pilot, lambda: "does not exist" in str(error.content), 10)
        assert isinstance(app.screen, ExportDialog)
        assert app.screen.query_one("#export-path").value == bad
        app.screen.query_one("#export-path").value = str(tmp_path / "out.json")
        await pilot.press("enter")
        await wait_until(pilot, lambda: not isinstance(app.screen, ExportDialog), 10)
        assert any(f"snapshot written to {tmp_path / 'out.json'}" in m for m in notifications(app))
    written = load_snapshot(tmp_path / "out.json")
    assert [p.text for p in written.prompts] == [p.text for p in original.prompts]
    for mine, theirs in zip(written.prompts, original.prompts):
        assert {label: t.token_ids for label, t in mine.traces.items()} == {
            label: t.token_ids for label, t in theirs.traces.items()
        }
        assert [d.to_dict() for d in mine.divergences] == [d.to_dict() for d in theirs.divergences]

"""Screenshots (pytest-textual-snapshot) of the app's screens: the main screen in every theme,
the panel after n, the help, the prompt editor, the diagnosis view while it computes, the step
explorer, settings and the compare view, at 80×24, 130×40 and 160×50.
Update with --snapshot-update and read the new SVGs (they are text) before accepting."""

from __future__ import annotations

import json

import pytest
from app_helpers import app_for, hand_made_snapshot, prompt_file, settled

from gendiff.io.documents import open_document
from gendiff.run.options import RunOptions
from gendiff.themes import THEMES
from gendiff.tui.app import GendiffApp, LaunchOptions
from gendiff.tui.screens.diagnosis import DiagnosisScreen

SIZES = {"80x24": (80, 24), "160x50": (160, 50)}
SIZE = (130, 40)


def pressed(*keys: str):
    """``run_before`` for snap_compare: press ``keys``, then wait until the panel and the prompt's
    text have taken the rows what they show needs (they hold their rows while keys come fast)."""

    async def run_before(pilot) -> None:
        await pilot.press(*keys)
        await settled(pilot)

    return run_before


def viewer(tmp_path, theme: str | None = None) -> GendiffApp:
    return app_for(hand_made_snapshot(tmp_path / "snap.json"), theme=theme)


@pytest.mark.parametrize("theme", [t.name for t in THEMES])
def test_main_screen_in_each_theme(snap_compare, tmp_path, theme):
    assert snap_compare(viewer(tmp_path, theme), terminal_size=SIZES["160x50"])


@pytest.mark.parametrize("size", SIZES)
def test_main_screen_and_panel(snap_compare, tmp_path, size):
    assert snap_compare(viewer(tmp_path), terminal_size=SIZES[size])


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare, tmp_path, size):
    assert snap_compare(viewer(tmp_path), press=["question_mark"], terminal_size=SIZES[size])


@pytest.mark.parametrize("size", SIZES)
def test_diagnosis_view_while_computing(snap_compare, tmp_path, size):
    async def open_diagnosis(pilot):
        pilot.app.animation_level = "none"  # a still spinner
        screen = DiagnosisScreen("diagnosis · prompt 1 · hf-left vs hf-single at step 3", None, cancellable=True)
        await pilot.app.push_screen(screen)
        screen.set_stage("replaying hf-left to step 3 with hooks on every module…")
        await pilot.pause()

    assert snap_compare(viewer(tmp_path), run_before=open_diagnosis, terminal_size=SIZES[size])


@pytest.mark.parametrize("size", SIZES)
def test_step_explorer_before_the_divergence(snap_compare, tmp_path, size):
    # prompt 1 diverges at step 3; ← puts the cursor on step 2, where every engine still agrees
    assert snap_compare(viewer(tmp_path), run_before=pressed("left"), terminal_size=SIZES[size])


@pytest.mark.parametrize("size", SIZES)
def test_settings(snap_compare, tmp_path, size):
    app = app_for(prompt_file(tmp_path, "The capital of France is"))
    assert snap_compare(app, press=["s"], terminal_size=SIZES[size])


@pytest.mark.parametrize("size", SIZES)
def test_compare_view(snap_compare, tmp_path, size):
    a = hand_made_snapshot(tmp_path / "a.json")
    data = json.loads(a.read_text())
    data["model"]["dtype"] = "float32"
    b = tmp_path / "b.json"
    b.write_text(json.dumps(data))
    assert snap_compare(app_for(a, b), terminal_size=SIZES[size])


def test_main_screen(snap_compare, tmp_path):
    assert snap_compare(viewer(tmp_path), terminal_size=SIZE)


def test_divergence_panel_after_n(snap_compare, tmp_path):
    assert snap_compare(viewer(tmp_path), run_before=pressed("n"), terminal_size=SIZE)


def test_help_screen(snap_compare, tmp_path):
    assert snap_compare(viewer(tmp_path), press=["question_mark"], terminal_size=SIZE)


def test_prompt_editor(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prompts.txt").write_text("The capital of France is\nHow to make tea:\\n-\n")
    app = GendiffApp(LaunchOptions(RunOptions(), open_document("prompts.txt"), preload=False))
    assert snap_compare(app, press=["down", "e"], terminal_size=SIZE)

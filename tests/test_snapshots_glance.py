"""Screenshots (pytest-textual-snapshot) of the app at a glance: the main screen in every
theme, the panel, the help and the diagnosis view while it computes, at 80×24 and 160×50.
Update with --snapshot-update and read the new SVGs (they are text) before accepting."""

from __future__ import annotations

import pytest
from test_snapshots import hand_made_snapshot
from test_tui import app_for

from gendiff.themes import THEMES
from gendiff.tui.app import GendiffApp
from gendiff.tui.screens.diagnosis import DiagnosisScreen

SIZES = {"80x24": (80, 24), "160x50": (160, 50)}


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

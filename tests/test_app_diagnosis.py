"""Diagnosing a divergence from the app: b opens the diagnosis view (bisection and re-convergence,
replaying the call that produced it), says what it is doing and how to cancel, keeps its result
(shown again at once, exported, reopened); its tables never cut a number."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from app_helpers import SIZE, app_for, marks, notifications, plain, prompt_file, running, wait_until
from textual.app import App, ComposeResult
from textual.widgets import Static

from gendiff.io.snapshots import load_snapshot, save_snapshot
from gendiff.state.exchange import export_snapshot
from gendiff.themes import THEMES
from gendiff.tui.app import GendiffApp
from gendiff.tui.screens.diagnosis import DiagnosisScreen

TCSS = Path(__file__).resolve().parent.parent / "gendiff" / "tui" / "gendiff.tcss"


class Host(App[None]):
    CSS_PATH = str(TCSS)
    get_theme_variable_defaults = GendiffApp.get_theme_variable_defaults

    def compose(self) -> ComposeResult:
        yield Static("host")

    def on_mount(self) -> None:
        for theme in THEMES:
            self.register_theme(theme)
        self.theme = THEMES[0].name


async def test_diagnosis_view_says_what_it_is_doing_and_how_to_cancel():
    from gendiff.tui.screens.diagnosis import HELP_DONE, HELP_LOADING, HELP_LOADING_DETACHED

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


def flip_divergence():
    from helpers import step, trace

    from gendiff.records.divergence import compare

    ref = trace("hf-single", [step(5, (5, -0.5), (6, -0.6))])
    other = trace("hf-left", [step(6, (6, -0.5), (5, -0.6))])
    return compare(ref, other)


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


async def test_b_on_an_identical_prompt_or_before_a_run_says_why_nothing_opens(tmp_path):
    from app_helpers import hand_made_snapshot

    app = app_for(prompt_file(tmp_path, "first"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        assert any("nothing to bisect" in m for m in notifications(app))
        assert app.screen is app.main
    app = app_for(hand_made_snapshot(tmp_path / "snap.json"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("tab")  # prompt 1's packed: identical to the reference
        await pilot.press("b")
        assert any("packed on prompt 1 is identical" in m for m in notifications(app))
        assert app.screen is app.main


def long_named_bisection():
    from gendiff.records.bisection import Bisection, ModuleDiff

    modules = (
        ModuleDiff(
            "model.layers.11.post_attention_layernorm:input", True, 0.0, 0.0, "residual stream before the MLP norm", 11
        ),
        ModuleDiff("model.layers.11.self_attn.o_proj", False, 1.1234e-4, 6.25e-2, "attention output projection", 11),
        ModuleDiff("model.layers.11.mlp.down_proj", False, 2.5e-3, 1.5e-1, "MLP down projection", 11),
    )
    return Bisection("hf-single", "hf-left", 0, 3, 1e-3, modules, True, position=7)


@pytest.mark.parametrize("width", [100, 80, 60])
def test_module_table_never_truncates_a_number(width):
    from rich.console import Console

    from gendiff.tui.screens.diagnosis import module_table

    console = Console(width=width, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(module_table(long_named_bisection(), {}))
    text = console.export_text()
    for number in ("1.12e-04", "6.25e-02", "2.50e-03", "1.50e-01", "differs", "equal"):
        assert number in text, text
    assert "…" not in text, text  # the names wrap instead of being cut
    assert all(len(line) <= width for line in text.splitlines())


# ── with the demo model (slow) ─────────────────────────────────────────────
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
        assert "b bisects" in main.query_one("#panel").border_title
        await pilot.press("b")
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
        assert "bisection: first differs at" in plain(main.query_one("#panel"))
        assert "b bisects" not in main.query_one("#panel").border_title  # done: nothing left to offer
        await pilot.press("b")  # again: opens at once, no recomputation
        assert isinstance(app.screen, DiagnosisScreen) and not app.screen.query_one("#diagnosis-loading").display
        await pilot.press("escape")
        target = tmp_path / "diag.json"
        save_snapshot(export_snapshot(main.ws), target)
        assert any(x.bisection is not None for x in load_snapshot(target).divergences())


@pytest.mark.slow
async def test_closing_the_diagnosis_view_early_is_quiet_and_b_opens_it_again(tmp_path):
    app = app_for(dtype="bfloat16", engines=("hf-single", "hf-left"))
    async with app.run_test(size=SIZE) as pilot:
        main = app.main

        def selected():
            return main.ws.divergence(main.workbench.current, "hf-left")

        await pilot.press("R")
        await wait_until(pilot, lambda: not running(app))
        await pilot.press("n", "b")
        assert isinstance(app.screen, DiagnosisScreen)
        await pilot.press("escape")  # stops the diagnosis between its stages
        assert not isinstance(app.screen, DiagnosisScreen)
        await wait_until(pilot, lambda: not any(w.group == "diagnose" and not w.is_finished for w in app.workers), 300)
        await pilot.pause(0.3)
        assert not any("No nodes match" in m or "failed" in m for m in notifications(app))
        kept = selected().bisection is not None  # it had finished before the escape landed
        await pilot.press("b")
        screen = app.screen
        assert isinstance(screen, DiagnosisScreen)
        assert screen.query_one("#diagnosis-loading").display is not kept  # a kept result opens at once
        await wait_until(pilot, lambda: selected().bisection is not None, 300)
        await pilot.pause(0.3)
        assert "First divergent module" in plain(screen.query_one("#diagnosis-body"))


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
        save_snapshot(export_snapshot(app.main.ws), target)
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

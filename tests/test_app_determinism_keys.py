"""The determinism screen's keys do what the focused widget means: enter opens a split on the
splits table, toggles an engine on the setup and runs only on the Run button (tab wraps from the
splits to the setup: a stray enter there once replaced the result with a new run); escape cancels
a run and otherwise goes back, and the footer offers the one that works; q quits always."""

from __future__ import annotations

import threading

from gendiff.tui.messages import DeterminismEnded
from gendiff.tui.screens import determinism as screen_module
from gendiff.tui.screens.determinism import DeterminismScreen
from gendiff.tui.screens.split_view import SplitScreen
from tests.app_helpers import app_for, prompt_file, wait_until
from tests.test_app_determinism import fake_result, open_screen, stand_in_worker


def footer_keys(app) -> dict[str, str]:
    """What the footer offers now: key -> its word (only the bindings that work now)."""
    return {key: active.binding.description for key, active in app.active_bindings.items() if active.binding.show}


async def test_tab_then_enter_never_starts_a_run(tmp_path, monkeypatch) -> None:
    runs: list[int] = []
    monkeypatch.setattr(screen_module, "run_determinism", lambda post, run_id, *rest: runs.append(run_id))
    app = app_for(prompt_file(tmp_path, "The capital of France is", "filler one"), engines=("hf-right", "hf-single"))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_screen(app, pilot)
        shown = fake_result()
        screen.post_message(DeterminismEnded(0, shown))
        await wait_until(pilot, lambda: screen.result is not None)
        await pilot.pause()
        assert app.focused is screen.query_one("#det-splits")
        trials = screen.setup.trials
        await pilot.press("tab")  # wraps to the setup
        await pilot.pause()
        assert app.focused is screen.setup
        for row in range(3):  # protocol, trials, seed: enter says their keys, runs nothing
            screen.setup.highlighted = row
            await pilot.press("enter")
            await pilot.pause()
        assert runs == [] and screen.run_id == 0 and screen.result is shown and screen.setup.trials == trials
        assert any("R or the Run button runs" in said for said in app.said), app.said
        screen.setup.highlighted = 3  # an engine row: enter toggles it, as space does
        await pilot.press("enter")
        assert screen.setup.selected == ["hf-single"] and runs == []
        await pilot.press("enter")
        assert screen.setup.selected == ["hf-right", "hf-single"] and runs == []
        # the splits table's enter opens the split, not a run
        await pilot.press("shift+tab")
        await pilot.pause()
        assert app.focused is screen.query_one("#det-splits")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, SplitScreen))
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is screen)
        assert runs == [] and screen.result is shown
        # the Run button is the setup's one way to run by enter
        screen.query_one("#det-run").focus()
        await pilot.pause()
        await pilot.press("enter")
        await wait_until(pilot, lambda: runs == [1])
        assert screen.run_id == 1
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, timeout=5)


async def test_escape_cancels_while_running_goes_back_idle_and_the_footer_says_which(tmp_path, monkeypatch) -> None:
    started = threading.Event()
    monkeypatch.setattr(screen_module, "run_determinism", stand_in_worker(started))
    app = app_for(prompt_file(tmp_path, "The capital of France is"), engines=("hf-right",))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_screen(app, pilot)
        keys = footer_keys(app)
        assert keys["escape"] == "Back" and keys["R"] == "Run" and "q" in keys, keys
        await pilot.press("R")
        await wait_until(pilot, lambda: started.is_set() and screen.running)
        await pilot.pause()
        assert footer_keys(app)["escape"] == "Cancel the run"
        await pilot.press("escape")
        await wait_until(pilot, lambda: screen.result is not None)
        assert app.screen is screen and screen.result.partial  # cancelled, not left
        await pilot.pause()
        assert footer_keys(app)["escape"] == "Back"
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, DeterminismScreen))

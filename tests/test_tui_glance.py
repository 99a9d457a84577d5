"""The app at a glance (issue 15) driven by the Pilot: the step explorer, the layout that fits the
terminal, progress in the prompt list, settings and the compare view. Fast (no model runs)."""

from __future__ import annotations

from test_snapshots import hand_made_snapshot
from test_tui import app_for, plain

from gendiff.display import number, visible
from gendiff.snapshot import Snapshot
from gendiff.tui.widgets.token_column import TokenColumn


async def test_step_explorer_shows_every_engines_top_k_at_the_chosen_step(tmp_path):
    path = hand_made_snapshot(tmp_path / "snap.json")
    traces = Snapshot.load(path).prompts[0].traces  # the trace's own TokenSteps, read independently
    app = app_for(path)
    async with app.run_test(size=(160, 50)) as pilot:
        main = app.main
        panel = main.query_one("#panel")
        assert "diverges from hf-single at step 3" in panel.border_title
        await pilot.press("left")  # from the divergence (step 3) to the step before it
        assert main.step_cursor == 2
        assert "step 2" in panel.border_title
        shown = plain(panel.body, width=150)
        for label in ("hf-single", "hf-left", "packed"):
            step = traces[label].steps[2]
            line = next(x for x in shown.splitlines() if x.startswith(label))
            assert f"chose {visible(step.text)}" in line and f"margin {number(step.margin)}" in line
            assert "≠ ref" not in line  # step 2 is before the divergence: everyone agrees
            for candidate in step.top:
                assert f"{visible(candidate.text)} {number(candidate.logprob)}" in shown
        assert "the first divergence is at step 3" in shown
        # every column marks the cursor's token (◂ after it)
        for column in main.query(TokenColumn):
            assert "The◂" in column.content.plain.replace("␣", "")
        await pilot.press("right_square_bracket")  # ] is → too
        assert main.step_cursor == 3
        shown = plain(panel.body, width=150)
        left = next(x for x in shown.splitlines() if x.startswith("hf-left"))
        assert "≠ ref" in left and f"margin {number(traces['hf-left'].steps[3].margin)}" in left
        await pilot.press("right", "right", "right")  # clamped at the last step
        assert main.step_cursor == 3
        await pilot.press("left_square_bracket", "left", "left", "left", "left")  # clamped at 0
        assert main.step_cursor == 0
        await pilot.press("g")  # back to the divergence record
        assert main.step_cursor is None
        assert "diverges from hf-single at step 3" in panel.border_title
        assert "◂" not in "".join(c.content.plain for c in main.query(TokenColumn))


async def test_another_prompt_starts_at_its_divergence_not_at_the_old_cursor(tmp_path):
    app = app_for(hand_made_snapshot(tmp_path / "snap.json"))
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("left")
        assert app.main.step_cursor == 2
        await pilot.press("down")
        assert app.main.step_cursor is None
        assert "←/→ step" not in app.main.query_one("#panel").border_title

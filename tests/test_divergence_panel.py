"""The divergence panel: sized to its content, scrollable, numbers intact at 80×24, and a
reading that agrees with the numbers it shows."""

from __future__ import annotations

import pytest
from app_helpers import FakeRun, app_for, hand_made_snapshot, settled
from helpers import step, trace
from textual.geometry import Region

from gendiff.display import number
from gendiff.records.divergence import compare
from gendiff.records.trace import Trace
from gendiff.tui.widgets.divergence_panel import DivergencePanel, drift_note, explain


def body_lines(panel: DivergencePanel) -> list[str]:
    """Every line of the panel's body, the part scrolled out of view included."""
    body = panel.body
    strips = body.render_lines(Region(0, 0, body.outer_size.width, body.outer_size.height))
    return [strip.text.rstrip() for strip in strips]


async def test_not_run_yet_takes_one_row(tmp_path):
    (tmp_path / "prompts.txt").write_text("The capital of France is\n")
    app = app_for(tmp_path / "prompts.txt")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        panel = app.screen.query_one("#panel", DivergencePanel)
        assert "not run yet" in "\n".join(body_lines(panel))
        assert panel.outer_size.height <= 4  # 1–2 rows of text and the border


async def test_numbers_are_never_cut_at_80x24(tmp_path):
    app = app_for(hand_made_snapshot(tmp_path / "snap.json"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        panel = app.screen.query_one("#panel", DivergencePanel)
        ws = app.main.ws
        d = ws.divergence(ws.prompts[0], "hf-left")
        text = "\n".join(body_lines(panel))
        shown = [
            *(number(c.logprob) for s in (d.reference_step, d.other_step) for c in s.top),
            *(number(c.logit) for s in (d.reference_step, d.other_step) for c in s.top),
            number(d.reference_margin),
            number(d.other_margin),
            number(d.flip_gap),
            number(d.max_drift_before),
        ]
        for value in shown:
            assert value in text, value
        assert "near-tie" in text and "earlier drift" in text
        # at most half the screen; what does not fit is reached by scrolling
        assert panel.outer_size.height <= 12
        assert panel.max_scroll_y == max(0, panel.body.outer_size.height - panel.scrollable_content_region.height)
        panel.scroll_end(animate=False)
        await pilot.pause()
        assert panel.scroll_y == panel.max_scroll_y


def flip(ref_margin: float, drift: float, prefix: int = 2) -> object:
    """A divergence at step ``prefix`` whose reference margin is ``ref_margin`` and whose chosen
    tokens drifted by ``drift`` over the prefix."""
    ref_steps = [step(1, (1, -0.1), (2, -3.0)) for _ in range(prefix)]
    other_steps = [step(1, (1, -0.1 - drift), (2, -3.0)) for _ in range(prefix)]
    ref_steps.append(step(5, (5, -0.5), (6, -0.5 - ref_margin)))
    other_steps.append(step(6, (6, -0.5), (5, -0.5 - 0.001)))
    return compare(trace("hf-single", ref_steps), trace("packed", other_steps))


def test_reading_follows_the_margin_shown():
    # the reading is gendiff.classify's (tested there); the panel shows it next to the margin
    assert explain(flip(0.0, 0.0)).startswith("exact tie")
    assert explain(flip(0.01, 0.0)).startswith("near-tie") and "0.0100" in explain(flip(0.01, 0.0))
    wide = explain(flip(0.5, 0.0))
    assert wide.startswith("wide flip") and "0.5000" in wide and "drift" not in wide


def test_drift_note_cites_the_drift_shown():
    at_zero = flip(0.5, 0.0, prefix=0)
    assert at_zero.step == 0 and drift_note(at_zero).startswith("step 0: no earlier tokens")
    big = flip(0.01, 0.2)
    assert number(big.max_drift_before) in drift_note(big) and "was more than this margin" in drift_note(big)
    small = flip(0.5, 0.001)
    assert number(small.max_drift_before) in drift_note(small) and "was less than this margin" in drift_note(small)
    assert drift_note(compare(trace("a", [step(1, (1, -0.1))]), trace("b", [step(1, (1, -0.1))]))) == ""


def test_a_length_divergence_has_no_drift_note():
    ref = trace("hf-single", [step(1, (1, -0.1), (2, -3.0)), step(1, (1, -0.1), (2, -3.0))])
    short = Trace("packed", 0, (1, 2, 3), (step(1, (1, -0.1), (2, -3.0)),), "eos")
    d = compare(ref, short)
    assert d.reason == "length" and explain(d).startswith("length") and drift_note(d) == ""


async def test_a_long_prompt_header_takes_at_most_three_lines(tmp_path):
    (tmp_path / "prompts.txt").write_text(" ".join(["a long prompt"] * 200) + "\n")
    app = app_for(tmp_path / "prompts.txt")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.screen.query_one("#prompt-text").outer_size.height == 3


async def test_progress_strip_and_header_stay_whole_at_80x24(tmp_path):
    from textual.widgets import Static

    from gendiff.records.events import EngineStarted

    (tmp_path / "prompts.txt").write_text("The capital of France is\n")
    app = app_for(tmp_path / "prompts.txt")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        main = app.main
        strip = main.query_one("#progress", Static)
        assert not strip.display  # nothing ran yet
        run = FakeRun(main, main.ws.plan_all())
        pid = main.ws.prompts[0].id
        await run.post(pilot, run.started(), *run.engine_events("hf-single", {pid: [5, 6]}, 1.9))
        await run.post(pilot, EngineStarted("hf-left", 1))
        text = str(strip.render())
        for label in main.ws.labels:
            assert label in text
        assert "hf-single ✓ 1/1 · 2 tok · 1.90s" in text and "hf-left loading…" in text
        assert strip.display and strip.region.y <= 3 and strip.region.bottom <= 6
        header = main.query_one("#run-line", Static)
        assert f"ref {main.ws.reference}" in str(header.render())
        assert header.region.height >= 2  # wrapped at 80 columns, not cut
        main.ws.finish(None)


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)])
async def test_the_panel_gives_rows_back_when_what_it_shows_is_shorter(tmp_path, size):
    # prompt 1's divergence (tables, margins, a reading) is tall; prompt 2's "matches" is two lines
    app = app_for(hand_made_snapshot(tmp_path / "snap.json"))
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        main = app.main
        panel = main.query_one("#panel", DivergencePanel)
        listing = main.query_one("#prompts")
        tall, list_rows = panel.outer_size.height, listing.outer_size.height
        await pilot.press("down")
        await pilot.pause()
        # while keys move over the prompts the panel keeps its rows: the columns do not jump
        assert panel.outer_size.height == tall and listing.outer_size.height == list_rows
        await settled(pilot)
        lines = [line for line in body_lines(panel) if line]
        assert any("matches" in line for line in lines)
        # nothing diverged: no "earlier" than a divergence, only how many steps were fragile
        assert "earlier" not in " ".join(lines) and "0 fragile steps" in " ".join(lines)
        # as tall as what it shows now (its lines and the two border rows), not as it was
        assert panel.outer_size.height == len(lines) + 2 < tall
        assert listing.outer_size.height == list_rows + (tall - panel.outer_size.height)
        await pilot.press("up")
        await settled(pilot)
        assert panel.outer_size.height == tall and listing.outer_size.height == list_rows


def test_the_statistics_line_says_its_units_and_what_was_fed():
    from gendiff.records.statistics import DistributionStats
    from gendiff.tui.widgets.divergence_panel import statistics_line

    stats = DistributionStats(3, 0.0012, 0.001, 0.002, 0.0031, 2, 2 / 3, 0.0, 0.0042, kld_steps=(0.0, 0.001, 0.0031))
    line = statistics_line("hf-left", "hf-single", stats)
    assert "both fed hf-single's tokens" in line and "teacher-forced" not in line
    assert f"mean {number(0.0012, 6)} nats" in line and f"max {number(0.0031, 6)} nats at step 2" in line
    assert "same top-1 66.7% of steps" in line and f"probability, rms {number(0.0042, 6)}" in line

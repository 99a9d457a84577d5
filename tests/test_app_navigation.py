"""The app at a glance (issue 15) driven by the Pilot: the step explorer, the layout that fits the
terminal, progress in the prompt list, settings and the compare view. Fast (no model runs)."""

from __future__ import annotations

import pytest
from test_snapshots import hand_made_snapshot, tok
from test_tui import app_for, plain, prompt_file, wait_until

from gendiff.display import number, visible
from gendiff.io.snapshots import load_snapshot, save_snapshot
from gendiff.records.divergence import compare
from gendiff.records.events import EngineFinished, EngineLoaded, EngineStarted, StepGenerated
from gendiff.records.snapshot import Batch, PromptResult, Snapshot
from gendiff.records.trace import Trace
from gendiff.state.progress import RunProgress
from gendiff.tui.layout import prompt_width
from gendiff.tui.messages import EngineEvent, StepsGenerated
from gendiff.tui.widgets.token_column import TokenColumn


async def test_step_explorer_shows_every_engines_top_k_at_the_chosen_step(tmp_path):
    path = hand_made_snapshot(tmp_path / "snap.json")
    traces = load_snapshot(path).prompts[0].traces  # the trace's own TokenSteps, read independently
    app = app_for(path)
    async with app.run_test(size=(160, 50)) as pilot:
        main = app.main
        panel = main.query_one("#panel")
        assert "diverges from hf-single at step 3" in panel.border_title
        await pilot.press("left")  # from the divergence (step 3) to the step before it
        assert main.workbench.step_cursor == 2
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
        main.workbench.refresh_list()  # a run rebuilds the list (an engine finished): the cursor stays
        await pilot.pause()
        assert main.workbench.step_cursor == 2 and "step 2" in panel.border_title
        await pilot.press("right_square_bracket")  # ] is → too
        assert main.workbench.step_cursor == 3
        shown = plain(panel.body, width=150)
        left = next(x for x in shown.splitlines() if x.startswith("hf-left"))
        assert "≠ ref" in left and f"margin {number(traces['hf-left'].steps[3].margin)}" in left
        await pilot.press("right", "right", "right")  # clamped at the last step
        assert main.workbench.step_cursor == 3
        await pilot.press("left_square_bracket", "left", "left", "left", "left")  # clamped at 0
        assert main.workbench.step_cursor == 0
        await pilot.press("g")  # back to the divergence record
        assert main.workbench.step_cursor is None
        assert "diverges from hf-single at step 3" in panel.border_title
        assert "◂" not in "".join(c.content.plain for c in main.query(TokenColumn))


async def test_another_prompt_starts_at_its_divergence_not_at_the_old_cursor(tmp_path):
    app = app_for(hand_made_snapshot(tmp_path / "snap.json"))
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("left")
        assert app.main.workbench.step_cursor == 2
        await pilot.press("down")
        assert app.main.workbench.step_cursor is None
        assert "←/→ step" not in app.main.query_one("#panel").border_title


def late_divergence_snapshot(path, steps=150, at=130):
    """Three engines over ``steps`` tokens of a word each; hf-left picks another word at ``at``."""
    words = [tok(100 + i, f" w{i}", (100 + i, f" w{i}", -0.1), (99, " x", -2.5)) for i in range(steps)]
    other = list(words)
    other[at] = tok(99, " x", (99, " x", -0.7), (100 + at, f" w{at}", -0.71))
    prompt = (1, 2)
    traces = {
        "hf-single": Trace("hf-single", 0, prompt, tuple(words), "length"),
        "hf-left": Trace("hf-left", 0, prompt, tuple(other), "length"),
        "packed": Trace("packed", 0, prompt, tuple(words), "length"),
    }
    result = PromptResult("Count the words", list(prompt), traces, id=0, batches=dict.fromkeys(traces, 0))
    result.divergences = [compare(traces["hf-single"], traces[e]) for e in ("hf-left", "packed")]
    snapshot = Snapshot(
        model={"name": "demo_model", "path": "/demo_model", "dtype": "bfloat16", "attn": "sdpa"},
        decoding={"max_new_tokens": steps, "top_k": 2},
        reference="hf-single",
        engines=[{"label": e, "name": e, "settings": {}} for e in traces],
        prompts=[result],
        environment={"python": "3.11", "torch": "2.13.0", "transformers": "5.19.0", "device": "cpu"},
        created="2026-11-23T12:00:00+00:00",
        batches=[Batch(0, tuple(traces), (0,), (result.text,), (prompt,))],
    )
    save_snapshot(snapshot, path)
    return path


def visible_in_scroll(main, column, what):
    """Whether the column's ``what`` line lies inside the columns' scroll viewport, on screen."""
    scroll = main.query_one("#columns-scroll")
    line = column.line_of(what)
    y = column.content_region.y + line
    return scroll.content_region.y <= y < scroll.content_region.bottom


async def test_n_scrolls_a_late_divergent_token_into_view_at_80x24(tmp_path):
    app = app_for(late_divergence_snapshot(tmp_path / "late.json"))
    async with app.run_test(size=(80, 24)) as pilot:
        main = app.main
        await pilot.pause()
        left = main.workbench.columns.columns()["hf-left"]
        assert left.line_of("mark") > 20  # far below the fold at first
        assert not visible_in_scroll(main, left, "mark")
        await pilot.press("n")
        await pilot.pause()
        assert main.workbench.selected_engine == "hf-left"
        assert visible_in_scroll(main, left, "mark")
        reference = main.workbench.columns.columns()["hf-single"]
        assert visible_in_scroll(main, reference, "mark")  # the reference marks the same step
        await pilot.press("left")  # the step explorer's cursor follows too
        await pilot.pause()
        assert main.workbench.step_cursor == 129 and visible_in_scroll(main, left, "cursor")


async def test_narrow_terminal_collapses_to_reference_and_selected_engine(tmp_path):
    app = app_for(hand_made_snapshot(tmp_path / "snap.json"))
    async with app.run_test(size=(80, 24)) as pilot:
        main = app.main
        shown = [c.label for c in main.query(TokenColumn) if c.display]
        assert shown == ["hf-single", "hf-left"]
        assert main.query_one("#prompts").outer_size.width == prompt_width(80)
        left = main.workbench.columns.columns()["hf-left"]
        assert left.border_title.endswith("· 1/2")
        assert left.outer_size.width > 25  # readable, not a 6-character column
        await pilot.press("tab")
        shown = [c.label for c in main.query(TokenColumn) if c.display]
        assert shown == ["hf-single", "packed"] and main.workbench.selected_engine == "packed"
        await pilot.resize_terminal(200, 50)
        await pilot.pause()
        assert [c.label for c in main.query(TokenColumn) if c.display] == ["hf-single", "hf-left", "packed"]
        assert main.query_one("#prompts").outer_size.width == prompt_width(200)


async def test_progress_strip_and_prompt_list_follow_the_engines_events(tmp_path):
    """The screen's own handlers fed the Session's events (the worker that posts them runs in
    the slow test below): the strip says tokens and tokens/s, the list which engine finished."""
    app = app_for(prompt_file(tmp_path, "one", "two"))
    async with app.run_test(size=(160, 50)) as pilot:
        main = app.main
        labels = main.ws.labels
        plan = main.ws.plan_all()
        main.ws.start(plan)
        main.plan, main.run_id = plan, 7
        clock = iter(float(t) for t in range(100, 10_000))
        main.run_progress = RunProgress(list(labels), lambda: next(clock))
        ref = labels[0]
        main.post_message(EngineEvent(7, EngineStarted(ref, 2)))
        main.post_message(EngineEvent(7, EngineLoaded(ref, 0.5)))
        steps = [tok(5 + i, f" t{i}", (5 + i, f" t{i}", -0.1)) for i in range(3)]
        main.post_message(StepsGenerated(7, [StepGenerated(ref, 0, i, s) for i, s in enumerate(steps)]))
        await pilot.pause()
        strip = plain(main.query_one("#progress"), width=300)
        assert f"{ref} p1/2 3/24" in strip and "tok/s" in strip
        assert all(f"{label} waiting" in strip for label in labels[1:])
        traces = tuple(Trace(ref, i, (1, 2), tuple(steps), "length") for i in range(2))
        main.post_message(EngineEvent(7, EngineFinished(ref, traces, 1.5)))
        await pilot.pause()
        assert f"{ref} ✓ 3 tok 1.50s" in plain(main.query_one("#progress"), width=300)
        rows = [str(main.query_one("#prompts").get_option_at_index(i).prompt) for i in range(2)]
        marks = "●" + "·" * (len(labels) - 1)  # the reference has finished both, the others none
        assert all(f" {marks} " in row for row in rows)
        main.run_progress.cancelled()  # the run ends here (no worker): leave nothing running
        main.plan = None


@pytest.mark.slow
async def test_a_real_run_leaves_every_engine_done_in_the_strip(tmp_path):
    app = app_for(prompt_file(tmp_path, "The capital of France is"), dtype="bfloat16", max_new_tokens=6)
    async with app.run_test(size=(160, 50)) as pilot:
        main = app.main
        await pilot.press("R")
        await wait_until(pilot, lambda: not main.ws.running, timeout=300)
        strip = plain(main.query_one("#progress"), width=400)
        prompt = main.ws.prompts[0]
        for label in main.ws.labels:
            assert f"{label} ✓ {len(main.ws.steps(prompt, label))} tok" in strip


def engine_rows(screen):
    engines = screen.query_one("#set-engines")
    return [str(engines.get_option_at_index(i).prompt) for i in range(engines.option_count)]


async def test_settings_variants_threshold_eos_are_checked_remembered_and_restored(tmp_path):
    app = app_for(prompt_file(tmp_path, "one"))
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("s")
        await pilot.pause()
        screen = app.screen
        assert "[x] packed" in engine_rows(screen)
        screen.query_one("#set-engines").deselect("packed")
        await pilot.pause()
        assert "[ ] packed" in engine_rows(screen)  # enabled or not, readable without colour
        screen.query_one("#set-variant").focus()
        await pilot.press(*"hf-single:dtype", "enter")
        await pilot.pause()
        error = str(screen.query_one("#settings-error").content)
        assert "is not key=value" in error and "\n" not in error
        assert not any("dtype" in row for row in engine_rows(screen))
        screen.query_one("#set-variant").value = ""
        await pilot.press(*"hf-single:dtype=float32", "enter")
        await pilot.pause()
        assert "[x] hf-single:dtype=float32" in engine_rows(screen)
        assert str(screen.query_one("#settings-error").content) == ""
        screen.query_one("#set-fragile-threshold").value = "-1"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is screen and "fragile threshold" in str(screen.query_one("#settings-error").content)
        screen.query_one("#set-fragile-threshold").value = "0.125"
        screen.query_one("#set-stop-at-eos").value = False
        await pilot.press("ctrl+s")
        await pilot.pause()
        options = app.main.options
        assert options.engines == ("hf-single", "hf-left", "hf-right", "hf-single:dtype=float32")
        assert options.fragile_threshold == 0.125 and options.stop_at_eos is False
    # the next launch restores them; an option given on the command line wins
    restored = app_for(prompt_file(tmp_path, "one"), given=frozenset({"max_new_tokens"}), max_new_tokens=5)
    async with restored.run_test(size=(160, 50)):
        options = restored.main.options
        assert options.engines[-1] == "hf-single:dtype=float32" and options.fragile_threshold == 0.125
        assert options.stop_at_eos is False and options.max_new_tokens == 5
        assert [c.label for c in restored.main.query(TokenColumn)][-1] == "hf-single:dtype=float32"


async def test_broken_saved_settings_are_a_startup_note_not_a_crash(tmp_path):
    from gendiff.tui.config import save_config

    save_config(settings={"engines": ["nonsense-engine"], "dtype": "bfloat16"})
    app = app_for(prompt_file(tmp_path, "one"), given=frozenset())
    async with app.run_test(size=(160, 50)):
        assert app.main.options.dtype != "bfloat16"  # none of them applied
        assert any("saved settings not used" in note for note, _ in app.startup_notes)


def test_given_options_are_those_on_the_command_line_even_at_their_default():
    from gendiff.cli.args import given_options, tui_parser
    from gendiff.defaults import DTYPE

    given = given_options(tui_parser(), ["--dtype", DTYPE, "prompts.txt", "--no-stop-at-eos"])
    assert {"dtype", "no_stop_at_eos"} <= given and "max_new_tokens" not in given and "engines" not in given


def snapshot_pair(tmp_path):
    """Two snapshots of the same run, B's recorded as float32 (compare checks model and prompts)."""
    import json

    a = hand_made_snapshot(tmp_path / "a.json")
    data = json.loads(a.read_text())
    data["model"]["dtype"] = "float32"
    b = tmp_path / "b.json"
    b.write_text(json.dumps(data))
    return a, b


def shown_columns(main):
    return [c.label for c in main.workbench.columns.in_order() if c.display]


async def test_compare_view_pairs_engine_at_a_and_b_and_filters_engines(tmp_path):
    a, b = snapshot_pair(tmp_path)
    app = app_for(a, b)
    async with app.run_test(size=(160, 50)) as pilot:
        main = app.main
        assert shown_columns(main) == [f"{e}@{s}" for e in ("hf-single", "hf-left", "packed") for s in "AB"]
        header = str(main.query_one("#run-line").content)
        assert "A: bfloat16 · sdpa (a.json) vs B: float32 · sdpa (b.json)" in header
        await pilot.press("o")
        assert shown_columns(main) == ["hf-single@A", "hf-single@B"] and main.workbench.selected_engine == "hf-single@B"
        assert "only hf-single (o)" in str(main.query_one("#run-line").content)
        await pilot.press("o")
        assert shown_columns(main) == ["hf-left@A", "hf-left@B"]
        await pilot.press("tab")  # tab stays within the filter
        assert main.workbench.selected_engine == "hf-left@B"
        await pilot.press("o", "o")
        assert len(shown_columns(main)) == 6
        await pilot.resize_terminal(80, 24)  # too narrow for six: the selected pair (the last filtered)
        await pilot.pause()
        assert shown_columns(main) == ["packed@A", "packed@B"]
        await pilot.press("tab")
        assert shown_columns(main) == ["hf-single@A", "hf-single@B"]


async def test_the_engine_filter_is_only_offered_when_comparing(tmp_path):
    app = app_for(hand_made_snapshot(tmp_path / "snap.json"))
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("o")
        assert [c.label for c in app.main.workbench.columns.in_order() if c.display] == [
            "hf-single",
            "hf-left",
            "packed",
        ]
        assert app.main.workbench.only is None
        app.main.workbench.action_filter_engine()  # from the palette: says where it works, changes nothing
        await pilot.pause()
        assert (
            app.main.workbench.only is None
            and len([c for c in app.main.workbench.columns.in_order() if c.display]) == 3
        )

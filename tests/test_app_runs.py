"""Running the engines from the app: R and r, the progress strip, the prompt rows' per-engine
marks, the column foots and the panel while a run goes, escape, a run that cannot start, a
prompt too long for the model, the call a prompt re-runs in, and exporting mid-run.

The hand-fed runs (FakeRun: the Session's events posted to the run controller as its worker
posts them) need no model; the others run the demo model and are marked slow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from app_helpers import (
    SIZE,
    FakeRun,
    app_for,
    column,
    marks,
    notifications,
    plain,
    prompt_file,
    rows,
    running,
    step_of,
    strip_text,
    wait_until,
)

from gendiff.io.snapshots import load_snapshot, validate
from gendiff.records.events import EngineFinished, EngineLoaded, EngineStarted, PromptFinished, StepGenerated
from gendiff.tui.messages import RunEnded, RunEvents
from gendiff.tui.screens.export import ExportDialog

REPO = Path(__file__).parent.parent


# ── hand-fed runs (no model) ───────────────────────────────────────────────
async def test_the_strip_the_foots_and_the_rows_follow_the_runs_events(tmp_path):
    app = app_for(prompt_file(tmp_path, "one", "two"))
    async with app.run_test(size=(160, 50)) as pilot:
        main = app.main
        labels = main.ws.labels
        ref = labels[0]
        now = [100.0]
        run = FakeRun(main, main.ws.plan_all(), max_new_tokens=24, clock=lambda: now[0])
        first, second = main.ws.prompts
        await run.post(pilot, run.started(), EngineStarted(ref, 2))
        now[0] = 101.0
        await run.post(pilot, EngineLoaded(ref, 1.0))
        assert f"{ref} 0/2 prompts · 0 tok" in strip_text(main)
        now[0] = 103.0
        await run.post(pilot, *(StepGenerated(ref, p.id, i, step_of(5 + i)) for p in (first, second) for i in range(3)))
        strip = strip_text(main)
        # 6 tokens in the 2 s since it loaded
        assert f"{ref} 0/2 prompts · 6 tok · 3.0 tok/s" in strip
        assert all(f"{label} waiting" in strip for label in labels[1:])
        # up to 2×24−6 tokens for the reference and 2×24 for each other engine, at the only speed seen: 3 tok/s;
        # the other engines have not loaded their model yet, which the estimate cannot know
        left = (2 * 24 - 6 + 2 * 24 * (len(labels) - 1)) / 3.0
        assert f"about {int(left // 60)}m{round(left % 60):02d}s left at this speed, loads not counted" in strip
        assert "≤" not in strip  # an estimate, not a bound
        assert column(main, ref).border_subtitle.startswith("0/2 · 6 tok")
        assert all(" ···· " in row for row in rows(main))  # nobody finished a prompt yet
        await run.post(pilot, PromptFinished(ref, run.trace(ref, first.id, [5, 6, 7])))
        assert f"{ref} 1/2 prompts · 6 tok" in strip_text(main)
        assert [" ●··· " in row for row in rows(main)] == [True, False]  # the reference finished prompt 1
        last = run.trace(ref, second.id, [5, 6, 7])
        await run.post(pilot, PromptFinished(ref, last), EngineFinished(ref, (run.traces[ref][first.id], last), 1.5))
        assert f"{ref} ✓ 2/2 · 6 tok · 1.50s" in strip_text(main)
        assert column(main, ref).border_subtitle.startswith("✓")
        assert all(" ●··· " in row for row in rows(main))
        assert main.ws.running  # the others have not run yet
        main.ws.finish(None)


async def test_during_a_run_the_panel_compares_engines_that_have_finished_the_prompt(tmp_path):
    app = app_for(prompt_file(tmp_path, "first", "second"))
    async with app.run_test(size=(120, 40)) as pilot:
        main, ws = app.main, app.main.ws
        ref, other, last = ws.labels[0], ws.labels[1], ws.labels[-1]
        run = FakeRun(main, ws.plan_all())
        await run.post(pilot, run.started())
        panel = main.query_one("#panel")
        assert f"waiting for {ref} and {other}" in str(panel.content)
        await run.post(pilot, *run.engine_events(ref, {p.id: [5, 6, 7, 8] for p in ws.prompts}))
        assert f"waiting for {other}" in str(panel.content) and ref not in str(panel.content).split("for")[1]
        # the selected engine differs at step 2 on the first prompt, agrees on the second
        first, second = ws.prompts
        await run.post(pilot, *run.engine_events(other, {first.id: [5, 6, 9, 8], second.id: [5, 6, 7, 8]}))
        assert main.ws.running and first.cells[last].state == "running"  # the run goes on
        assert main.workbench.selected_engine == other
        assert f"{other} diverges from {ref} at step 2" in panel.border_title
        assert "the run goes on" in panel.border_title
        main.workbench.prompt_list.highlighted = 1
        await pilot.pause()
        assert f"{other} identical to {ref}" in panel.border_title
        assert "running" not in str(panel.content)
        main.ws.finish(None)


async def test_the_panel_offers_b_only_when_b_can_bisect(tmp_path):
    app = app_for(prompt_file(tmp_path, "first"))
    async with app.run_test(size=(120, 40)) as pilot:
        main, ws = app.main, app.main.ws
        ref, other = ws.labels[0], ws.labels[1]
        run = FakeRun(main, ws.plan_all())
        pid = ws.prompts[0].id
        await run.post(pilot, run.started(), *run.engine_events(ref, {pid: [5, 6]}))
        await run.post(pilot, *run.engine_events(other, {pid: [5, 7]}))
        panel = main.query_one("#panel")
        assert "diverges from" in panel.border_title and ws.running
        await pilot.press("b")
        refused = any("engines are running" in m for m in notifications(app))
        assert refused and "b bisects" not in panel.border_title
        main.ws.finish(None)


async def test_the_finished_marks_follow_prompt_ids_when_r_runs_one_prompt(tmp_path):
    app = app_for(prompt_file(tmp_path, "first", "second", "third"))
    async with app.run_test(size=(120, 40)) as pilot:
        main, ws = app.main, app.main.ws
        third = ws.prompts[2]
        run = FakeRun(main, ws.plan_one(third.id))  # r on the third prompt: a run of one row, id 2
        ref = ws.labels[0]
        await run.post(pilot, run.started(), PromptFinished(ref, run.trace(ref, third.id, [5, 6])))
        drawn = rows(main)
        assert f" ●{'·' * (len(ws.labels) - 1)} " in drawn[2]
        assert drawn[0].endswith(" 1 first") and drawn[1].endswith(" 2 second")  # not in this run: no marks
        main.ws.finish(None)


async def test_escape_cancels_and_the_strip_says_what_each_engine_got_done(tmp_path):
    app = app_for(prompt_file(tmp_path, "first", "second"))
    async with app.run_test(size=(160, 40)) as pilot:
        main, ws = app.main, app.main.ws
        ref, other = ws.labels[0], ws.labels[1]
        run = FakeRun(main, ws.plan_all())
        first, second = ws.prompts
        await run.post(pilot, run.started(), *run.engine_events(ref, {first.id: [5, 6], second.id: [5, 7]}))
        await run.post(
            pilot, EngineStarted(other, 2), EngineLoaded(other, 0.1), StepGenerated(other, first.id, 0, step_of(5))
        )
        await pilot.press("escape")
        assert run.run.cancel.is_set()  # what the engines read between steps
        assert f"{other} 0/2 prompts · 1 tok" in strip_text(main) and "stopping after this step" in strip_text(main)
        cancelled = (run.trace(other, first.id, [5], "cancelled"), run.trace(other, second.id, [], "cancelled"))
        await run.post(pilot, EngineFinished(other, cancelled, 0.2))
        await run.end(pilot)
        strip = strip_text(main)
        assert f"{ref} ✓ 2/2 · 4 tok" in strip
        assert f"{other} cancelled · 0/2 done · 1 tok" in strip and f"{other} ✓" not in strip
        assert all(f"{label} not run (cancelled before it began)" in strip for label in ws.labels[2:])
        assert any("run cancelled" in m for m in notifications(app))
        assert marks(app) == ["incomplete", "incomplete"]  # nothing says the engines agreed
        assert "cancelled here" in column(main, other).tokens.content.plain


async def test_a_run_that_stops_on_an_error_says_so_and_calls_nothing_cancelled(tmp_path):
    app = app_for(prompt_file(tmp_path, "first"))
    async with app.run_test(size=(160, 40)) as pilot:
        main, ws = app.main, app.main.ws
        run = FakeRun(main, ws.plan_all())
        await run.post(pilot, run.started(), EngineStarted(ws.labels[0], 1))
        await run.end(pilot, error="the model could not be read")  # as the worker reports an exception
        assert not ws.running and marks(app) == ["new"]  # what was shown before comes back
        assert any("the model could not be read" in m for m in notifications(app))
        assert "cancelled" not in strip_text(main), strip_text(main)


async def test_a_run_that_stops_on_an_error_gives_no_false_reason_for_the_engines_it_never_reached(tmp_path):
    app = app_for(prompt_file(tmp_path, "first"))
    async with app.run_test(size=(160, 40)) as pilot:
        main, ws = app.main, app.main.ws
        run = FakeRun(main, ws.plan_all())
        await run.post(pilot, run.started(), EngineStarted(ws.labels[0], 1))
        await run.end(pilot, error="the model could not be read")
        strip = strip_text(main)
        assert f"{ws.labels[0]} FAILED" in strip
        assert "no prompt it could run" not in strip, strip


async def test_events_of_an_earlier_run_are_ignored(tmp_path):
    app = app_for(prompt_file(tmp_path, "first"))
    async with app.run_test(size=(160, 40)) as pilot:
        main, ws = app.main, app.main.ws
        old = FakeRun(main, ws.plan_all())
        ws.finish(None)
        new = FakeRun(main, ws.plan_all())
        pid, ref = ws.prompts[0].id, ws.labels[0]
        late = PromptFinished(ref, old.trace(ref, pid, [5, 6]))
        main.runner.post_message(RunEvents(old.run.id, [late]))
        main.runner.post_message(RunEnded(old.run.id, old.snapshot()))
        await pilot.pause()
        assert ws.running and ws.prompts[0].cells[ref].state == "running"  # the late events filled nothing
        assert "●" not in rows(main)[0]
        await new.post(pilot, new.started(), PromptFinished(ref, new.trace(ref, pid, [5])))
        assert ws.prompts[0].cells[ref].state == "finished"
        main.ws.finish(None)


async def test_export_mid_run_writes_what_has_finished_marked_partial(tmp_path):
    app = app_for(prompt_file(tmp_path, "first", "second"))
    async with app.run_test(size=(160, 40)) as pilot:
        main, ws = app.main, app.main.ws
        ref = ws.labels[0]
        run = FakeRun(main, ws.plan_all())
        first, second = ws.prompts
        await run.post(pilot, run.started(), PromptFinished(ref, run.trace(ref, first.id, [5, 6, 7])))
        target = tmp_path / "mid.json"
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(app.screen, ExportDialog)
        app.screen.query_one("#export-path").value = str(target)
        await pilot.press("enter")
        await wait_until(pilot, lambda: not isinstance(app.screen, ExportDialog), 30)
        assert any(f"snapshot written to {target} (partial" in m for m in notifications(app))
        data = json.loads(target.read_text())
        validate(data, "export")
        snapshot = load_snapshot(target)
        assert snapshot.partial and any("partial" in note for note in snapshot.notes)
        assert [set(p.traces) for p in snapshot.prompts] == [{ref}, set()]  # only what had finished
        assert snapshot.prompts[0].traces[ref].token_ids == (5, 6, 7)
        assert snapshot.prompts[0].divergences == []  # nothing compared with an unfinished trace
        main.ws.finish(None)


async def test_r_and_R_while_a_run_goes_say_so_and_start_nothing(tmp_path):
    app = app_for(prompt_file(tmp_path, "first"))
    async with app.run_test(size=(160, 40)) as pilot:
        main = app.main
        run = FakeRun(main, main.ws.plan_all())
        await pilot.press("R", "r")
        assert main.ws.run is run.run  # still the same run
        assert sum("engines are running" in m for m in notifications(app)) == 2
        main.ws.finish(None)


async def test_a_bad_model_path_is_said_on_run_and_keeps_what_was_shown(tmp_path):
    app = app_for(prompt_file(tmp_path, "hello"), model=str(tmp_path / "no-model"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_until(pilot, lambda: any("no such directory" in m for m in notifications(app)), 60)
        await wait_until(pilot, lambda: not running(app), 60)
        assert marks(app) == ["new"]
        await pilot.press("a")  # still alive
        await pilot.pause()
        assert app.screen.query("#editor-text")


# ── with the demo model (slow) ─────────────────────────────────────────────
@pytest.mark.slow
async def test_run_all_in_bfloat16_marks_divergences_and_n_moves_to_them(tmp_path):
    app = app_for(dtype="bfloat16")
    async with app.run_test(size=SIZE) as pilot:
        main = app.main
        assert len(main.ws.prompts) == 16  # the demo prompts
        await pilot.press("R")
        # the key reaches the screen within a frame or two, however busy the machine
        # (with the model already loaded in this process the run can also end within a frame)
        for _ in range(100):
            if running(app) or "new" not in marks(app):
                break
            await pilot.pause(0.1)
        assert running(app) or "new" not in marks(app), notifications(app)
        await wait_until(pilot, lambda: not running(app))
        diverged = [i for i, m in enumerate(marks(app)) if m == "diverged"]
        assert diverged, marks(app)
        # every other prompt is ✓: all four engines finished it and agree
        for i, prompt in enumerate(main.ws.prompts):
            if i not in diverged:
                assert marks(app)[i] == "identical"
                assert all(c.state == "finished" for c in prompt.cells.values())
        strip = strip_text(main)
        assert all(f"{label} ✓ 16/16 · " in strip for label in main.ws.labels)
        await pilot.press("n")
        bench = main.workbench
        assert (bench.current_number - 1) in diverged
        prompt = bench.current
        assert bench.selected_engine in main.ws.diverged_engines(prompt)
        d = main.ws.divergence(prompt, bench.selected_engine)
        assert d.diverged and d.step is not None
        panel = main.query_one("#panel")
        assert f"diverges from hf-single at step {d.step}" in panel.border_title
        assert "batch of 16" in panel.border_title
        tokens = column(main, bench.selected_engine).tokens
        assert [span for span in tokens.render().spans if "underline" in str(span.style)], "no marked token"
        first = (bench.current_number - 1, bench.selected_engine)
        await pilot.press("n")
        await pilot.press("p")
        assert (bench.current_number - 1, bench.selected_engine) == first
        before = bench.selected_engine
        await pilot.press("tab")
        assert bench.selected_engine != before
        header = str(main.query_one("#run-line").content)
        assert f"16/16 complete · {sum(len(main.ws.diverged_engines(p)) for p in main.ws.prompts)} divergence" in header
        target = tmp_path / "export.json"
        await pilot.press("x")
        await pilot.pause()
        app.screen.query_one("#export-path").value = str(target)
        await pilot.press("enter")
        await wait_until(pilot, lambda: not isinstance(app.screen, ExportDialog), 60)
        data = json.loads(target.read_text())
        validate(data, "export")
        assert len(data["prompts"]) == 16 and data["schema"] == "gendiff.snapshot/2"
        assert any(f"snapshot written to {target}" in m and "partial" not in m for m in notifications(app))
        snapshot = load_snapshot(target)
        assert snapshot.model["dtype"] == "bfloat16" and not snapshot.partial
        assert len(snapshot.divergences()) == sum(len(main.ws.diverged_engines(p)) for p in main.ws.prompts)
        assert [b.prompt_ids for b in snapshot.batches] == [tuple(range(16))]


@pytest.mark.slow
async def test_run_selected_prompt_streams_into_columns(tmp_path):
    app = app_for(
        prompt_file(tmp_path, "The capital of France is", "How to make tea:\n-"), engines=("hf-single", "hf-left")
    )
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down", "r")
        await wait_until(pilot, lambda: not running(app))
        main, ws = app.main, app.main.ws
        assert marks(app)[0] == "new"
        second = ws.prompts[1]
        assert {label for label, c in second.cells.items() if c.state == "finished"} == {"hf-single", "hf-left"}
        reference = column(main, "hf-single")
        assert "Boil" in str(reference.tokens.render())
        assert "␣" in str(reference.tokens.render())  # whitespace visible
        assert reference.border_title == "hf-single (ref)"
        made = len(second.cells["hf-single"].trace.steps)
        assert f"hf-single ✓ 1/1 · {made} tok · " in strip_text(main)
        # never run before: the batched engine ran it alone, and its column foot says so
        assert "ran alone" in column(main, "hf-left").border_subtitle
        assert "ran alone" in main.query_one("#panel").border_title


@pytest.mark.slow
async def test_escape_mid_run_never_marks_engines_that_did_not_run(tmp_path):
    app = app_for(
        # 16 prompts x 400 tokens: hf-single can't finish them all before escape lands, however fast the machine
        prompt_file(
            tmp_path,
            *[f"Once upon a time, there was a {n} number {i}" for i in range(4) for n in ("cat", "dog", "king", "fox")],
        ),
        max_new_tokens=400,
        stop_at_eos=False,
        engines=("hf-single", "hf-left"),
    )
    async with app.run_test(size=SIZE) as pilot:
        ws = app.main.ws
        await pilot.press("R")
        await wait_until(pilot, lambda: any(c.live for p in ws.prompts for c in p.cells.values()))
        await pilot.press("down")  # navigation works mid-run
        assert app.main.workbench.current_number == 2
        await pilot.press("escape")
        await wait_until(pilot, lambda: not running(app), timeout=60)
        assert any("run cancelled" in m for m in notifications(app))
        assert "identical" not in marks(app), marks(app)
        # hf-left never ran: nothing says it agreed
        assert all(p.cells["hf-left"].state == "not run" for p in ws.prompts)
        assert all(m == "incomplete" for m in marks(app))
        header = str(app.main.query_one("#run-line").content)
        assert "0/16 complete · 0 divergences" in header and "16 incomplete" in header
        cancelled = [p.cells["hf-single"] for p in ws.prompts]
        assert any(c.state == "cancelled" and len(c.trace.steps) < 400 for c in cancelled)
        strip = strip_text(app.main)
        assert "hf-single cancelled · " in strip and "hf-single ✓" not in strip
        assert "hf-left not run (cancelled before it began)" in strip


@pytest.mark.slow
async def test_a_real_run_leaves_every_engine_done_in_the_strip(tmp_path):
    app = app_for(prompt_file(tmp_path, "The capital of France is"), dtype="bfloat16", max_new_tokens=6)
    async with app.run_test(size=(160, 50)) as pilot:
        main = app.main
        await pilot.press("R")
        await wait_until(pilot, lambda: not main.ws.running, timeout=300)
        strip = strip_text(main)
        prompt = main.ws.prompts[0]
        for label in main.ws.labels:
            assert f"{label} ✓ 1/1 · {len(main.ws.steps(prompt, label))} tok · " in strip


@pytest.mark.slow
async def test_the_mid_run_comparison_is_what_the_run_records(tmp_path):
    """Every comparison the panel could show mid-run (as soon as an engine and the reference had
    both finished the prompt) equals the divergence the finished run records."""
    seen = {}  # (prompt id, engine) -> the comparison available before the run ended

    def look(message):
        # what the run controller is handed next is applied after this: the state now is mid-run
        if isinstance(message, (RunEvents, RunEnded)) and app.main.ws.running:
            for prompt in app.main.ws.prompts:
                for label in app.main.ws.labels[1:]:
                    d = app.main.ws.divergence(prompt, label)
                    if d is not None:
                        seen.setdefault((prompt.id, label), d)

    app = app_for(prompt_file(tmp_path, "The capital of France is", "1, 2, 3,"), dtype="bfloat16", max_new_tokens=8)
    async with app.run_test(size=(120, 40), message_hook=look) as pilot:
        await pilot.press("R")
        ws = app.main.ws  # (a cached model can run it within a frame: wait for the results)
        await wait_until(
            pilot, lambda: not app.main.ws.running and all(ws.divergence(p, "hf-left") for p in ws.prompts), 300
        )
        assert len(seen) == len(ws.prompts) * (len(ws.labels) - 1)
        for (pid, label), d in seen.items():
            assert ws.divergence(ws.get(pid), label) == d


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
        app.main.workbench.prompt_list.highlighted = 1
        await pilot.pause()
        assert "not run: " in column(app.main, "hf-single").tokens.content.plain
        assert "can't run" in plain(app.main.query_one("#panel"))


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
        assert f"row {main.workbench.current_number}/16" in column(main, "hf-left").border_subtitle


@pytest.mark.slow
def test_r_right_after_start_does_not_race_the_preload(tmp_path):
    """A fresh process: preload and the first run both need transformers; neither may see it half-imported."""
    script = f"""
import asyncio, sys
sys.path.insert(0, {str(REPO / "tests")!r})
from app_helpers import app_for, running, notifications, prompt_file
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


async def test_a_run_worker_that_dies_unexpectedly_is_said_and_ends_the_run(tmp_path, monkeypatch):
    """A fault outside the Session's own error handling (a bug in the worker) reaches the app's one
    failure handler: a notification names it and no surface goes on saying the run runs."""

    def broken(*args, **kwargs):
        raise RuntimeError("boom in the worker")

    monkeypatch.setattr("gendiff.tui.run_controller.run_engines", broken)
    app = app_for(prompt_file(tmp_path, "first", "second"))
    async with app.run_test(size=(160, 40)) as pilot:
        main, ws = app.main, app.main.ws
        await pilot.press("R")
        await wait_until(pilot, lambda: any("boom in the worker" in m for m in notifications(app)), timeout=20)
        await wait_until(pilot, lambda: not ws.running, timeout=20)
        await pilot.pause()
        assert not running(app) and "stopped on an error" in strip_text(main), strip_text(main)
        assert all(c.state != "running" for p in ws.prompts for c in p.cells.values())

"""Every surface says what the state says: the strip, the row marks, the header, the titles, the
panel's readings and the exports, driven through the real app (Pilot) with real engines on the
demo model where a run is needed, hand-made snapshots where it is not."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
from helpers import ENVIRONMENT, step, trace

from gendiff.demo import demo_prompts_path
from gendiff.engines.steps import TraceBuilder
from gendiff.io.documents import open_document
from gendiff.io.snapshots import save_snapshot
from gendiff.records.divergence import compare
from gendiff.records.events import PromptFinished, RunStarted, StepGenerated
from gendiff.records.snapshot import Batch, PromptResult, Snapshot
from gendiff.run.options import RunOptions
from gendiff.state import view
from gendiff.tui.app import GendiffApp, LaunchOptions
from gendiff.tui.messages import RunEvents
from gendiff.tui.screens.settings import CheckList, SettingsScreen
from gendiff.tui.workers import detached

pytestmark = pytest.mark.slow  # the real app, 0.2-4 s a test; the model-running ones longer


def app_for(path=None, other=None, **run):
    run.setdefault("max_new_tokens", 24)
    document = open_document(str(path), str(other) if other else None) if path else None
    return GendiffApp(LaunchOptions(RunOptions(**run), document, None, False, None))


async def wait_until(pilot, condition, timeout=600.0):
    waited = 0.0
    while not condition():
        await pilot.pause(0.1)
        waited += 0.1
        assert waited < timeout, "timed out waiting"


def text_of(widget, width: int = 400) -> str:
    """What a Static shows, as plain text (its content rendered by Rich, wide enough not to wrap)."""
    from rich.console import Console

    console = Console(width=width, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(widget.content)
    return " ".join(console.export_text().split())


def strip(app) -> str:
    return text_of(app.main.query_one("#progress"))


def snapshot_of(ref_steps, other_steps, path) -> str:
    """A one-prompt snapshot of hf-single (reference) and hf-left with these steps."""
    ref, other = trace("hf-single", ref_steps), trace("hf-left", other_steps)
    result = PromptResult(
        "hello", [1, 2, 3], {"hf-single": ref, "hf-left": other}, [compare(ref, other)], id=0,
        batches={"hf-single": 0, "hf-left": 1},
    )  # fmt: skip
    snapshot = Snapshot(
        model={"name": "m", "path": "/m", "dtype": "float32", "attn": "sdpa"},
        decoding={"max_new_tokens": len(ref_steps), "top_k": 2},
        reference="hf-single",
        engines=[
            {"label": "hf-single", "name": "hf-single", "settings": {}, "isolates_prompts": True},
            {"label": "hf-left", "name": "hf-left", "settings": {}},
        ],
        prompts=[result],
        environment=ENVIRONMENT,
        batches=[
            Batch(0, ("hf-single",), (0,), ("hello",), ((1, 2, 3),)),
            Batch(1, ("hf-left",), (0,), ("hello",), ((1, 2, 3),)),
        ],
    )
    save_snapshot(snapshot, path)
    return str(path)


# ── readings say only what was measured ────────────────────────────────────
async def test_an_exact_tie_reads_consistent_with_rounding_until_a_recheck(tmp_path):
    path = snapshot_of([step(5, (5, -0.69), (6, -0.69))], [step(6, (6, -0.69), (5, -0.69))], tmp_path / "tie.json")
    app = app_for(path)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        panel = text_of(app.main.workbench.panel.body)
        assert "exact tie" in panel
        assert "consistent with rounding, not proof of it" in panel
        assert "a float32 re-check tells" in panel
        assert "Rounding, not a bug" not in panel


async def test_after_the_split_the_step_explorer_says_the_prefixes_differ(tmp_path):
    ref = [step(5, (5, -0.1), (6, -0.2)), step(7, (7, -0.1), (8, -0.3)), step(8, (8, -0.1), (9, -0.2))]
    other = [step(6, (6, -0.1), (5, -0.2)), step(9, (9, -0.1), (7, -0.3)), step(9, (9, -0.1), (8, -0.2))]
    app = app_for(snapshot_of(ref, other, tmp_path / "split.json"))
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        await pilot.press("right")  # the step after the divergence at step 0
        await pilot.pause()
        bench = app.main.workbench
        assert bench.step_cursor == 1
        panel = text_of(bench.panel.body)
        assert "different prefixes" in panel and "b computes the teacher-forced view" in panel
        await pilot.press("g", "left")  # back to the divergence: no such note at the split itself
        await pilot.pause()
        assert bench.step_cursor == 0 and "different prefixes" not in text_of(bench.panel.body)


async def test_a_prompt_at_a_time_engine_is_never_titled_with_a_batch(tmp_path):
    path = snapshot_of([step(5, (5, -0.1), (6, -0.5))], [step(5, (5, -0.1), (6, -0.5))], tmp_path / "same.json")
    app = app_for(path, path)  # the compare view: hf-single@B is one of the selectable engines
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.pause()
        bench = app.main.workbench
        while bench.selected_engine != "hf-single@B":
            await pilot.press("tab")
        await pilot.pause()
        assert "batch of" not in bench.panel.border_title
        assert "one prompt at a time" in bench.panel.border_title


# ── progress is progress ───────────────────────────────────────────────────
async def test_rows_mark_each_engine_as_it_finishes_a_prompt_and_the_strip_counts_prompts(tmp_path):
    """Events of a run fed to the run controller (the worker that sends them runs in the slow
    tests below): a prompt an engine finished gets its ● at once, the strip counts prompts done
    by position, never an internal id, and no engine is ✓ before it finished every prompt."""
    file = tmp_path / "prompts.txt"
    file.write_text("one\ntwo\nthree\n")
    app = app_for(file)
    async with app.run_test(size=(200, 50)) as pilot:
        main = app.main
        ws = main.ws
        ws.delete(ws.prompts[0].id)  # ids no longer equal rows: row 1 is id 1
        plan = ws.plan_all()
        clock = iter(float(t) for t in range(100, 10_000))
        run = ws.start(plan, 24, clock=lambda: next(clock))
        ref, other = ws.labels[0], ws.labels[1]
        from gendiff.records.events import EngineLoaded, EngineStarted

        skeleton = Snapshot(model={}, decoding={}, reference=ref, engines=[], prompts=[])
        skeleton.batches.append(Batch(0, tuple(ws.labels), plan.ids, plan.texts, ((1,), (2,))))
        s = step(5, (5, -0.1), (6, -0.4))
        first = trace(ref, [s])
        first = type(first)(ref, plan.ids[0], (1,), (s,), "length")
        events = [
            RunStarted(skeleton, tuple(ws.labels)),
            EngineStarted(ref, 2),
            EngineLoaded(ref, 0.1),
            StepGenerated(ref, plan.ids[0], 0, s),
            PromptFinished(ref, first),
        ]
        main.runner.post_message(RunEvents(run.id, events))
        await pilot.pause()
        rows = [str(main.workbench.prompt_list.get_option_at_index(i).prompt) for i in range(2)]
        marks = "●" + "·" * (len(ws.labels) - 1)
        assert f" {marks} " in rows[0] and f" {marks} " not in rows[1]
        shown = strip(app)
        assert f"{ref} 1/2 prompts · 1 tok" in shown
        assert "✓" not in shown and f"{other} waiting" in shown
        run.cancel.set()
        ws.finish(None)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_the_footer_and_the_column_foots_fit(tmp_path, size):
    path = snapshot_of([step(5, (5, -0.1), (6, -0.5))], [step(6, (6, -0.1), (5, -0.5))], tmp_path / "s.json")
    app = app_for(path)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        from textual.widgets._footer import FooterKey

        keys = [k for k in app.screen.query(FooterKey) if k.display]
        assert keys and all(k.region.right <= size[0] for k in keys)
        assert {"?", "q"} <= {k.key_display or k.key for k in keys}
        for column in app.main.workbench.columns.columns().values():
            if column.display:  # the foot lies on the frame, on screen
                assert column.region.bottom <= size[1] - 1 and column.border_subtitle


# ── settings that tell the truth ───────────────────────────────────────────
async def test_settings_refuse_a_variant_the_command_line_refuses_and_start_on_the_first_field(isolated_config):
    app = app_for()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen), 10)
        await pilot.pause()
        assert app.focused is app.screen.query_one("#set-variant")
        await pilot.press(*"hf-left:bogus=1", "enter")
        await pilot.pause()
        assert "unknown option 'bogus'" in text_of(app.screen.query_one("#settings-error"))
        engines = app.screen.query_one("#set-engines", CheckList)
        assert "hf-left:bogus=1" not in engines.labels
        for _ in range(15):  # clear the field, then tab: the next field on screen is the engine list
            await pilot.press("backspace")
        await pilot.press("tab")
        assert app.focused is engines
        before = list(engines.labels)
        await pilot.press("ctrl+s")
        await pilot.pause()
    app2 = app_for()
    async with app2.run_test(size=(160, 50)) as pilot:
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app2.screen, SettingsScreen), 10)
        await pilot.pause()
        assert app2.screen.query_one("#set-engines", CheckList).labels == before  # a stable order
    saved = isolated_config / "config.json"
    assert not saved.exists() or "bogus" not in saved.read_text()


async def test_a_corrupt_config_is_a_startup_note_and_is_left_as_it_is(isolated_config):
    config = isolated_config / "config.json"
    config.write_text('{"theme": "gendiff-dark", "settings": {')  # cut JSON
    app = app_for()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        notes = [n.message for n in app._notifications]
        assert any("config.json: not valid JSON" in n for n in notes)
        await pilot.press("t")  # a theme change would save: it must not overwrite the user's file
        await pilot.pause()
        assert any("not saved" in n.message for n in app._notifications)
    assert config.read_text() == '{"theme": "gendiff-dark", "settings": {'


async def test_a_config_folder_that_cannot_be_written_says_settings_were_not_saved(tmp_path, monkeypatch):
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("GENDIFF_CONFIG_DIR", str(blocked / "gendiff"))  # under a file: no folder can be made
    app = app_for()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("t")
        await pilot.pause()
        assert any("not saved" in n.message for n in app._notifications)
        assert not any(n.message.startswith("settings applied and saved") for n in app._notifications)


# ── q always quits; keys typed at start are kept ───────────────────────────
async def test_q_quits_within_a_second_while_a_worker_is_blocked(tmp_path):
    path = snapshot_of([step(5, (5, -0.1), (6, -0.5))], [step(6, (6, -0.1), (5, -0.5))], tmp_path / "s.json")
    app = app_for(path)
    blocker = threading.Event()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.main.runner.run_worker(detached(lambda: blocker.wait(60)), thread=True, group="run")
        await pilot.pause(0.2)
        started = time.monotonic()
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running or app._exit_renderables is not None, 5)
    assert time.monotonic() - started < 2.0
    blocker.set()


async def test_keys_typed_before_the_first_frame_reach_the_main_screen(tmp_path):
    file = tmp_path / "prompts.txt"
    file.write_text("one\ntwo\nthree\n")
    app = app_for(file)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("down", "down")  # no pause before: typed while the app starts
        await pilot.pause()
        assert app.main.workbench.current_number == 3


# ── real runs: cancel, export mid-run, recheck ─────────────────────────────
def prompts_file(tmp_path, count=6):
    file = tmp_path / "prompts.txt"
    file.write_text("".join(f"Once upon a time, prompt {i} said\n" for i in range(count)))
    return file


async def test_a_cancelled_run_is_never_shown_finished_and_its_export_keeps_what_finished(tmp_path, monkeypatch):
    # The engines after the reference take 20 ms a step, so the run is certainly still going when
    # the export is written and when escape is pressed (on a fast machine it used to end first).
    original = TraceBuilder.add

    def slow_add(self, row, step):
        if self.engine != "hf-single":
            time.sleep(0.02)
        original(self, row, step)

    monkeypatch.setattr(TraceBuilder, "add", slow_add)
    app = app_for(prompts_file(tmp_path), max_new_tokens=32)
    async with app.run_test(size=(200, 60)) as pilot:
        main = app.main
        await pilot.press("R")
        ws = main.ws
        # the reference has finished at least one prompt: export now (mid-run)
        await wait_until(pilot, lambda: ws.run is not None and ws.run.engines[ws.reference].done >= 1)
        await pilot.press("x")
        await pilot.pause()
        out = tmp_path / "mid.json"
        field = app.screen.query_one("#export-path")
        field.value = str(out)
        await pilot.press("enter")
        await wait_until(pilot, lambda: out.exists(), 60)
        assert ws.running, "the run is still going after the mid-run export"
        await pilot.press("escape")  # cancel the run
        await wait_until(pilot, lambda: not ws.running)
        shown = strip(app)
        for label, engine in ws.run.engines.items():
            if engine.done < engine.prompts:  # did not finish every prompt: never ✓
                assert f"{label} ✓" not in shown
        for prompt in ws.prompts:
            mark = ws.mark(prompt)[0]
            finished_all = all(c.state == "finished" for c in prompt.cells.values())
            assert (mark in ("identical", "diverged")) == finished_all
            # a column foot names the dtype an engine applied, and nothing for one that never ran here
            for label, cell in prompt.cells.items():
                foot = view.column_foot(ws, prompt, label)
                made = cell.trace is not None and bool(ws.steps(prompt, label))
                # float32 is every engine's here: said once, in the header, never in a foot
                assert "fp32" not in foot and "float32" in view.run_settings(ws), foot
                if not made:  # an engine that never ran this prompt: nothing to say under it
                    assert foot == "", (prompt.id, label, cell.state, foot)
                if cell.state == "cancelled" and not made:  # never reached: not "cancelled here"
                    assert view.cell_note(ws, prompt, label).startswith("not run"), (prompt.id, label)
    data = json.loads(out.read_text())
    assert data["partial"] is True
    finished = [p for p in data["prompts"] if data["reference"] in p["traces"]]
    assert finished, "the prompts the reference had finished are in the mid-run export"
    for p in finished:  # what was exported is a real finished trace, not a stub
        assert p["traces"][data["reference"]]["steps"]
    reopened = GendiffApp(LaunchOptions(RunOptions(), open_document(str(out)), None, False, None))
    async with reopened.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        assert any(reopened.main.ws.steps(p, data["reference"]) for p in reopened.main.ws.prompts)


async def test_f_shows_its_progress_in_the_strip_and_escape_cancels_it(tmp_path):
    file = tmp_path / "demo.txt"
    file.write_text(demo_prompts_path().read_text())  # bfloat16 diverges on some of them
    app = app_for(file, dtype="bfloat16", max_new_tokens=24)
    async with app.run_test(size=(200, 60)) as pilot:
        main = app.main
        await pilot.press("R")
        await wait_until(pilot, lambda: main.ws.run is not None and main.ws.run.ended)
        if main.ws.counts().divergences == 0:
            pytest.skip("no divergence in bfloat16 on these prompts to recheck")
        await pilot.press("n", "f")

        def rechecked() -> bool:
            return any(d.recheck is not None for p in main.ws.prompts for d in p.divergences.values())

        # the float32 copy loads first (seconds on a loaded machine); a fast one may end unseen
        await wait_until(pilot, lambda: main.diagnoser.rechecking or rechecked(), 120)
        if not main.diagnoser.rechecking:
            pytest.skip("the recheck ended before its progress could be read")
        assert "float32 re-check (escape cancels)" in strip(app)
        still_going = main.diagnoser.rechecking
        await pilot.press("escape")
        await wait_until(pilot, lambda: not main.diagnoser.rechecking)
        if not still_going:
            pytest.skip("the recheck ended before escape reached it")
        notes = [n.message for n in app._notifications]
        assert any("recheck cancelled: nothing re-checked" in n for n in notes)
        assert all(d.recheck is None for p in main.ws.prompts for d in p.divergences.values())


# ── text from files stays inert in dialogs; typed keys reach the dialog they open ──
async def test_the_editor_and_the_delete_question_show_escapes_inert_and_saving_keeps_them(tmp_path):
    file = tmp_path / "esc.txt"
    file.write_text("\x1b]0;PWNED\x07 hello\n")
    app = app_for(file)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("e")
        await wait_until(pilot, lambda: app.screen.query("PromptArea"), 10)
        await pilot.pause()
        area = app.screen.query_one("PromptArea")
        assert "\x1b" not in area.text and "\x07" not in area.text and "␛]0;PWNED␇" in area.text
        await pilot.press("end", "!", "ctrl+s")
        await pilot.pause()
        assert app.main.ws.prompts[0].text == "\x1b]0;PWNED\x07 hello!"  # the user's bytes, kept
        await pilot.press("d")
        await pilot.pause()
        assert "\x1b" not in text_of(app.screen.query_one(".dialog-quote"))


async def test_keys_typed_right_after_a_are_the_new_prompt_not_commands(tmp_path):
    file = tmp_path / "prompts.txt"
    file.write_text("one\n")
    app = app_for(file)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("a", "d", "q", "s", "x")  # a burst: delete, quit, settings, export if run as keys
        await wait_until(pilot, lambda: app.screen.query("PromptArea"), 10)
        await pilot.pause()
        assert app.screen.query_one("PromptArea").text == "dqsx"
        assert len(app.main.ws.prompts) == 1 and app.is_running


async def test_a_partial_snapshot_says_what_was_not_finished_not_that_it_was_cancelled(tmp_path):
    path = snapshot_of([step(5, (5, -0.1), (6, -0.5))], [step(6, (6, -0.1), (5, -0.5))], tmp_path / "s.json")
    data = json.loads(open(path).read())
    data["partial"] = True
    data["prompts"][0]["traces"].pop("hf-left")
    data["prompts"][0]["divergences"] = []
    (tmp_path / "partial.json").write_text(json.dumps(data))
    app = app_for(tmp_path / "partial.json")
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        bench = app.main.workbench
        assert "partial snapshot" in text_of(app.main.query_one("#run-line"))
        assert "cancelled" not in text_of(bench.panel.body)
        assert "exported before both engines had finished" in text_of(bench.panel.body)


def test_an_engine_starting_is_posted_at_once_not_held_for_the_next_event():
    """The strip said 'vllm waiting' for 40 s while vLLM loaded: its EngineStarted sat in the
    batch until the next event. Only token steps are coalesced."""
    from gendiff.records.events import EngineStarted
    from gendiff.tui.workers import Batcher

    posted = []
    batcher = Batcher(posted.append, lambda events: list(events))
    batcher(StepGenerated("a", 0, 0, step(5, (5, -0.1))))
    batcher(EngineStarted("b", 3))  # right after: within the coalescing interval
    assert posted and posted[-1][-1] == EngineStarted("b", 3)


async def test_two_engines_streaming_at_once_keep_their_own_progress_marks_and_divergences(tmp_path):
    """A served engine overlapping the reference (Session.run's lanes): their events interleave,
    and every surface still speaks of each engine by its own events: the strip's counts, the
    rows' marks, ✓ for the one that finished, the divergence once both finished a prompt."""
    from gendiff.records.events import EngineFinished, EngineLoaded, EngineStarted
    from gendiff.state import progress

    file = tmp_path / "prompts.txt"
    file.write_text("one\ntwo\n")
    app = app_for(file)
    async with app.run_test(size=(200, 50)) as pilot:
        main = app.main
        ws = main.ws
        plan = ws.plan_all()
        p0, p1 = plan.ids
        run = ws.start(plan, 24)
        ref, served = ws.labels[0], ws.labels[-1]
        skeleton = Snapshot(model={}, decoding={}, reference=ref, engines=[], prompts=[])
        skeleton.batches.append(Batch(0, tuple(ws.labels), plan.ids, plan.texts, ((1,), (2,))))
        five, six = step(5, (5, -0.1), (6, -0.4)), step(6, (6, -0.1), (5, -0.4))

        def made(label, pid, s):
            return type(trace(label, [s]))(label, pid, (pid + 1,), (s,), "length")

        first = [
            RunStarted(skeleton, tuple(ws.labels)),
            EngineStarted(ref, 2),
            EngineStarted(served, 2),
            EngineLoaded(served, 0.1),
            EngineLoaded(ref, 0.1),
            StepGenerated(served, p0, 0, six),
            StepGenerated(ref, p0, 0, five),
            StepGenerated(served, p1, 0, five),
            PromptFinished(served, made(served, p0, six)),
            PromptFinished(ref, made(ref, p0, five)),
        ]
        main.runner.post_message(RunEvents(run.id, first))
        await pilot.pause()
        items = dict(zip(ws.labels, progress.strip(run)))
        assert items[ref].startswith(f"{ref} 1/2 prompts · 1 tok")
        assert items[served].startswith(f"{served} 1/2 prompts · 2 tok")
        assert all(items[x] == f"{x} waiting" for x in ws.labels[1:-1])
        assert "✓" not in strip(app)
        rows = [str(main.workbench.prompt_list.get_option_at_index(i).prompt) for i in range(2)]
        middle = "·" * (len(ws.labels) - 2)
        assert f" ●{middle}● " in rows[0] and f" ·{middle}· " in rows[1]
        d = ws.divergence(ws.get(p0), served)
        assert d is not None and d.step == 0 and (d.reference_step.token_id, d.other_step.token_id) == (5, 6)
        assert ws.divergence(ws.get(p1), served) is None  # the reference has not finished it

        second = [
            StepGenerated(ref, p1, 0, five),
            PromptFinished(served, made(served, p1, five)),
            EngineFinished(served, (made(served, p0, six), made(served, p1, five)), 0.2),
            PromptFinished(ref, made(ref, p1, five)),
        ]
        main.runner.post_message(RunEvents(run.id, second))
        await pilot.pause()
        items = dict(zip(ws.labels, progress.strip(run)))
        assert items[served].startswith(f"{served} ✓ 2/2 · 2 tok")
        assert items[ref].startswith(f"{ref} 2/2 prompts · 2 tok") and "✓" not in items[ref]
        rows = [str(main.workbench.prompt_list.get_option_at_index(i).prompt) for i in range(2)]
        assert f" ●{middle}● " in rows[1]
        d = ws.divergence(ws.get(p1), served)
        assert d is not None and not d.diverged
        run.cancel.set()
        ws.finish(None)


def test_the_strip_breaks_lines_between_entries_never_inside_one():
    from gendiff.display import cells
    from gendiff.state.progress import pack

    items = [
        "hf-single ✓ 16/16 · 408 tok · 0.78s",
        "hf-left 3/16 prompts · 1361 tok · 504.6 tok/s",
        "packed waiting",
        "漢字 wide",
    ]
    for width in range(20, 130):
        lines = pack(items, width).split("\n")
        # every item whole on one line, in order, each line within the width unless one item alone is wider
        assert [part for line in lines for part in line.split(" │ ")] == items
        assert all(cells(line) <= width or " │ " not in line for line in lines)
        # nothing that fits was pushed down: a line plus the next line's first item is too wide
        for line, after in zip(lines, lines[1:]):
            assert cells(line + " │ " + after.split(" │ ")[0]) > width
    assert cells("漢字") == 4


async def test_the_header_breaks_between_its_parts_at_80_columns(tmp_path):
    app = app_for(prompts_file(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        lines = str(app.main.query_one("#run-line").content).split("\n")
        assert len(lines) > 1 and any(line.endswith(f"ref {app.main.ws.reference}") for line in lines)
        assert all(not line.startswith(("·", " ")) and not line.endswith(("·", "ref")) for line in lines)

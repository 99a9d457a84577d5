"""What a reviewer found on the surface: keys offered only where they work (a saved snapshot runs
nothing), the strongest measured verdict first in the panel, the export dialog saying a mid-run
file is partial, the help saying what f does, the settings dialog opening in view at 80×24, the
header naming the dtype before the first run, and the config notes saying what to do."""

from __future__ import annotations

import json
import os
from dataclasses import replace

from app_helpers import FakeRun, app_for, hand_made_snapshot, notifications, plain, prompt_file, step_of

from gendiff.records.bisection import Bisection
from gendiff.records.events import EngineFinished, EngineLoaded, EngineStarted, PromptFinished, StepGenerated
from gendiff.records.recheck import Recheck
from gendiff.records.reconvergence import Reconvergence
from gendiff.state import view
from gendiff.state.cells import RunPlan
from gendiff.state.run import RunState
from gendiff.tui.screens.export import ExportDialog


def with_unrun_prompt(path, partial, alone=False):
    """The hand-made snapshot plus a third prompt no engine ran (``partial``: exported mid-run;
    ``alone``: the only prompt, so the snapshot holds no divergence)."""
    hand_made_snapshot(path)
    data = json.loads(path.read_text())
    unrun = {"text": "third", "token_ids": [], "traces": {}, "divergences": [], "id": 2, "batches": {}}
    data["prompts"] = [unrun] if alone else [*data["prompts"], unrun]
    if alone:
        data["batches"] = []
    if partial:
        data["partial"] = True
    path.write_text(json.dumps(data))
    return path


async def test_a_partial_snapshot_says_a_prompt_was_not_finished_and_offers_no_run_key(tmp_path):
    app = app_for(with_unrun_prompt(tmp_path / "partial.json", partial=True))
    async with app.run_test(size=(150, 42)) as pilot:
        await pilot.pause()
        await pilot.press("end")
        await pilot.pause()
        assert app.main.workbench.current.text == "third"
        panel = plain(app.main.workbench.panel.body)
        assert "not finished when this snapshot was exported" in panel
        assert "r runs" not in panel and "R runs" not in panel


async def test_a_snapshot_says_a_prompt_was_not_run_in_it_and_f_offers_no_run_key(tmp_path):
    app = app_for(with_unrun_prompt(tmp_path / "whole.json", partial=False, alone=True))
    async with app.run_test(size=(150, 42)) as pilot:
        await pilot.pause()
        await pilot.press("end")
        await pilot.pause()
        panel = plain(app.main.workbench.panel.body)
        assert "not run in this snapshot" in panel
        assert "r runs" not in panel and "R runs" not in panel
        await pilot.press("f")
        await pilot.pause()
        said = [m for m in notifications(app) if "nothing to recheck" in m]
        assert said and all("(R)" not in m for m in said), notifications(app)
        await pilot.press("right", "n")  # the step explorer and the next divergence: none here
        await pilot.pause()
        assert any("no tokens to step through" in m for m in notifications(app)), notifications(app)
        assert any(m.startswith("no divergences") for m in notifications(app)), notifications(app)
        assert all("(R)" not in m and "(r)" not in m for m in notifications(app)), notifications(app)


# ── 2: the strongest measured verdict first ────────────────────────────────
async def test_the_recheck_verdict_comes_first_then_reconvergence_then_bisection(tmp_path):
    app = app_for(hand_made_snapshot(tmp_path / "a.json"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        main, ws = app.main, app.main.ws
        prompt = ws.prompts[0]
        d = ws.divergence(prompt, "hf-left")
        assert main.workbench.selected_engine == "hf-left" and d.diverged
        where = dict(reference="hf-single", engine="hf-left", prompt_index=0, step=d.step)
        found = replace(
            d,
            recheck=Recheck("float32", "agrees", None),
            reconvergence=Reconvergence(**where, steps_checked=0, mismatches=(), reproduced=False, error="no replay"),
            bisection=Bisection(**where, tolerance=1e-3, modules=(), reproduced=False, error="no layers"),
        )
        ws.record_diagnosis(prompt.id, d, found)
        main.refresh_all()
        await pilot.pause()
        panel = main.workbench.panel
        lines = [line.strip() for line in plain(panel.body, width=panel.size.width).splitlines() if line.strip()]
        assert panel.scroll_y == 0
        assert lines[0].startswith("recheck: rounding: gone in float32"), lines[:3]
        text = " ".join(lines)
        assert text.index("recheck:") < text.index("re-convergence:") < text.index("bisection:")


async def test_while_f_runs_the_panel_says_the_recheck_is_running_not_press_f(tmp_path):
    app = app_for(hand_made_snapshot(tmp_path / "a.json"))
    async with app.run_test(size=(150, 42)) as pilot:
        await pilot.pause()
        main, ws = app.main, app.main.ws
        prompt = ws.prompts[0]
        assert "a float32 re-check tells (f" in plain(main.workbench.panel.body)  # a near-tie, not re-checked
        ws.recheck = RunState(-1, RunPlan((prompt.id,), (prompt.text,), ()), [], 4)  # as f starts it
        main.refresh_all()
        await pilot.pause()
        panel = plain(main.workbench.panel.body)
        assert "re-check of this call is running" in panel and "(f," not in panel
        ws.recheck.finished("cancelled in the test")


# ── 3, 4: the export dialog and help ───────────────────────────────────────
async def test_the_export_dialog_opened_mid_run_says_the_file_will_be_partial(tmp_path):
    app = app_for(prompt_file(tmp_path, "first", "second"))
    async with app.run_test(size=(150, 42)) as pilot:
        main, ws = app.main, app.main.ws
        ref = ws.labels[0]
        run = FakeRun(main, ws.plan_all())
        await run.post(pilot, run.started(), PromptFinished(ref, run.trace(ref, ws.prompts[0].id, [5, 6])))
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(app.screen, ExportDialog)
        assert "marked partial" in plain(app.screen.query_one("#export-note"))
        await pilot.press("escape")
        await run.end(pilot)
        await pilot.press("x")  # the run over: the whole file, no such line
        await pilot.pause()
        assert isinstance(app.screen, ExportDialog) and not app.screen.query("#export-note")
        await pilot.press("escape")


async def test_help_says_f_rechecks_the_whole_call_and_lists_the_export_dialog_keys(tmp_path):
    app = app_for(hand_made_snapshot(tmp_path / "a.json"))
    async with app.run_test(size=(150, 42)) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        table = " ".join(plain(app.screen.query_one("#help-table"), width=140).split())
        assert "Recheck this divergence" not in table
        assert "every divergence of this prompt's call" in table
        assert "export and save-as dialogs" in table and "Write the file at the path typed" in table


# ── 5: the settings dialog opens in view ───────────────────────────────────
async def test_at_80x24_the_settings_open_with_the_title_the_first_label_and_the_hint_in_view(tmp_path):
    from textual.widgets import Label

    app = app_for(prompt_file(tmp_path, "first"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s")
        await pilot.pause()
        await pilot.pause()
        screen = app.screen
        assert app.focused.id == "set-variant"
        labels = list(screen.query(Label))
        title = next(label for label in labels if "Settings" in str(label.content))
        first = next(label for label in labels if "engine variant" in str(label.content))
        hint = next(label for label in labels if "ctrl+s apply" in str(label.content))
        box = screen.query_one("#settings-box")
        for widget in (title, first, hint, app.focused):
            region = widget.region
            assert region.height >= 1 and screen.region.contains_region(region), (widget, region)
            # drawn, not scrolled away inside the box
            if box in widget.ancestors:
                assert box.region.contains_region(region), (widget, region, box.region)


# ── 6: the header before the first run ─────────────────────────────────────
async def test_before_the_first_run_the_header_names_the_dtype_the_run_will_use(tmp_path):
    app = app_for(prompt_file(tmp_path, "first"), dtype="bfloat16")
    async with app.run_test(size=(150, 42)) as pilot:
        await pilot.pause()
        assert app.main.ws.meta is None  # nothing has run
        header = plain(app.main.query_one("#run-line"), width=150).split(" · ")
        assert "bfloat16" in [part.strip() for part in header], header


# ── 7: the config's notes say what to do ───────────────────────────────────
async def test_a_theme_not_saved_to_a_read_only_config_folder_says_what_to_do(isolated_config, monkeypatch):
    real = os.access

    def access(path, mode, **kwargs):  # what the OS answers a user who may not write there (root may)
        return False if str(path).startswith(str(isolated_config)) and mode & os.W_OK else real(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    app = app_for()
    async with app.run_test(size=(150, 42)) as pilot:
        await pilot.pause()
        await pilot.press("t")
        await pilot.pause()
        said = [m for m in notifications(app) if "not saved" in m]
        assert said, notifications(app)
        assert "pick a writable path" not in said[0]
        assert f"make {isolated_config} writable" in said[0] and "for this session" in said[0]
    assert not (isolated_config / "config.json").exists()


async def test_a_cut_config_file_note_gives_the_position_json_stopped_at(isolated_config):
    text = '{"theme": "gendiff-da'  # cut inside a string that starts at column 11
    (isolated_config / "config.json").write_text(text)
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        column = exc.colno
    assert text[column - 1] == '"'  # the string JSON reports, found independently of gendiff
    app = app_for()
    async with app.run_test(size=(150, 42)) as pilot:
        await pilot.pause()
        notes = [n.message for n in app._notifications if "not valid JSON" in n.message]
        assert notes and f"line 1 column {column}" in notes[0], notes
        assert "starting at," not in notes[0]


async def test_ctrl_s_in_the_settings_with_nothing_changed_says_so(tmp_path):
    app = app_for(prompt_file(tmp_path, "first"))
    async with app.run_test(size=(150, 42)) as pilot:
        await pilot.press("s")
        await pilot.pause()
        before = app.main.options
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.main.options is before
        assert any("nothing changed" in m for m in notifications(app)), notifications(app)


# ── a column foot names no call an engine never reached ────────────────────
async def test_a_prompt_the_cancel_stopped_before_its_engine_reached_it_has_no_call_in_the_foot(tmp_path):
    app = app_for(prompt_file(tmp_path, "first", "second"))
    async with app.run_test(size=(160, 40)) as pilot:
        main, ws = app.main, app.main.ws
        ref, other = ws.labels[0], ws.labels[1]
        run = FakeRun(main, ws.plan_all())
        first, second = ws.prompts
        await run.post(pilot, run.started(), *run.engine_events(ref, {first.id: [5, 6], second.id: [5, 7]}))
        await run.post(pilot, EngineStarted(other, 2), EngineLoaded(other, 0.1))
        await run.post(pilot, StepGenerated(other, first.id, 0, step_of(5)))
        await pilot.press("escape")
        cancelled = (run.trace(other, first.id, [5], "cancelled"), run.trace(other, second.id, [], "cancelled"))
        await run.post(pilot, EngineFinished(other, cancelled, 0.2))
        await run.end(pilot)
        assert view.column_foot(ws, first, ref) == "row 1/2"  # it ran in the call: said
        assert view.column_foot(ws, second, other) == ""  # never reached: no call, no settings
        assert view.column_foot(ws, second, ws.labels[2]) == ""  # never began

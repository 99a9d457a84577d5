"""Pilot tests for problems found trying the app in tmux (the polish pass). Fast."""

from __future__ import annotations

import os

import pytest
from rich.cells import cell_len
from test_snapshots import hand_made_snapshot
from test_tui import app_for, notifications, prompt_file, wait_until
from textual.widgets import Label

from gendiff.tui.screens.choice import Choice


async def test_external_change_dialog_wraps_a_long_path_at_120_wide(tmp_path):
    deep = tmp_path / ("a-rather-long-folder-name-" * 2) / "prompts"
    deep.mkdir(parents=True)
    file = prompt_file(deep, "first")
    app = app_for(file)
    async with app.run_test(size=(120, 40)) as pilot:
        file.write_text("first\nsecond\n")
        await wait_until(pilot, lambda: isinstance(app.screen, Choice), 5)
        await pilot.pause()
        box = app.screen.query_one(".dialog").content_region
        question = app.screen.query(Label).first()
        text = str(question.content)
        assert str(file) in text and text.endswith("since gendiff read it.")
        # inside the dialog, on as many lines as the text needs
        assert question.region.x >= box.x and question.region.right <= box.right
        assert question.region.width * question.region.height >= cell_len(text)
        assert question.region.height >= 2


def footer_keys(app):
    """The keys the footer shows now."""
    from textual.widgets._footer import FooterKey

    return {key.key for key in app.screen.query(FooterKey)}


async def test_snapshot_and_compare_views_hide_keys_that_cannot_apply(tmp_path):
    app = app_for(prompt_file(tmp_path, "first"))
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        assert {"r", "R", "a", "e", "d", "b"} <= footer_keys(app)  # a prompt file: all apply
    snapshot = hand_made_snapshot(tmp_path / "a.json")
    app = app_for(snapshot)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        shown = footer_keys(app)
        assert not shown & {"r", "R", "a", "e", "d", "escape", "s"}, shown  # read-only: nothing runs or edits
        assert {"n", "p", "b", "x"} <= shown
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Add a prompt" not in titles and "Run all prompts" not in titles
        assert "Export a snapshot" in titles
    other = hand_made_snapshot(tmp_path / "b.json")
    app = app_for(snapshot, other)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("n")
        await pilot.pause()
        assert (
            app.main.comparing
            and app.main.ws.divergence(app.main.workbench.current, app.main.workbench.selected_engine) is not None
        )
        shown = footer_keys(app)
        assert "b" not in shown and "f" not in shown, shown  # two machines' runs can't be replayed here
        assert {"n", "o"} <= shown


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


async def test_reload_after_an_external_edit_keeps_results_of_unchanged_prompts(tmp_path, monkeypatch):
    import test_workspace

    file = prompt_file(tmp_path, "first", "second", "third")
    app = app_for(file)
    async with app.run_test(size=(120, 40)) as pilot:
        ws = app.main.ws
        # results as a run leaves them (hand-made traces for the app's engines; no model)
        monkeypatch.setattr(test_workspace, "LABELS", ws.labels)
        plan = ws.plan_all()
        ws.start(plan)
        ws.finish(plan, test_workspace.fake_run(plan.ids, plan.texts, None, set()))
        app.main.refresh_all()
        before = {p.text: {label: c.trace for label, c in p.cells.items()} for p in ws.prompts}
        assert all(t is not None for traces in before.values() for t in traces.values())
        file.write_text("third\nsecond, changed\nfirst\nfourth\n")  # another program reorders and edits
        await wait_until(pilot, lambda: isinstance(app.screen, Choice), 5)
        assert any("keep their results" in str(label.content) for label in app.screen.query(Label))
        await pilot.press("r")
        await pilot.pause()
        assert [p.text for p in ws.prompts] == ["third", "second, changed", "first", "fourth"]
        for prompt in ws.prompts:
            traces = {label: c.trace for label, c in prompt.cells.items()}
            if prompt.text in before:
                assert traces == before[prompt.text]  # the same text: the same results
            else:
                assert all(t is None for t in traces.values())  # new or changed text: not run
        assert any("2 prompts kept their results" in m for m in notifications(app))
        assert app.main.query_one("#prompts").option_count == 4


async def test_during_a_run_the_panel_compares_engines_that_have_finished_the_prompt(tmp_path):
    from test_workspace import fake_trace

    from gendiff.records.events import EngineFinished
    from gendiff.state.progress import RunProgress
    from gendiff.tui.messages import EngineEvent

    app = app_for(prompt_file(tmp_path, "first", "second"))
    async with app.run_test(size=(120, 40)) as pilot:
        main, ws = app.main, app.main.ws
        ref, other, last = ws.labels[0], ws.labels[1], ws.labels[-1]
        main.workbench.selected_engine = other
        # a run under way (as action_run starts one, without the worker: the events come from the test)
        plan = ws.plan_all()
        ws.start(plan)
        main.plan, main.run_progress = plan, RunProgress(list(ws.labels))
        main.refresh_all()
        panel = main.query_one("#panel")
        first, second = ws.prompts

        def finished(label, tokens):
            traces = tuple(fake_trace(label, p.id, p.text, tokens[i], "length") for i, p in enumerate(ws.prompts))
            main.on_engine_event(EngineEvent(main.run_id, EngineFinished(label, traces, 0.1)))

        main.on_engine_event(EngineEvent(main.run_id, EngineFinished(ref, (), 0.0)))  # nothing yet
        await pilot.pause()
        assert f"waiting for {ref} and {other}" in str(panel.content)
        finished(ref, [[5, 6, 7, 8], [5, 6, 7, 8]])
        await pilot.pause()
        assert f"waiting for {other}" in str(panel.content) and ref not in str(panel.content).split("for")[1]
        # the selected engine differs at step 2 on the first prompt, agrees on the second
        finished(other, [[5, 6, 9, 8], [5, 6, 7, 8]])
        await pilot.pause()
        assert main.ws.running and ws.prompts[0].cells[last].state == "running"  # the run goes on
        assert f"{other} diverges from {ref} at step 2" in panel.border_title
        assert "the run goes on" in panel.border_title and "b bisects" not in panel.border_title
        main.query_one("#prompts").highlighted = 1
        await pilot.pause()
        assert f"{other} identical to {ref}" in panel.border_title
        assert "running" not in str(panel.content)
        assert first.cells[other].trace is None  # nothing is recorded before the run reports


async def test_the_finished_marks_follow_prompt_ids_when_r_runs_one_prompt(tmp_path):
    from test_workspace import fake_trace

    from gendiff.records.events import EngineFinished
    from gendiff.state.progress import RunProgress
    from gendiff.tui.messages import EngineEvent

    app = app_for(prompt_file(tmp_path, "first", "second", "third"))
    async with app.run_test(size=(120, 40)) as pilot:
        main, ws = app.main, app.main.ws
        third = ws.prompts[2]
        plan = ws.plan_one(third.id)  # r on the third prompt: a run of one row, id 2
        ws.start(plan)
        main.plan, main.run_progress = plan, RunProgress(list(ws.labels))
        trace = fake_trace(ws.labels[0], third.id, third.text, [5, 6], "length")
        main.on_engine_event(EngineEvent(main.run_id, EngineFinished(ws.labels[0], (trace,), 0.1)))
        await pilot.pause()
        assert main.engines_done(third.id) == "●" + "·" * (len(ws.labels) - 1)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_every_prompt_row_is_one_line_with_emoji_and_three_digit_numbers(tmp_path, size):
    from gendiff.state.progress import RunProgress

    texts = [f"prompt {i}" for i in range(100)] + [
        "🎉 party",
        "🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉",
        "日本語のテキストです。",
        "hello world",
    ]
    app = app_for(prompt_file(tmp_path, *texts))
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        rows = app.main.query_one("#prompts")
        assert rows.option_count == len(texts) and rows.virtual_size.height == len(texts)
        main = app.main  # and while running, with a mark per engine on every row
        plan = main.ws.plan_all()
        main.ws.start(plan)
        main.plan, main.run_progress = plan, RunProgress(list(main.ws.labels))
        main.refresh_all()
        await pilot.pause()
        assert "🎉" in rows.get_option_at_index(100).prompt.plain
        assert rows.virtual_size.height == len(texts)  # no row wrapped onto a second line


async def test_tab_typed_in_the_real_apps_editor_is_text_not_the_engine_key(tmp_path):
    file = prompt_file(tmp_path, "first")
    app = app_for(file)
    async with app.run_test(size=(120, 40)) as pilot:
        engine = app.main.workbench.selected_engine
        await pilot.press("a")
        await pilot.pause()
        await pilot.press(*"Line one", "tab", *"tab here", "ctrl+s")
        await pilot.pause()
        assert [p.text for p in app.main.ws.prompts] == ["first", "Line one\ttab here"]
        assert app.main.workbench.selected_engine == engine  # the main screen's tab (next engine) did not fire


async def test_the_mid_run_comparison_is_what_the_run_records(tmp_path, monkeypatch):
    """With the demo model: every comparison the panel could show mid-run (taken when the engine
    finished) equals the divergence the finished run records."""
    from gendiff.state.workspace import Workspace

    seen = {}  # (prompt id, engine) -> the comparison available as soon as both had finished
    real = Workspace.early_divergence

    def engine_finished(self, engine, traces):
        touched = Workspace.engine_finished.__wrapped__(self, engine, traces)
        for pid in touched:
            prompt = self.get(pid)
            for label in self.labels[1:]:
                d = real(self, prompt, label, app.main.options.fragile_threshold)
                if d is not None:
                    seen.setdefault((pid, label), d)
        return touched

    engine_finished.__wrapped__ = Workspace.engine_finished
    monkeypatch.setattr(Workspace, "engine_finished", engine_finished)
    app = app_for(prompt_file(tmp_path, "The capital of France is", "1, 2, 3,"), dtype="bfloat16", max_new_tokens=8)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("R")
        ws = app.main.ws  # (a cached model can run it within a frame: wait for the results)
        await wait_until(
            pilot, lambda: not app.main.ws.running and all(ws.divergence(p, "hf-left") for p in ws.prompts), 300
        )
        assert len(seen) == len(ws.prompts) * (len(ws.labels) - 1)
        for (pid, label), d in seen.items():
            assert ws.divergence(ws.get(pid), label) == d

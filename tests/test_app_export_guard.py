"""The app's export dialogs refuse what the CLI refuses (gendiff.io.outputs.check_output): the
prompt file open, the snapshot (or either of the two snapshots) being viewed, a file in the model
folder. Refused in the dialog, one line naming the path, the typed path kept, the file's bytes
unchanged; a path that is none of them is written as before."""

from __future__ import annotations

import json

from gendiff.io.snapshots import load_snapshot
from gendiff.tui.screens.export import ExportDialog
from tests.app_helpers import FakeRun, app_for, hand_made_snapshot, prompt_file, snapshot_pair, wait_until
from tests.test_app_determinism import screen_with_result

SIZE = (140, 40)


async def finish_a_run(app, pilot) -> None:
    """Every engine's traces of every prompt, hand-fed (no model): something to export."""
    main = app.main
    run = FakeRun(main, main.ws.plan_all())
    events = [run.started()]
    for label in main.ws.labels:
        events += run.engine_events(label, {p.id: [5, 6, 7] for p in main.ws.prompts})
    await run.post(pilot, *events)
    await run.end(pilot)
    await wait_until(pilot, lambda: not main.ws.running, 10)


async def refused(app, pilot, typed: str) -> str:
    """Enter ``typed`` in the open export dialog; the dialog must stay, with it; returns what it says."""
    assert isinstance(app.screen, ExportDialog)
    dialog = app.screen
    dialog.query_one("#export-path").value = typed
    await pilot.press("enter")
    await pilot.pause(0.3)  # a write, had one started, would be under way or done by now
    assert app.screen is dialog and not dialog.writing
    assert dialog.query_one("#export-path").value == typed
    said = str(dialog.query_one("#export-error").content)
    assert "\n" not in said and typed in said
    return said


async def written(app, pilot, typed: str) -> None:
    app.screen.query_one("#export-path").value = typed
    await pilot.press("enter")
    await wait_until(pilot, lambda: not isinstance(app.screen, ExportDialog), 30)


async def test_export_over_the_open_prompt_file_is_refused_and_the_file_kept(tmp_path) -> None:
    file = prompt_file(tmp_path, "first", "second")
    before = file.read_bytes()
    app = app_for(file)
    async with app.run_test(size=SIZE) as pilot:
        await finish_a_run(app, pilot)
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ExportDialog))
        said = await refused(app, pilot, str(file))
        assert "the prompt file open in gendiff" in said and "give another path" in said
        # the same file spelled another way is the same file
        said = await refused(app, pilot, str(tmp_path / "." / "prompts.txt"))
        assert "the prompt file open in gendiff" in said
        assert file.read_bytes() == before
        await written(app, pilot, str(tmp_path / "out.gdz"))
        assert any(f"snapshot written to {tmp_path / 'out.gdz'}" in said for said in app.said)
    assert file.read_bytes() == before
    exported = load_snapshot(tmp_path / "out.gdz")
    assert [p.text for p in exported.prompts] == ["first", "second"]
    assert {label: t.token_ids for label, t in exported.prompts[0].traces.items()} == dict.fromkeys(
        app.main.ws.labels, (5, 6, 7)
    )


async def test_export_over_the_snapshot_being_viewed_is_refused(tmp_path) -> None:
    snap = hand_made_snapshot(tmp_path / "snap.json")
    before = snap.read_bytes()
    app = app_for(snap)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ExportDialog))
        said = await refused(app, pilot, str(snap))
        assert "the snapshot open in gendiff" in said
        await written(app, pilot, str(tmp_path / "copy.json"))
    assert snap.read_bytes() == before
    assert [p.text for p in load_snapshot(tmp_path / "copy.json").prompts] == [
        p.text for p in load_snapshot(snap).prompts
    ]


async def test_export_over_either_compared_snapshot_is_refused(tmp_path) -> None:
    a, b = snapshot_pair(tmp_path)
    before = a.read_bytes(), b.read_bytes()
    app = app_for(a, b)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ExportDialog))
        assert "snapshot A" in await refused(app, pilot, str(a))
        assert "snapshot B" in await refused(app, pilot, str(b))
        await pilot.press("escape")
    assert (a.read_bytes(), b.read_bytes()) == before


async def test_export_into_the_model_folder_is_refused(tmp_path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    app = app_for(prompt_file(tmp_path, "first"), model=str(model))
    async with app.run_test(size=SIZE) as pilot:
        await finish_a_run(app, pilot)
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ExportDialog))
        assert "inside the model folder" in await refused(app, pilot, str(model / "out.gdz"))
        await pilot.press("escape")
    assert list(model.iterdir()) == []


async def test_the_determinism_export_over_the_open_prompt_file_is_refused(tmp_path) -> None:
    file = prompt_file(tmp_path, "The capital of France is")
    before = file.read_bytes()
    app = app_for(file)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await screen_with_result(app, pilot)
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ExportDialog))
        assert "the prompt file open in gendiff" in await refused(app, pilot, str(file))
        assert file.read_bytes() == before
        await written(app, pilot, str(tmp_path / "det.json"))
        assert app.screen is screen
    assert file.read_bytes() == before
    assert json.loads((tmp_path / "det.json").read_text())["protocol"] == "needle"


async def test_the_path_typed_right_after_x_goes_into_the_dialog(tmp_path):
    """x, ctrl+u, a path and enter sent at once (as a terminal delivers a typed burst), before the
    dialog is up: the keys are held for it and replayed there in order, and the file is written."""
    from textual import events

    app = app_for(hand_made_snapshot(tmp_path / "snap.json"))
    out = tmp_path / "typed.json"
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        keys = [("x", "x"), ("ctrl+u", None), *((c, c) for c in str(out)), ("enter", None)]
        for key, character in keys:  # all queued before the dialog mounts
            app.post_message(events.Key(key, character))
        await wait_until(pilot, out.exists, 30)
        await pilot.pause()
    assert len(load_snapshot(out).prompts) == len(load_snapshot(tmp_path / "snap.json").prompts)

"""What a reviewer found on the surface: keys offered only where they work (a saved snapshot runs
nothing), the strongest measured verdict first in the panel, the export dialog saying a mid-run
file is partial, the help saying what f does, the settings dialog opening in view at 80×24, the
header naming the dtype before the first run, and the config notes saying what to do."""

from __future__ import annotations

import json

from app_helpers import app_for, hand_made_snapshot, notifications, plain


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

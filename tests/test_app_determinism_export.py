"""The determinism screen's export (x, the main screen's dialog): the JSON ``gendiff determinism
--json`` writes for the same run, written atomically; a cancelled run's file is marked partial
as the screen shows it; nothing to export while a run goes or before one."""

from __future__ import annotations

import json
import threading

import pytest

from gendiff.tui.screens import determinism as screen_module
from gendiff.tui.screens.export import ExportDialog
from tests.app_helpers import app_for, prompt_file, wait_until
from tests.test_app_determinism import COMPLETIONS, open_screen, screen_with_result, stand_in_worker


async def export_to(app, pilot, target) -> None:
    await pilot.press("x")
    await wait_until(pilot, lambda: isinstance(app.screen, ExportDialog))
    assert "JSON, whatever the name" in str(app.screen.query_one("#export-formats").content)
    app.screen.query_one("#export-path").value = str(target)
    await pilot.press("enter")
    await wait_until(pilot, lambda: not isinstance(app.screen, ExportDialog), 30)


async def test_a_cancelled_run_exports_marked_partial(tmp_path, monkeypatch) -> None:
    started = threading.Event()
    monkeypatch.setattr(screen_module, "run_determinism", stand_in_worker(started))
    app = app_for(prompt_file(tmp_path, "The capital of France is"), engines=("hf-right",))
    target = tmp_path / "out" / "partial.json"
    target.parent.mkdir()
    target.write_text("an older file, replaced whole\n")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_screen(app, pilot)
        await pilot.press("x")  # nothing run yet
        await pilot.pause()
        assert not isinstance(app.screen, ExportDialog) and "nothing to export yet" in app.said[-1]
        await pilot.press("R")
        await wait_until(pilot, lambda: started.is_set() and screen.running)
        await pilot.press("x")  # a run goes: its result is not known yet
        await pilot.pause()
        assert not isinstance(app.screen, ExportDialog) and "the protocol is running" in app.said[-1]
        await pilot.press("escape")
        await wait_until(pilot, lambda: screen.result is not None)
        await export_to(app, pilot, target)
        assert app.screen is screen
        assert any(f"written to {target} (partial: 3 of 8 trials)" in said for said in app.said), app.said
        await pilot.press("q")
    data = json.loads(target.read_text())
    # the stand-in's three trials of eight, as the screen shows them ("cancelled after 3 of 8")
    assert data["partial"] is True and data["planned"] == 8 and len(data["trials"]) == 3
    assert data["engines"]["hf-right"]["completions"] == [list(c) for c in COMPLETIONS[:3]]
    assert data["protocol"] == "needle" and data["errors"] == {}
    assert sorted(p.name for p in target.parent.iterdir()) == ["partial.json"]  # no temp file left


async def test_a_path_that_cannot_be_written_is_said_in_the_dialog(tmp_path) -> None:
    app = app_for(prompt_file(tmp_path, "The capital of France is"))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await screen_with_result(app, pilot)
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ExportDialog))
        bad = str(tmp_path / "no-such-folder" / "x.json")
        app.screen.query_one("#export-path").value = bad
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ExportDialog) and app.screen.query_one("#export-path").value == bad
        assert "does not exist" in str(app.screen.query_one("#export-error").content)
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is screen)


@pytest.mark.slow
async def test_the_export_is_the_cli_json_for_the_same_run(tmp_path) -> None:
    """The demo model, hf-single and hf-right, 2 trials of 3 tokens (needle, seed 0): the screen's
    export and ``gendiff determinism --json`` parse to the same document (it holds no timings),
    and each completion is that of a plain greedy loop written here."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gendiff.cli.main import main
    from gendiff.demo import demo_model_path, demo_prompts_path
    from gendiff.io.prompts import PromptBook

    prompts = PromptBook.load(demo_prompts_path()).prompts[:3]
    file = prompt_file(tmp_path, *prompts)
    engines, tokens = ("hf-single", "hf-right"), 3
    exported = tmp_path / "screen.json"
    app = app_for(file, engines=engines, max_new_tokens=tokens, stop_at_eos=False)
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await open_screen(app, pilot)
        screen.setup.highlighted = 1
        for _ in range(4):  # trials 8 -> 5 -> 4 -> 3 -> 2
            await pilot.press("left")
        assert screen.setup.trials == 2
        await pilot.press("R")
        await wait_until(pilot, lambda: screen.result is not None, timeout=900)
        assert not screen.result.partial
        await export_to(app, pilot, exported)
        await pilot.press("q")
    printed = tmp_path / "cli.json"
    argv = ["determinism", "needle", "--prompts", str(file), "--engines", ",".join(engines), "--trials", "2"]
    argv += ["--max-new-tokens", str(tokens), "--no-stop-at-eos", "--quiet", "--json", str(printed)]
    assert main(argv) == 0
    screen_data, cli_data = json.loads(exported.read_text()), json.loads(printed.read_text())
    assert screen_data == cli_data
    assert "partial" not in screen_data and len(screen_data["trials"]) == 2
    model = AutoModelForCausalLM.from_pretrained(str(demo_model_path()), dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(demo_model_path()))
    ids = list(tokenizer(prompts[0])["input_ids"])
    with torch.no_grad():
        for _ in range(tokens):
            ids.append(int(torch.argmax(model(torch.tensor([ids])).logits[0, -1].float())))
    greedy = ids[-tokens:]
    for label in engines:  # float32: each trial, alone or beside fillers, as the plain loop
        assert screen_data["engines"][label]["completions"] == [greedy, greedy]

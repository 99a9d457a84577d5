"""The determinism screen (D) without a model: a hand-made protocol result laid out at three
terminal sizes (the table, the bars, the pairs; nothing cut off), a split opened in the usual
divergence view, model text shown inert, and a run (a stand-in worker) cancelled with escape:
what finished is shown, marked partial. The numbers asserted are counted here from the
hand-made completions."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from gendiff.records.determinism import Determinism, Trial, spread
from gendiff.records.trace import TokenStep, TopToken, Trace
from gendiff.tui.messages import DeterminismEnded, DeterminismEvents
from gendiff.tui.screens import determinism as screen_module
from gendiff.tui.screens.determinism import DeterminismScreen
from gendiff.tui.screens.split_view import SplitScreen
from tests.app_helpers import app_for, plain, prompt_file, wait_until

TEXTS = {11: " The", 12: " capital", 13: " of", 14: " France", 15: " is", 16: " Paris", 20: " city", 21: "\x1b[31mX"}
MODE = (11, 12, 13, 14, 15, 16)
COMPLETIONS = [MODE] * 6 + [(11, 12, 13, 20, 15, 16), (11, 12, 13, 14, 15, 21)]


def step(token: int, other: int, margin: float) -> TokenStep:
    top = (TopToken(token, TEXTS[token], -0.5), TopToken(other, TEXTS[other], -0.5 - margin))
    return TokenStep(token, TEXTS[token], -0.5, top)


def trace(ids: tuple[int, ...]) -> Trace:
    alternatives = {3: (20, 14), 5: (21, 16)}
    steps = []
    for i, t in enumerate(ids):
        pair = alternatives.get(i, (12 if t != 12 else 11,))
        other = next(x for x in pair if x != t)
        steps.append(step(t, other, 0.0004 if i in alternatives else 3.0))
    return Trace("hf-right", 0, (1, 2, 3), tuple(steps), "length", {"dtype": "bfloat16"})


def fake_result(count: int = len(COMPLETIONS), partial: bool = False) -> Determinism:
    completions = COMPLETIONS[:count]
    classes = {6: "near-tie", 7: "wide flip"}
    s = spread(list(completions), {k: v for k, v in classes.items() if k < count}, TEXTS)
    trials = tuple(Trial((0,), 0) if i == 0 else Trial((1, 0, 2), 1) for i in range(count))
    return Determinism(
        "needle",
        0,
        ("The capital of France is", "filler one", "filler two"),
        trials,
        {"hf-right": list(completions)},
        {"hf-right": s},
        partial=partial,
        planned=len(COMPLETIONS),
        traces={"hf-right": [trace(c) for c in completions]},
    )


async def open_screen(app, pilot):
    await pilot.press("D")
    await wait_until(pilot, lambda: isinstance(app.screen, DeterminismScreen))
    return app.screen


async def screen_with_result(app, pilot):
    """The determinism screen open, showing a finished hand-made result (fake_result)."""
    screen = await open_screen(app, pilot)
    screen.post_message(DeterminismEnded(0, fake_result()))
    await wait_until(pilot, lambda: screen.result is not None)
    return screen


def screen_text(screen, width):
    return "\n".join(plain(screen.query_one(f"#{name}"), width) for name in ("det-table", "det-histogram"))


def table_rows(screen):
    table = screen.query_one("#det-splits")
    return [[plain_cell(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def plain_cell(cell) -> str:
    return getattr(cell, "plain", str(cell))


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)])
async def test_result_layout_and_keys(tmp_path, size) -> None:
    app = app_for(prompt_file(tmp_path, "The capital of France is", "filler one"))
    async with app.run_test(size=size) as pilot:
        screen = await screen_with_result(app, pilot)
        counts = Counter(COMPLETIONS)
        unique, best = len(counts), max(counts.values())
        text = screen_text(screen, 400)
        assert f"{unique} unique of {len(COMPLETIONS)}" in text
        assert f"{best / len(COMPLETIONS):.4f}" in text  # TARr@N
        # the first split positions, counted here: step 3 once, step 5 once
        splits = Counter(next(i for i, (a, b) in enumerate(zip(MODE, c)) if a != b) for c in COMPLETIONS if c != MODE)
        assert ", ".join(f"{k}: {v}" for k, v in sorted(splits.items())) in text
        assert "step 3 │" in text and "step 5 │" in text and "█" in text
        rows = table_rows(screen)
        # "7 vs 1": trials still on the most common through step 3, and the one that left it there
        assert rows[0][1:7] == ["3", '"␣France"', "7", '"␣city"', "1", "near-tie"]
        assert rows[1][1:7] == ["5", '"␣Paris"', "6", '"␛[31mX"', "1", "wide flip"]
        assert "\x1b" not in "".join("".join(r) for r in rows) + text  # the model's text is inert
        # nothing cut off: every widget inside the screen, the table's rows drawn in full
        for widget in screen.query("#det-setup, #det-table, #det-histogram, #det-splits, #det-progress"):
            if widget.display:
                region = widget.region
                assert region.right <= size[0] and region.x >= 0, widget.id
        assert screen.query_one("#det-splits").virtual_size.height >= len(rows) + 1
        # the splits have the focus and are on screen (at 80x24 they were below it, enter acting unseen)
        await pilot.pause()
        splits = screen.query_one("#det-splits")
        body = screen.query_one("#det-body").region
        assert app.focused is splits
        assert splits.region.y < body.bottom and splits.region.bottom > body.y, (splits.region, body)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, DeterminismScreen))
        await open_screen(app, pilot)
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, timeout=5)


async def test_a_split_opens_the_divergence_view(tmp_path) -> None:
    app = app_for(prompt_file(tmp_path, "The capital of France is"))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await screen_with_result(app, pilot)
        table = screen.query_one("#det-splits")
        table.focus()
        table.move_cursor(row=0)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, SplitScreen))
        view = app.screen
        ws = view.ws
        assert ws.labels == ["trial 1 (most common)", "trial 7"]  # 1-based; trial 7 left at step 3
        d = ws.divergence(ws.prompts[0], "trial 7")
        assert d is not None and d.step == 3
        panel = plain(view.workbench.panel.body, 118)
        assert "city" in panel and "France" in panel  # the top-k at the split, both sides
        # r, R, b and f are off here: nothing on this screen offers them
        title = view.workbench.panel.border_title
        offered = panel + " " + title
        assert "(f," not in offered and "(r)" not in offered and "b bisects" not in offered, offered
        assert "deleted" not in title, title
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, DeterminismScreen))
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, timeout=5)


def stand_in_worker(started: threading.Event):
    """A protocol run without a model: three trials finish, then it waits to be cancelled and
    answers with those three, partial (what run_protocol returns on a cancel)."""

    def stand_in(post, run_id, options, protocol, prompt, others, trials, seed, max_batch, cancel) -> None:
        from gendiff.records.events import EngineFinished, EngineLoaded, EngineStarted, RunStarted, StepGenerated
        from gendiff.records.snapshot import Snapshot

        meta = Snapshot({}, {}, "hf-right", [], [])
        made = TokenStep(11, " The", -0.5, (TopToken(11, " The", -0.5),))
        for _ in range(3):  # three trials finish, then the run waits to be cancelled
            post(DeterminismEvents(run_id, [RunStarted(meta, ("hf-right",)), EngineStarted("hf-right", 1)]))
            post(DeterminismEvents(run_id, [EngineLoaded("hf-right", 0.0)]))
            time.sleep(0.01)  # a generation speed: the estimate counts generating time only
            post(DeterminismEvents(run_id, [StepGenerated("hf-right", 0, 0, made)]))
            post(DeterminismEvents(run_id, [EngineFinished("hf-right", (), 0.1)]))
        started.set()
        assert cancel.wait(30)
        post(DeterminismEnded(run_id, fake_result(3, partial=True)))

    return stand_in


async def test_escape_cancels_a_run_and_shows_it_partial(tmp_path, monkeypatch) -> None:
    started = threading.Event()
    monkeypatch.setattr(screen_module, "run_determinism", stand_in_worker(started))
    app = app_for(prompt_file(tmp_path, "The capital of France is"), engines=("hf-right",))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_screen(app, pilot)
        await pilot.press("R")
        await wait_until(pilot, lambda: started.is_set() and screen.progress.done["hf-right"] == 3)
        strip = plain(screen.query_one("#det-progress"), 400)
        assert "trial 3/8" in strip and "hf-right 3/8" in strip and "escape cancels" in strip
        assert "left at this speed" in strip  # an estimate once a trial generated
        await pilot.press("escape")
        await wait_until(pilot, lambda: screen.result is not None)
        assert isinstance(app.screen, DeterminismScreen)  # escape cancelled; it did not leave
        text = screen_text(screen, 400)
        assert "partial: cancelled after 3 of 8 trials" in text
        assert "3 of 3 identical" in text
        assert "partial" in plain(screen.query_one("#det-progress"), 400)
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, timeout=5)


@pytest.mark.slow
async def test_the_screen_shows_what_the_cli_prints(tmp_path, capsys) -> None:
    """The demo model, hf-single and hf-right, 3 trials of 4 tokens (seed 0): the screen's table is
    the CLI's for the same prompts and seed line for line, its numbers are those counted here from
    the trials' completions, and each completion is that of a plain greedy loop written here."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gendiff.cli.main import main
    from gendiff.demo import demo_model_path, demo_prompts_path
    from gendiff.io.prompts import PromptBook

    prompts = PromptBook.load(demo_prompts_path()).prompts[:4]
    file = prompt_file(tmp_path, *prompts)
    engines, tokens = ("hf-single", "hf-right"), 4
    app = app_for(file, engines=engines, max_new_tokens=tokens, stop_at_eos=False)
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await open_screen(app, pilot)
        for _ in range(3):  # trials 8 -> 5 -> 4 -> 3
            screen.setup.highlighted = 1
            await pilot.press("left")
        assert screen.setup.trials == 3
        await pilot.press("R")
        await wait_until(pilot, lambda: screen.result is not None, timeout=900)
        result = screen.result
        shown = [line.rstrip() for line in plain(screen.query_one("#det-table"), 400).splitlines() if line.strip()]
        await pilot.press("q")
    argv = ["determinism", "needle", "--prompts", str(file), "--engines", ",".join(engines), "--trials", "3"]
    assert main([*argv, "--max-new-tokens", str(tokens), "--no-stop-at-eos", "--quiet"]) == 0
    printed = [line.rstrip() for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert shown == printed
    assert not result.partial and len(result.trials) == 3
    model = AutoModelForCausalLM.from_pretrained(str(demo_model_path()), dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(demo_model_path()))
    ids = list(tokenizer(prompts[0])["input_ids"])
    with torch.no_grad():
        for _ in range(tokens):
            ids.append(int(torch.argmax(model(torch.tensor([ids])).logits[0, -1].float())))
    greedy = tuple(ids[-tokens:])
    for label in engines:
        completions = result.completions[label]
        assert completions == [greedy] * 3  # float32: every trial, alone or co-batched, as the plain loop
        counts = Counter(completions)
        line = next(line for line in shown if line.strip().startswith(label))
        unique, best = len(counts), max(counts.values())
        words = f"{best} of 3 identical" if unique == 1 else f"{unique} unique of 3"
        assert words in line and f"{best / 3:.4f}" in line


async def test_q_quits_while_a_protocol_runs(tmp_path, monkeypatch) -> None:
    started = threading.Event()
    monkeypatch.setattr(screen_module, "run_determinism", stand_in_worker(started))
    app = app_for(prompt_file(tmp_path, "The capital of France is"), engines=("hf-right",))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_screen(app, pilot)
        await pilot.press("R")
        await wait_until(pilot, lambda: started.is_set())
        assert screen.running
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, timeout=5)
    assert screen.cancel.is_set()  # the run was told to stop


@pytest.mark.parametrize("size", [(80, 24), (160, 50)])
def test_screenshot(snap_compare, tmp_path, size) -> None:
    """The screen with the hand-made result (read the SVG's text before accepting an update)."""

    async def show(pilot) -> None:
        screen = await open_screen(pilot.app, pilot)
        screen.post_message(DeterminismEnded(0, fake_result()))
        await wait_until(pilot, lambda: screen.result is not None)

    app = app_for(prompt_file(tmp_path, "The capital of France is", "filler one"))
    assert snap_compare(app, run_before=show, terminal_size=size)


async def test_the_palette_opens_the_screen(tmp_path) -> None:
    app = app_for(prompt_file(tmp_path, "The capital of France is"))
    async with app.run_test(size=(120, 40)) as pilot:
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        await commands["Determinism protocols"].callback()
        await wait_until(pilot, lambda: isinstance(app.screen, DeterminismScreen))
        assert app.screen.setup.selected == list(app.main.options.labels)  # the main screen's engines


async def test_a_worker_that_dies_is_said_and_the_app_lives_on(tmp_path, monkeypatch) -> None:
    def broken(*args) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(screen_module, "run_determinism", broken)
    app = app_for(prompt_file(tmp_path, "The capital of France is"), engines=("hf-right",))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_screen(app, pilot)
        await pilot.press("R")
        await wait_until(pilot, lambda: not screen.running)
        assert app.is_running and "stopped unexpectedly" in plain(screen.query_one("#det-progress"), 300)
        assert any("boom" in said for said in app.said), app.said
        await pilot.press("escape")  # nothing runs: back to the main screen
        await wait_until(pilot, lambda: not isinstance(app.screen, DeterminismScreen))


async def test_at_80x24_the_splits_of_four_engines_are_focused_and_on_screen(tmp_path) -> None:
    from dataclasses import replace

    one = fake_result()
    labels = ["hf-single", "hf-left", "hf-right", "packed"]
    four = replace(
        one,
        completions={label: one.completions["hf-right"] for label in labels},
        spreads={label: one.spreads["hf-right"] for label in labels},
        traces={label: one.traces["hf-right"] for label in labels},
    )
    app = app_for(prompt_file(tmp_path, "The capital of France is", "filler one"))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_screen(app, pilot)
        screen.post_message(DeterminismEnded(0, four))
        await wait_until(pilot, lambda: screen.result is not None)
        await pilot.pause()
        splits, body = screen.query_one("#det-splits"), screen.query_one("#det-body")
        assert app.focused is splits
        visible = body.content_region
        # the table's first rows lie inside the scrolled body's visible area (they were at y 39 of 24)
        assert visible.y <= splits.region.y < visible.bottom, (splits.region, visible)

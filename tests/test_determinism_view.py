"""What the determinism screen draws, without the app: the bars (lengths in eighths of a cell,
counted here), the histogram lines, a split as a two-column Workspace (its divergence at the
split's step, found here by hand), and the progress of a run from its events (a hand-made clock)."""

from __future__ import annotations

from gendiff.records.determinism import Determinism, Trial, spread
from gendiff.records.events import EngineFinished, EngineLoaded, EngineStarted, RunStarted, StepGenerated
from gendiff.records.snapshot import Snapshot
from gendiff.records.trace import TokenStep, TopToken, Trace
from gendiff.state.determinism import bar, histogram_lines, split_workspace, table_lines
from gendiff.state.determinism_progress import TrialProgress
from gendiff.state.view import batch_title


def cells(text: str) -> float:
    """A bar's length in cells: full blocks, plus the eighths of the last one."""
    eighths = {ch: i for i, ch in enumerate(" ▏▎▍▌▋▊▉█")}
    return sum(eighths[ch] for ch in text) / 8


def test_bars_are_proportional_to_an_eighth_of_a_cell() -> None:
    assert cells(bar(8, 8, 20)) == 20
    assert cells(bar(4, 8, 20)) == 10
    assert cells(bar(3, 8, 10)) == round(3 / 8 * 10 * 8) / 8  # 3.75 cells: "███▊"
    assert bar(1, 1000, 10) == "▏"  # a count above zero is never an empty bar
    assert bar(0, 8, 10) == ""


def test_histogram_lists_every_split_step_and_the_rest() -> None:
    mode = (1, 2, 3, 4)
    completions = [mode] * 5 + [(1, 2, 9, 4)] * 2 + [(1, 9, 3, 4)]
    lines = histogram_lines(spread(completions), 30)
    assert [line.split("│")[0].split() for line in lines[:2]] == [["step", "1"], ["step", "2"]]
    step1, step2 = (cells(line.split("│")[1].split(" ")[0]) for line in lines[:2])
    assert step2 == 2 * step1  # two trials split at step 2, one at step 1
    room = 30 - len("step 1 │ 2") - 1  # a full bar is all 8 trials, whatever the largest count
    assert step1 == round(1 / 8 * room * 8) / 8, (step1, room)
    assert lines[-1] == "5 of 8 trials as the most common (no split)"
    assert histogram_lines(spread([mode] * 3), 30) == ["no split: 3 of 3 trials identical"]


def step(token: int, other: int) -> TokenStep:
    return TokenStep(token, f"t{token}", -0.6, (TopToken(token, f"t{token}", -0.6), TopToken(other, f"t{other}", -0.9)))


def result_of(completions: list[tuple[int, ...]], partial: bool = False) -> Determinism:
    traces = [Trace("hf-right", 0, (5, 6), tuple(step(t, 99) for t in c), "length") for c in completions]
    trials = tuple(Trial((0,), 0) if i == 0 else Trial((1, 0), 1) for i in range(len(completions)))
    return Determinism(
        "needle",
        3,
        ("watched", "filler"),
        trials,
        {"hf-right": completions},
        {"hf-right": spread(completions, texts={t: f"t{t}" for c in completions for t in c})},
        partial=partial,
        planned=8,
        traces={"hf-right": traces},
    )


def test_a_split_is_a_two_column_workspace_diverging_at_its_step() -> None:
    completions = [(1, 2, 3), (1, 2, 3), (1, 7, 3)]
    ws = split_workspace(result_of(completions), "hf-right", 2)
    assert ws.labels == ["trial 1 (most common)", "trial 3"]
    prompt = ws.prompts[0]
    d = ws.divergence(prompt, "trial 3")
    first = next(i for i, (a, b) in enumerate(zip(completions[0], completions[2])) if a != b)
    assert d is not None and d.diverged and d.step == first == 1
    assert ws.token_ids(prompt, "trial 3") == [1, 7, 3]
    assert ws.batches[1].prompt_ids.index(0) == 1  # trial 3 ran the watched prompt in row 2 of 2
    # its filler was never in this one-prompt list: not "deleted"
    title = batch_title(ws, prompt, "trial 3")
    assert title == "batch of 2: prompt 1 and 1 not in this list" and "deleted" not in title, title


def test_a_partial_result_says_so_in_the_table() -> None:
    lines = table_lines(result_of([(1, 2)] * 3, partial=True))
    assert lines[1] == "  partial: cancelled after 3 of 8 trials"
    assert not any("partial" in line for line in table_lines(result_of([(1, 2)] * 3)))


def test_progress_counts_trials_per_engine_and_estimates_the_rest() -> None:
    now = [100.0]
    progress = TrialProgress(4, ("hf-single", "hf-right"), 2, clock=lambda: now[0])
    assert progress.items()[0].startswith("starting")
    meta = Snapshot({}, {}, "hf-single", [], [])
    progress.apply(RunStarted(meta, ("hf-single", "hf-right")))
    assert progress.seconds_left() is None  # nothing finished: no estimate yet
    for engine in ("hf-single", "hf-right"):
        progress.apply(EngineStarted(engine, 1))
        progress.apply(EngineLoaded(engine, 0.1))
        progress.apply(StepGenerated(engine, 0, 0, step(1, 2)))
        progress.apply(EngineFinished(engine, (), 0.1))
    now[0] = (
        110.0  # 10 s since the start, none of it generating: no speed, so no estimate (tests/test_determinism_estimate.py)
    )
    assert progress.fraction == 2 / 8
    assert progress.seconds_left() is None
    items = progress.items()
    assert items == ["trial 1/4", "hf-single 1/4", "hf-right 1/4", "25%", "escape cancels"]
    progress.apply(RunStarted(meta, ("hf-single", "hf-right")))
    progress.apply(EngineStarted("hf-single", 3))  # a trial of 3 rows: 6 tokens in all
    progress.apply(EngineLoaded("hf-single", 0.1))
    for row in range(3):
        progress.apply(StepGenerated("hf-single", row, 0, step(1, 2)))
    assert progress.items()[1] == "hf-single 1/4 3/6 tokens"
    assert progress.fraction == (2 + 0.5) / 8

"""The statistics of gendiff determinism against an independent count written here (fast tier)."""

from __future__ import annotations

import random

import pytest

from gendiff.records.determinism import layout, spread


def independent(completions: list[tuple[int, ...]]) -> dict:
    """Plain loops: unique, the most common (first seen on ties), each trial's first split
    against it, the (step, common, other) pairs with counts, TARr."""
    seen: list[tuple[int, ...]] = []
    counts: list[int] = []
    for c in completions:
        if c in seen:
            counts[seen.index(c)] += 1
        else:
            seen.append(c)
            counts.append(1)
    mode = seen[counts.index(max(counts))]
    histogram: dict[int, int] = {}
    pairs: dict[tuple, int] = {}
    for c in completions:
        step = 0
        while step < len(mode) and step < len(c) and mode[step] == c[step]:
            step += 1
        if len(mode) == len(c) == step:
            continue
        histogram[step] = histogram.get(step, 0) + 1
        key = (step, mode[step] if step < len(mode) else None, c[step] if step < len(c) else None)
        pairs[key] = pairs.get(key, 0) + 1
    return {
        "unique": len(seen),
        "most_common": max(counts),
        "histogram": histogram,
        "pairs": pairs,
        "tarr": max(counts) / len(completions),
    }


def check(completions: list[tuple[int, ...]]) -> None:
    expected = independent(completions)
    found = spread(completions)
    assert found.unique == expected["unique"]
    assert found.most_common == expected["most_common"]
    assert found.split_histogram == expected["histogram"]
    assert {(s.step, s.common, s.other): s.count for s in found.splits} == expected["pairs"]
    assert found.agreement == pytest.approx(expected["tarr"], abs=0)
    counts = [s.count for s in found.splits]
    assert counts == sorted(counts, reverse=True)  # the most common split first


def test_thinking_machines_shape() -> None:
    """992 of 1000 follow one branch at step 3, 8 another; every completion identical before."""
    common, other = (1, 2, 3, 4, 5), (1, 2, 3, 9, 5)
    completions = [common] * 992 + [other] * 8
    random.Random(1).shuffle(completions)
    check(completions)
    found = spread(completions)
    assert (found.unique, found.most_common, found.split_histogram) == (2, 992, {3: 8})
    assert (found.splits[0].common, found.splits[0].other, found.splits[0].count) == (4, 9, 8)


def test_identical_is_n_of_n() -> None:
    found = spread([(7, 8)] * 5)
    assert (found.unique, found.most_common, found.agreement, found.splits, found.split_histogram) == (
        1,
        5,
        1.0,
        (),
        {},
    )


def test_shorter_and_longer_completions_split_where_one_ends() -> None:
    check([(1, 2, 3), (1, 2, 3), (1, 2), (1, 2, 3, 4), (5,)])
    found = spread([(1, 2, 3), (1, 2, 3), (1, 2)])
    assert (found.splits[0].step, found.splits[0].common, found.splits[0].other) == (2, 3, None)


def test_ties_of_the_most_common_go_to_the_first_seen() -> None:
    found = spread([(2,), (1,), (1,), (2,)])
    assert found.mode_trial == 0 and found.most_common == 2


@pytest.mark.parametrize("seed", range(20))
def test_random_completions(seed: int) -> None:
    rng = random.Random(seed)
    base = [rng.randrange(4) for _ in range(6)]
    completions = []
    for _ in range(rng.randint(1, 40)):
        c = list(base)
        if rng.random() < 0.4:
            at = rng.randrange(len(c))
            c[at:] = [rng.randrange(4) for _ in range(rng.randint(0, 6 - at))]
        completions.append(tuple(c))
    check(completions)


def test_margin_classes_and_texts_are_those_of_the_first_trial_of_a_split() -> None:
    found = spread(
        [(1, 2), (1, 3), (1, 3), (1, 2), (1, 2)], classes={1: "near-tie", 2: "wide-flip"}, texts={2: " a", 3: "b"}
    )
    split = found.splits[0]
    assert (split.first_trial, split.margin_class, split.common_text, split.other_text) == (1, "near-tie", " a", "b")


@pytest.mark.parametrize("protocol", ["needle", "mixed", "prefix"])
def test_batched_layouts_hold_the_watched_prompt_at_their_row(protocol: str) -> None:
    trials = layout(protocol, 30, 5, 6, 8)
    assert trials[0].prompts == (0,)  # the prompt alone first
    for trial in trials[1:]:
        assert 2 <= len(trial.prompts) <= 8
        assert trial.prompts[trial.row] == 0 and trial.prompts.count(0) == 1
        assert all(1 <= p <= 6 for i, p in enumerate(trial.prompts) if i != trial.row)
    assert layout(protocol, 30, 5, 6, 8) == trials  # the seed gives the same layout
    assert layout(protocol, 30, 6, 6, 8) != trials


def test_single_and_repeat_layouts() -> None:
    assert [len(t.prompts) for t in layout("single", 5, 0, 0, 8)] == [1, 2, 3, 4, 5]
    assert all(set(t.prompts) == {0} and 0 <= t.row < len(t.prompts) for t in layout("single", 5, 0, 0, 8))
    assert [t.prompts for t in layout("repeat", 3, 0, 0, 8)] == [(0,)] * 3


def test_table_shows_992_vs_8_with_visible_whitespace() -> None:
    from gendiff.cli.determinism import determinism_table
    from gendiff.records.determinism import Determinism, Trial

    completions = [(1, 2, 3)] * 992 + [(1, 2, 4)] * 8
    found = spread(completions, {992: "near-tie"}, {3: " Queens", 4: " New\x1b[2J"})
    result = Determinism("repeat", 0, ("q",), (Trial((0,), 0),) * 1000, {"e": completions}, {"e": found})
    table = determinism_table(result)
    assert "2 unique of 1000" in table and "0.9920" in table
    assert 'step 2: "␣Queens" 992 vs "␣New␛[2J" 8 (near-tie)' in table
    assert "\x1b" not in table


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["determinism", "needle", "--prompt", "  "], "--prompt is empty"),
        (["determinism", "needle", "--trials", "0"], "--trials"),
        (["determinism", "sideways"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], said: str, capsys) -> None:
    from gendiff.cli.main import main

    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert said in error and len(error.splitlines()) == 1

"""Pure parts of --repeat and --stats: splits, row orders, the summary numbers, JSON round trips."""

from __future__ import annotations

import math
import statistics as pystats

import pytest
from helpers import ENVIRONMENT

from gendiff.records.repeats import Repeats, first_split
from gendiff.records.statistics import DistributionStats, Positions, aggregate, quantile, summarize
from gendiff.run.repeat import orders


def test_first_split_over_any_two_runs():
    assert first_split([(1, 2, 3)] * 5) is None
    assert first_split([(1, 2, 3), (1, 2, 4), (1, 2, 3)]) == 2
    assert first_split([(1, 2, 3), (1, 9, 3), (1, 2, 4)]) == 1  # the earliest split of any pair
    assert first_split([(1, 2, 3), (1, 2)]) == 2  # one run stopped earlier


def test_orders_move_every_prompt_to_a_row_it_has_not_had():
    runs = orders(6, 5)
    assert runs[0] == list(range(6))
    for order in runs:
        assert sorted(order) == list(range(6))
    for prompt in range(6):
        rows = [order.index(prompt) for order in runs]
        assert len(set(rows)) == 5, (prompt, rows)
    assert orders(1, 3) == [[0], [0], [0]]  # one prompt has one row


def test_summary_numbers_match_the_standard_library():
    kld = [0.0, 1e-6, 3e-4, 2e-5, 0.5, 1e-3, 0.0, 7e-2]
    same = [True, True, False, True, False, True, True, True]
    dp = [0.0, -1e-3, 0.2, 1e-4, -0.4, 0.01, 0.0, -0.05]
    stats = summarize(kld, same, dp, [1.0, 2.0])
    assert stats.positions == 8
    assert stats.kld_mean == pytest.approx(pystats.fmean(kld))
    assert stats.kld_median == pytest.approx(pystats.median(kld))
    assert stats.kld_p99 == pytest.approx(pystats.quantiles(kld, n=100, method="inclusive")[98])
    assert (stats.kld_max, stats.kld_max_position) == (0.5, 4)
    assert stats.same_top1 == 0.75
    assert stats.dp_mean == pytest.approx(pystats.fmean(dp))
    assert stats.dp_rms == pytest.approx(math.sqrt(pystats.fmean(v * v for v in dp)))
    assert stats.loss == 1.5 and stats.kld_steps == tuple(kld)
    assert quantile([3.0], 0.99) == 3.0
    empty = summarize([], [], [], [])
    assert empty.positions == 0 and empty.kld_mean is None


def test_aggregate_counts_every_position_once_and_names_the_worst():
    a = Positions(kld={0: 0.1, 1: 0.2}, same={0: True, 1: False}, dp={0: 0.0, 1: 0.1}, nll={0: 1.0, 1: 1.0})
    b = Positions(kld={0: 0.9}, same={0: True}, dp={0: -0.3}, nll={0: 4.0})
    total = aggregate({0: a, 1: b})
    assert total.positions == 3 and total.kld_mean == pytest.approx(0.4)
    assert (total.kld_max_prompt, total.kld_max_position) == (1, 0)
    assert total.loss == pytest.approx(2.0) and total.kld_steps == ()


def test_statistics_and_repeats_round_trip_through_a_validated_snapshot(tmp_path):
    from gendiff.io.snapshots import validate
    from gendiff.records.snapshot import PromptResult, Snapshot

    stats = summarize([0.0, 1e-4], [True, False], [0.0, -0.1], [2.0, 3.0])
    prompt = PromptResult("p", [1, 2])
    prompt.statistics["a"] = stats
    prompt.repeats["a"] = Repeats(5, 2, 3, (0, 1, 2, 3, 4))
    snapshot = Snapshot({"name": "m", "path": "/m"}, {"max_new_tokens": 2, "top_k": 5}, "a", [], [prompt], ENVIRONMENT)
    snapshot.statistics["a"] = aggregate({0: Positions({0: 0.0}, {0: True}, {0: 0.0}, {})})
    data = snapshot.to_dict()
    validate(data, "test")
    back = Snapshot.from_dict(data)
    assert back.prompts[0].statistics["a"] == stats
    assert back.prompts[0].repeats["a"] == Repeats(5, 2, 3, (0, 1, 2, 3, 4))
    assert back.statistics["a"].kld_max_prompt == 0
    assert isinstance(back.statistics["a"], DistributionStats)
    assert "statistics" not in PromptResult("q", [1]).to_dict()  # absent unless --stats ran

"""Per-engine progress lines from a run's events."""

from __future__ import annotations

from gendiff.state.progress import RunProgress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_each_engine_says_what_it_is_doing():
    clock = Clock()
    run = RunProgress(["hf-single", "hf-left", "packed"], clock)
    assert run.lines(32) == ["hf-single waiting", "hf-left waiting", "packed waiting"]
    run.started("hf-single", 3)
    assert run.lines(32)[0] == "hf-single loading…"
    run.loaded("hf-single")
    for _ in range(5):
        run.step("hf-single", 0)
    for _ in range(3):
        run.step("hf-single", 1)
    clock.now += 2.0
    assert run.lines(32)[0] == "hf-single p2/3 3/32 4.0 tok/s"
    run.finished("hf-single", [0, 1, 2], 2.5)
    assert run.lines(32)[0] == "hf-single ✓ 8 tok 2.50s"
    run.started("hf-left", 3)
    run.failed("packed", "out of memory")
    run.cancelled()
    assert run.lines(32)[1:] == ["hf-left cancelled at 0 tok", "packed FAILED"]
    assert run.done_for(1) == ["hf-single"] and run.done_for(5) == []


def test_no_speed_before_a_token():
    clock = Clock()
    run = RunProgress(["a"], clock)
    run.started("a", 1)
    run.loaded("a")
    assert run.lines(8) == ["a 0/8"]

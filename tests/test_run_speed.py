"""An engine's speed in the main run's strip, from hand-made events on a hand-made clock: tokens
over its generation time (the end of its load to its last token), frozen once it stopped, so the
mean that an engine without a speed of its own is estimated at does not drift while the run goes.
Before, a finished engine's clock kept running: its speed, and every estimate at the mean, fell."""

from __future__ import annotations

from gendiff.records.events import EngineFailed, EngineFinished, EngineLoaded, EngineStarted, StepGenerated
from gendiff.state import progress
from gendiff.state.cells import RunPlan
from gendiff.state.run import RunState
from tests.helpers import step, trace

PROMPTS, LIMIT = 2, 8
STEP = step(5, (5, -0.1), (6, -0.4))


def fed_run() -> tuple[RunState, list[float]]:
    """``fast`` loads at 1 s and makes 16 tokens, the last at 5 s, finishing at 5.2 s; ``slow``
    loads at 6 s, makes 3 tokens (the last at 7.5 s) and fails at 8 s; ``later`` waits."""
    now = [0.0]
    run = RunState(1, RunPlan((0, 1), ("a", "b"), (0, 1)), ["fast", "slow", "later"], LIMIT, clock=lambda: now[0])
    run.begun = True

    def at(t: float, event: object) -> None:
        now[0] = t
        run.apply(event)

    at(0.5, EngineStarted("fast", PROMPTS))
    at(1.0, EngineLoaded("fast", 0.5))
    for k in range(1, 17):
        at(1.0 + 0.25 * k, StepGenerated("fast", k % 2, k // 2, STEP))
    done = tuple(trace("fast", [STEP] * LIMIT) for _ in range(PROMPTS))
    at(5.2, EngineFinished("fast", done, 4.2))
    at(5.5, EngineStarted("slow", PROMPTS))
    at(6.0, EngineLoaded("slow", 0.5))
    for k in range(1, 4):
        at(6.0 + 0.5 * k, StepGenerated("slow", 0, k - 1, STEP))
    at(8.0, EngineFailed("slow", "engine slow: out of memory"))
    return run, now


def test_a_stopped_engines_speed_is_its_generation_speed_at_any_later_time() -> None:
    run, _ = fed_run()
    fast, slow = run.engines["fast"], run.engines["slow"]
    for now in (10.0, 100.0):
        assert abs(fast.tokens_per_second(now) - 16 / (5.0 - 1.0)) < 1e-12  # 4 tok/s, load to last token
        assert abs(slow.tokens_per_second(now) - 3 / (7.5 - 6.0)) < 1e-12  # 2 tok/s: a failure freezes it too


def test_the_estimate_at_the_mean_speed_does_not_move_once_the_engines_with_a_speed_stopped() -> None:
    run, _ = fed_run()
    # only the waiting engine is left: all its tokens, at the mean of the two frozen speeds
    mean = (16 / 4.0 + 3 / 1.5) / 2
    expected = PROMPTS * LIMIT / mean
    at_10, at_100 = run.seconds_left(10.0), run.seconds_left(100.0)
    assert abs(at_10 - expected) < 1e-9 and abs(at_100 - expected) < 1e-9
    assert progress.strip(run, 10.0)[-1] == progress.strip(run, 100.0)[-1] == progress.time_left(expected, True)


def test_a_generating_engines_speed_is_measured_up_to_now() -> None:
    """While it may still make tokens a pause is part of its speed (a stall shows as one)."""
    now = [0.0]
    run = RunState(1, RunPlan((0,), ("a",), (0,)), ["only"], LIMIT, clock=lambda: now[0])
    now[0] = 2.0
    run.apply(EngineLoaded("only", 2.0))
    for t in (2.5, 3.0):
        now[0] = t
        run.apply(StepGenerated("only", 0, 0, STEP))
    engine = run.engines["only"]
    assert abs(engine.tokens_per_second(3.0) - 2 / 1.0) < 1e-12
    assert abs(engine.tokens_per_second(6.0) - 2 / 4.0) < 1e-12
    assert abs(run.seconds_left(6.0) - (LIMIT - 2) / (2 / 4.0)) < 1e-9

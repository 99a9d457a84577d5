"""The determinism screen's time left, from a hand-made sequence of a protocol's events on a
hand-made clock: the main run's rule (tokens still to make, every trial to the token limit, at
each engine's generation speed; loads not counted), computed here from the sequence itself.
The pace-so-far rule it replaces counted a 60 s model load as if it were generation and jumped."""

from __future__ import annotations

from gendiff.records.events import EngineFinished, EngineLoaded, EngineStarted, RunStarted, StepGenerated
from gendiff.records.snapshot import Snapshot
from gendiff.records.trace import TokenStep, TopToken
from gendiff.state.determinism_progress import TrialProgress

TOKENS = 4
ROWS = (1, 3, 2)  # each trial's rows, as a protocol lays them out
ENGINES = {"hf-single": 10.0, "hf-right": 5.0}  # tokens per second while generating
FIRST_LOAD = {"hf-single": 30.0, "hf-right": 60.0}  # seconds; later loads are cached (0 s)
STARTUP, BETWEEN = 20.0, 0.5  # torch and the tokenizer; comparing and recording a trial

STEP = TokenStep(1, "a", -0.1, (TopToken(1, "a", -0.1), TopToken(2, "b", -3.0)))


def protocol_events() -> list[tuple[float, object]]:
    """(time, event) for the whole run, each engine generating at exactly its speed."""
    meta = Snapshot({}, {}, "hf-single", [], [])
    t, events = STARTUP, []
    for trial, rows in enumerate(ROWS):
        events.append((t, RunStarted(meta, tuple(ENGINES))))
        for label, rate in ENGINES.items():
            events.append((t, EngineStarted(label, rows)))
            t += FIRST_LOAD[label] if trial == 0 else 0.0
            events.append((t, EngineLoaded(label, 0.0)))
            for i in range(rows * TOKENS):
                t += 1 / rate
                events.append((t, StepGenerated(label, i % rows, i // rows, STEP)))
            events.append((t, EngineFinished(label, (), rows * TOKENS / rate)))
        t += BETWEEN
    return events


def expected(made: dict[str, int], generating: dict[str, float], finished: dict[str, int], current):
    """The estimate counted here, with the speed it takes for each engine and its tokens left: per
    engine the tokens of its unfinished trials (the one under way less what it made of it), at its
    own speed, or at the others' mean before it has one. (None, {}, {}) before any speed."""
    speeds = {label: made[label] / generating[label] for label in ENGINES if made[label]}
    if not speeds:
        return None, {}, {}
    mean = sum(speeds.values()) / len(speeds)
    speeds = {label: speeds.get(label, mean) for label in ENGINES}
    left = {
        label: sum(ROWS[finished[label] :]) * TOKENS - (current[1] if current[0] == label else 0) for label in ENGINES
    }
    return sum(left[label] / speeds[label] for label in ENGINES), speeds, left


def test_the_estimate_counts_generation_only_and_says_loads_are_left_out() -> None:
    now = [0.0]
    progress = TrialProgress(len(ROWS), tuple(ENGINES), TOKENS, ROWS, clock=lambda: now[0])
    made = dict.fromkeys(ENGINES, 0)
    generating = dict.fromkeys(ENGINES, 0.0)
    finished = dict.fromkeys(ENGINES, 0)
    current: tuple[str | None, int] = (None, 0)
    last_step_at = 0.0
    samples: list[tuple[float, float | None, bool, str]] = []  # (time, estimate, a load between, strip)
    allowed: list[float] = []  # how much a new measured speed may raise the estimate at each sample
    old_rule: list[float] = []  # the pace so far, loads included: elapsed × (work left / work done)
    loaded_since = False
    allowed_speeds: dict[str, float] = {}
    for t, event in protocol_events():
        now[0] = t
        progress.apply(event)
        if isinstance(event, EngineStarted | EngineLoaded):
            loaded_since = True
            last_step_at = t
        if isinstance(event, StepGenerated):
            label = event.engine
            made[label] += 1
            generating[label] += t - last_step_at
            last_step_at = t
            current = (label, current[1] + 1 if current[0] == label else 1)
        if isinstance(event, EngineFinished):
            finished[event.engine] += 1
            current = (None, 0)
        want, speeds, left = expected(made, generating, finished, current)
        before = allowed_speeds if samples else {}
        allowed.append(sum(left[e] * (1 / speeds[e] - 1 / before[e]) for e in before) if before and speeds else 0.0)
        allowed_speeds = speeds
        got = progress.seconds_left()
        assert (got is None) == (want is None), (t, event, got, want)
        if want is not None:
            assert abs(got - want) < 1e-9, (t, event, got, want)
        samples.append((t, got, loaded_since, " │ ".join(progress.items())))
        loaded_since = False
        done = sum(finished.values())
        if done:
            old_rule.append(t * (2 * len(ROWS) - done) / done)
    # no estimate before the first token: the first load is not a speed
    first_token = next(i for i, (_, got, _, _) in enumerate(samples) if got is not None)
    assert all("left" not in strip for _, _, _, strip in samples[:first_token])
    # between two events with no load between them the estimate rises only as far as a newly
    # measured speed allows (hf-right's first tokens: 5 tok/s where the mean of 10 was assumed)
    rises = 0
    for (_, before, _, _), (_, after, load, _), allowance in zip(samples, samples[1:], allowed[1:], strict=False):
        if before is not None and not load:
            assert after <= before + max(0.0, allowance) + 1e-9, (before, after, allowance)
            rises += after > before + 1e-9
    assert rises == 1  # once: the speeds are constant otherwise
    # hf-right's 60 s load: the estimate stands still and says loads are left out
    loading = [s for s in samples if "hf-right 0/3 loading…" in s[3]]
    assert loading and len({got for _, got, _, _ in loading}) == 1
    assert all(strip.endswith("left at this speed, loads not counted │ escape cancels") for *_, strip in loading)
    # once both models loaded, trial 2's strip leaves the words out (between its cached loads)
    later = [strip for t, _, _, strip in samples if "trial 2/3" in strip and "tokens" in strip]
    assert later and all("left at this speed │" in strip and "loads not counted" not in strip for strip in later)
    # the pace-so-far rule on this sequence: it rose by minutes while nothing but loads happened
    assert max(b - a for a, b in zip(old_rule, old_rule[1:], strict=False)) > 60


def test_no_plan_takes_each_trial_like_the_one_under_way() -> None:
    now = [0.0]
    progress = TrialProgress(4, ("hf-right",), 3, clock=lambda: now[0])
    progress.apply(RunStarted(Snapshot({}, {}, "hf-right", [], []), ("hf-right",)))
    progress.apply(EngineStarted("hf-right", 2))
    now[0] = 50.0  # a long load: not a speed
    progress.apply(EngineLoaded("hf-right", 50.0))
    assert progress.seconds_left() is None and not any("left" in item for item in progress.items())
    now[0] = 52.0
    for row in (0, 1):
        progress.apply(StepGenerated("hf-right", row, 0, STEP))
    # 2 tokens in 2 s; 4 trials × 2 rows × 3 tokens − 2 made = 22 tokens at 1 tok/s
    assert abs(progress.seconds_left() - 22.0) < 1e-9
    assert "about 22.0s left at this speed" in progress.items()

"""How far a nondeterminism protocol's run is, from the events its trials emit (each trial is one
``Session.run``: a RunStarted, then each engine's EngineStarted … EngineFinished): the trial under
way of N, per engine the trials it finished, what it does now, and the time left by the main
run's rule (:func:`gendiff.state.run.seconds_at_speed`): the tokens still to make, every trial to
the token limit, at each engine's generation speed so far. Loading a model is not generating:
no estimate until an engine has generated, and ``loads not counted`` while a load is to come."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gendiff.records.events import EngineFailed, EngineFinished, EngineLoaded, EngineStarted, RunStarted, StepGenerated
from gendiff.state.progress import time_left
from gendiff.state.run import seconds_at_speed


@dataclass
class TrialProgress:
    """``trials`` planned, ``engines`` in run order, ``tokens`` per completion; ``rows``: each
    trial's row count as the protocol laid them out (empty: each like the trial under way)."""

    trials: int
    engines: tuple[str, ...]
    tokens: int
    rows: tuple[int, ...] = ()
    clock: Callable[[], float] = time.monotonic
    trial: int = 0  # trials started (the one under way is this one, 1-based)
    done: dict[str, int] = field(default_factory=dict)
    engine: str | None = None  # the engine working now
    loading: bool = False
    steps: int = 0  # the current engine's tokens in this trial (every row)
    trial_rows: int = 1  # the trial under way's rows
    cancelling: bool = False
    ended: bool = False
    generated: dict[str, int] = field(default_factory=dict)  # tokens made in the trials an engine finished
    generating_s: dict[str, float] = field(default_factory=dict)  # the seconds it spent making them
    loaded_at: float | None = None  # when the current engine's model was ready (its generation began)
    ready: set[str] = field(default_factory=set)  # engines with no load to come (loaded once, or failed)

    def __post_init__(self) -> None:
        self.done = {label: 0 for label in self.engines}

    def apply(self, event: object) -> None:
        if isinstance(event, RunStarted):
            self.trial += 1
            self.engine = None
        elif isinstance(event, EngineStarted):
            self.engine, self.loading, self.steps, self.loaded_at = event.engine, True, 0, None
            self.trial_rows = max(1, event.prompts)
        elif isinstance(event, EngineLoaded):
            self.loading, self.loaded_at = False, self.clock()
            self.ready.add(event.engine)
        elif isinstance(event, StepGenerated):
            if self.loaded_at is None:  # an engine that streams before it says it loaded
                self.loading, self.loaded_at = False, self.clock()
                self.ready.add(event.engine)
            self.steps += 1
        elif isinstance(event, EngineFinished | EngineFailed):
            label = event.engine
            if isinstance(event, EngineFinished) and self.loaded_at is not None and label == self.engine:
                self.generated[label] = self.generated.get(label, 0) + self.steps
                self.generating_s[label] = self.generating_s.get(label, 0.0) + self.clock() - self.loaded_at
            if isinstance(event, EngineFailed):
                self.ready.add(label)
            if self.trial and not self.cancelling:
                self.done[label] = self.done.get(label, 0) + 1
            self.engine, self.loaded_at = None, None

    @property
    def fraction(self) -> float:
        """The share of the work done: engine-trials finished, the current one by its tokens."""
        total = self.trials * max(1, len(self.engines))
        partial = 0.0
        if self.engine is not None and not self.loading:
            partial = min(1.0, self.steps / max(1, self.tokens * self.trial_rows))
        return min(1.0, (sum(self.done.values()) + partial) / total) if total else 1.0

    def speed(self, label: str, now: float) -> float | None:
        """Tokens per second of generation (loads and the time between trials left out), or None."""
        tokens, seconds = self.generated.get(label, 0), self.generating_s.get(label, 0.0)
        if label == self.engine and self.loaded_at is not None:
            tokens, seconds = tokens + self.steps, seconds + now - self.loaded_at
        return tokens / seconds if tokens and seconds > 0 else None

    def tokens_left(self, label: str) -> int:
        """The tokens ``label`` may still make: each trial it has not finished, every row to the limit."""
        rows = list(self.rows) if len(self.rows) == self.trials else [self.trial_rows] * self.trials
        left = sum(rows[self.done.get(label, 0) :]) * self.tokens
        return left - (self.steps if label == self.engine else 0)

    def seconds_left(self, now: float | None = None) -> float | None:
        """The main run's estimate (:func:`seconds_at_speed`); None until an engine has a speed."""
        if self.ended:
            return None
        now = self.clock() if now is None else now
        rates = {label: r for label in self.engines if (r := self.speed(label, now))}
        return seconds_at_speed({label: self.tokens_left(label) for label in self.engines}, rates)

    def loads_pending(self) -> bool:
        """A model loads now, or an engine has not loaded its model yet (time the estimate leaves out)."""
        return self.loading or any(label not in self.ready for label in self.engines)

    def items(self) -> list[str]:
        """The strip's entries: the trial of N, each engine's trials done, what runs, the estimate."""
        if self.ended:
            return []
        if self.trial == 0:
            parts = ["starting: torch, the tokenizer, the prompts…"]
        else:
            parts = [f"trial {self.trial}/{self.trials}"]
        for label in self.engines:
            now = ""
            if label == self.engine:
                now = " loading…" if self.loading else f" {self.steps}/{self.tokens * self.trial_rows} tokens"
            parts.append(f"{label} {self.done.get(label, 0)}/{self.trials}{now}")
        parts.append(f"{self.fraction:.0%}")
        left = self.seconds_left()
        if left is not None and not self.cancelling:
            parts.append(time_left(left, self.loads_pending()))
        parts.append("cancelling after this step…" if self.cancelling else "escape cancels")
        return parts

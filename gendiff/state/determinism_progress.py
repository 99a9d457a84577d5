"""How far a nondeterminism protocol's run is, from the events its trials emit (each trial is one
``Session.run``: a RunStarted, then each engine's EngineStarted … EngineFinished): the trial under
way of N, per engine the trials it finished, what it does now, and once an engine finished a
trial an estimate of the time left (the pace so far, model loading included, so it tends high)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gendiff.records.events import EngineFailed, EngineFinished, EngineLoaded, EngineStarted, RunStarted, StepGenerated


@dataclass
class TrialProgress:
    """``trials`` planned, ``engines`` in run order, ``tokens`` per completion."""

    trials: int
    engines: tuple[str, ...]
    tokens: int
    clock: Callable[[], float] = time.monotonic
    started: float = 0.0
    trial: int = 0  # trials started (the one under way is this one, 1-based)
    done: dict[str, int] = field(default_factory=dict)
    engine: str | None = None  # the engine working now
    loading: bool = False
    steps: int = 0  # the current engine's tokens in this trial (every row)
    rows: int = 1
    cancelling: bool = False
    ended: bool = False

    def __post_init__(self) -> None:
        self.started = self.started or self.clock()
        self.done = {label: 0 for label in self.engines}

    def apply(self, event: object) -> None:
        if isinstance(event, RunStarted):
            self.trial += 1
            self.engine = None
        elif isinstance(event, EngineStarted):
            self.engine, self.loading, self.steps = event.engine, True, 0
            self.rows = max(1, event.prompts)  # the trial's rows
        elif isinstance(event, EngineLoaded):
            self.loading = False
        elif isinstance(event, StepGenerated):
            self.steps += 1
        elif isinstance(event, EngineFinished | EngineFailed):
            if self.trial and not self.cancelling:
                self.done[event.engine] = self.done.get(event.engine, 0) + 1
            self.engine = None

    @property
    def fraction(self) -> float:
        """The share of the work done: engine-trials finished, the current one by its tokens."""
        total = self.trials * max(1, len(self.engines))
        partial = 0.0
        if self.engine is not None and not self.loading:
            partial = min(1.0, self.steps / max(1, self.tokens * self.rows))
        return min(1.0, (sum(self.done.values()) + partial) / total) if total else 1.0

    def seconds_left(self) -> float | None:
        """Once an engine finished a trial: the time so far scaled to the work left (else None)."""
        if not any(self.done.values()):
            return None
        fraction = self.fraction
        elapsed = self.clock() - self.started
        return elapsed * (1 - fraction) / fraction if fraction > 0 else None

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
                now = " loading…" if self.loading else f" {self.steps}/{self.tokens * self.rows} tokens"
            parts.append(f"{label} {self.done.get(label, 0)}/{self.trials}{now}")
        parts.append(f"{self.fraction:.0%}")
        left = self.seconds_left()
        parts.append("estimating the time left…" if left is None else f"about {duration(left)} left")
        parts.append("cancelling after this step…" if self.cancelling else "escape cancels")
        return parts


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 60} min {seconds % 60:02d} s"

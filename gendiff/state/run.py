"""One run as the app knows it while it goes and after it ended: its plan, its cancel switch,
and for every engine what it is doing (waiting, loading, generating, finished, cancelled,
failed, not run), how many prompts it has finished and how many tokens it has made.

Fed by the Session's events through :meth:`gendiff.state.workspace.Workspace.apply`, never
by a widget; every surface that speaks of an engine's progress reads it from here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gendiff.records.events import (
    EngineChecked,
    EngineFailed,
    EngineFinished,
    EngineLoaded,
    EngineStarted,
    PromptFinished,
    StepGenerated,
)
from gendiff.records.trace import Trace
from gendiff.state.cells import CANCELLED, FAILED, FINISHED, NOT_RUN, RunPlan

WAITING, LOADING, GENERATING = "waiting", "loading", "generating"  # besides the cells' states
ACTIVE = (WAITING, LOADING, GENERATING)


@dataclass
class EngineRun:
    """One engine in one run. ``done`` counts prompts it finished (EOS, the token limit or a
    failure of that prompt alone); ``tokens`` every token it generated, in every row."""

    label: str
    state: str = WAITING
    prompts: int = 0
    done: int = 0
    tokens: int = 0
    started_at: float | None = None
    loaded_at: float | None = None
    last_token_at: float | None = None
    seconds: float | None = None  # generation time, once it ended
    error: str | None = None

    def tokens_per_second(self, now: float) -> float | None:
        """Tokens per second of generation: from the end of its load (the first step's time is
        generation time) to ``now`` while it may still generate, to its last token once it stopped
        (finished, cancelled, failed), so a stopped engine's speed stays what it was. None before
        its first token."""
        if self.loaded_at is None or self.tokens == 0:
            return None
        stopped = self.state not in ACTIVE and self.last_token_at is not None
        elapsed = (self.last_token_at if stopped else now) - self.loaded_at
        return self.tokens / elapsed if elapsed > 0 else None


@dataclass
class RunState:
    """A run of ``plan``: ``id`` tells its messages from an earlier run's; ``cancel`` stops every
    engine after its current step. ``calls``: the run's engine calls (the RunStarted's batch ids)
    -> their workspace ids (``r`` may make two: the batching engines' whole call and the kept rows
    alone for the engines that isolate prompts)."""

    id: int
    plan: RunPlan
    labels: list[str]
    max_new_tokens: int
    cancel: threading.Event = field(default_factory=threading.Event)
    clock: Callable[[], float] = time.monotonic
    engines: dict[str, EngineRun] = field(default_factory=dict)
    calls: dict[int, int] = field(default_factory=dict)
    started_at: float = 0.0
    ended: bool = False
    error: str | None = None  # the run could not start (bad model, …)
    begun: bool = False  # RunStarted came: torch, the tokenizer and the engines' checks are done
    checked: list[str] = field(default_factory=list)  # engines whose conformance verdict came

    def __post_init__(self) -> None:
        self.started_at = self.clock()
        self.engines = {label: EngineRun(label, prompts=len(self.plan.ids)) for label in self.labels}

    @property
    def cancelling(self) -> bool:
        return self.cancel.is_set() and not self.ended

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def engine(self, label: str) -> EngineRun:
        return self.engines.setdefault(label, EngineRun(label, prompts=len(self.plan.ids)))

    # ── events ─────────────────────────────────────────────────────────────
    def apply(self, event: object) -> None:
        """An engine event of this run (the Workspace adds what it means for the cells; a run
        that fills no cells, a float32 re-check, feeds its events straight here)."""
        if isinstance(event, EngineChecked):
            self.checked.append(event.engine)
        elif isinstance(event, EngineStarted):
            self.engine_started(event.engine, event.prompts)
        elif isinstance(event, EngineLoaded):
            self.engine_loaded(event.engine)
        elif isinstance(event, StepGenerated):
            self.step(event.engine)
        elif isinstance(event, PromptFinished):
            self.prompt_finished(event.engine)
        elif isinstance(event, EngineFinished):
            self.engine_finished(event.engine, event.traces, event.seconds)
        elif isinstance(event, EngineFailed):
            self.engine_failed(event.engine, event.error)

    def engine_started(self, label: str, prompts: int) -> None:
        engine = self.engine(label)
        engine.state, engine.prompts, engine.started_at = LOADING, prompts, self.clock()

    def engine_loaded(self, label: str) -> None:
        engine = self.engine(label)
        engine.state, engine.loaded_at = GENERATING, self.clock()

    def step(self, label: str) -> None:
        engine, now = self.engine(label), self.clock()
        if engine.state in (WAITING, LOADING):  # an engine that streams before it says it loaded
            engine.state = GENERATING
            engine.loaded_at = now if engine.loaded_at is None else engine.loaded_at
        engine.tokens += 1
        engine.last_token_at = now

    def prompt_finished(self, label: str) -> None:
        self.engine(label).done += 1

    def engine_finished(self, label: str, traces: tuple[Trace, ...], seconds: float) -> None:
        """Finished only if it finished every prompt; a cancelled row makes it cancelled."""
        engine = self.engine(label)
        engine.seconds = seconds
        engine.state = CANCELLED if any(t.finish_reason == "cancelled" for t in traces) else FINISHED

    def engine_failed(self, label: str, error: str) -> None:
        engine = self.engine(label)
        engine.state, engine.error = FAILED, error

    def finished(self, error: str | None = None) -> None:
        """The run ended: engines a cancel stopped before they began did not run; one still
        loading or generating was stopped by it."""
        self.ended, self.error = True, error
        for engine in self.engines.values():
            if engine.state == WAITING:
                engine.state = NOT_RUN
            elif engine.state in (LOADING, GENERATING):
                engine.state = CANCELLED if self.cancel.is_set() else FAILED

    # ── derived ────────────────────────────────────────────────────────────
    def seconds_left(self, now: float | None = None) -> float | None:
        """An estimate of the time the run still needs: every unfinished prompt of every engine
        generating up to the token limit (EOS only makes it shorter), each engine at its own speed
        so far (:func:`seconds_at_speed`). Not a bound: a speed can drop, and a model not loaded
        yet is not counted (``loads_pending``). None until some engine has a speed."""
        now = self.clock() if now is None else now
        if self.ended:
            return None
        rates = {label: r for label, e in self.engines.items() if (r := e.tokens_per_second(now))}
        left = {
            label: engine.prompts * self.max_new_tokens - engine.tokens
            for label, engine in self.engines.items()
            if engine.state in ACTIVE
        }
        return seconds_at_speed(left, rates)

    def loads_pending(self) -> bool:
        """Whether an engine still waits for or loads its model (time the estimate leaves out)."""
        return any(engine.state in (WAITING, LOADING) for engine in self.engines.values())


def seconds_at_speed(left: dict[str, float], rates: dict[str, float]) -> float | None:
    """The time to make each engine's ``left`` tokens at its speed so far (``rates``, tokens/s;
    one with no speed yet at the others' mean), one engine after another; None until some engine
    has a speed. The one rule of the app's estimates (a run, a determinism protocol): loads, and
    any time not spent generating, are not counted."""
    if not rates:
        return None
    mean = sum(rates.values()) / len(rates)
    return sum(max(0.0, tokens) / rates.get(label, mean) for label, tokens in left.items())

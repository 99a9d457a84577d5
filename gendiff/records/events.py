"""What a run reports as it goes (Session.run emits them in this order): plain frozen data,
so the CLI prints them and the app turns them into messages without knowing about engines."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gendiff.records.conformance import Verdict
from gendiff.records.snapshot import Batch, Snapshot
from gendiff.records.trace import TokenStep, Trace


@dataclass(frozen=True)
class EngineChecked:
    """Before the run starts: the conformance probe's verdict on one engine for this model (see
    :mod:`gendiff.records.conformance`; ``verdict.cached``: read from the cache, no probe ran).
    A ``refuse``-mode engine that failed it is not reported here: the run raises instead."""

    engine: str
    verdict: Verdict


@dataclass(frozen=True)
class RunStarted:
    """The run begins: ``meta`` is its Snapshot without prompts (model, decoding, each engine's
    settings, the environment) whose batches are the run's engine calls (which engines, which
    prompts by id, in which rows, with which token ids: one call, or with a kept subset the
    batching engines' whole call and the isolating engines' kept rows); ``engines`` in the order
    they will run."""

    meta: Snapshot
    engines: tuple[str, ...]

    @property
    def batch(self) -> Batch:
        """The first call (the whole call when there are two)."""
        return self.meta.batches[0]


@dataclass(frozen=True)
class EngineStarted:
    engine: str
    prompts: int


@dataclass(frozen=True)
class EngineLoaded:
    engine: str
    seconds: float


@dataclass(frozen=True)
class StepGenerated:
    engine: str
    prompt_index: int
    step_index: int
    step: TokenStep


@dataclass(frozen=True)
class PromptFinished:
    """``engine`` finished one prompt (EOS, the token limit, or a failure of that prompt alone):
    its trace, numbered by the prompt's id, while the engine goes on with the others."""

    engine: str
    trace: Trace


@dataclass(frozen=True)
class EngineFinished:
    engine: str
    traces: tuple[Trace, ...]
    seconds: float


@dataclass(frozen=True)
class EngineFailed:
    engine: str
    error: str


@dataclass(frozen=True)
class RunFinished:
    snapshot: Snapshot
    cancelled: bool


@dataclass(frozen=True)
class StageStarted:
    """A stage of the pipeline after the run begins (see :mod:`gendiff.run.pipeline`): stage
    ``number`` of ``total``, ``what`` it does in words; the engine events of a stage that
    re-runs engines (re-check, repeat) follow it."""

    stage: str
    number: int
    total: int
    what: str


@dataclass(frozen=True)
class StageProgress:
    """A stage that works through items one by one starts item ``done + 1`` of ``total``
    (``total`` 0: not known ahead), ``item`` in words (e.g. ``prompt 3 hf-left``)."""

    stage: str
    done: int
    total: int
    item: str


Event = (
    EngineChecked
    | RunStarted
    | EngineStarted
    | EngineLoaded
    | StepGenerated
    | PromptFinished
    | EngineFinished
    | EngineFailed
    | RunFinished
    | StageStarted
    | StageProgress
)
OnEvent = Callable[[Event], None]

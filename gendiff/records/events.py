"""What a run reports as it goes (Session.run emits them in this order): plain frozen data,
so the CLI prints them and the app turns them into messages without knowing about engines."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gendiff.records.snapshot import Snapshot
from gendiff.records.trace import TokenStep, Trace


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


Event = EngineStarted | EngineLoaded | StepGenerated | EngineFinished | EngineFailed | RunFinished
OnEvent = Callable[[Event], None]

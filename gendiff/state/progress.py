"""Per-engine progress of a run, from the Session's events (no widgets): what each engine is
doing (waiting, loading, generating, done, failed), which prompt of how many, its tokens, and
its speed. The main screen shows ``line`` for every engine in a strip that never scrolls."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gendiff.display import number

WAITING, LOADING, GENERATING, DONE, FAILED, CANCELLED = (
    "waiting",
    "loading",
    "generating",
    "done",
    "failed",
    "cancelled",
)


@dataclass
class EngineProgress:
    """One engine's progress; ``tokens`` counts every generated token of this run."""

    label: str
    state: str = WAITING
    prompts: int = 0  # how many prompts this run gives the engine
    prompt: int | None = None  # the 0-based position (in the run) of the prompt it is on
    prompt_tokens: int = 0  # tokens of that prompt so far
    tokens: int = 0
    loaded_at: float | None = None
    seconds: float | None = None  # the whole engine, when done
    error: str = ""
    done_prompts: set[int] = field(default_factory=set)  # ids of the prompts with a full trace

    def tokens_per_second(self, now: float) -> float | None:
        if self.loaded_at is None or self.tokens == 0:
            return None
        elapsed = now - self.loaded_at
        return self.tokens / elapsed if elapsed > 0 else None

    def line(self, max_new_tokens: int, now: float) -> str:
        """E.g. ``packed p3/16 12/32 41 tok/s``, ``hf-left loading…``, ``hf-single ✓ 412 tok 1.90s``."""
        if self.state == WAITING:
            return f"{self.label} waiting"
        if self.state == LOADING:
            return f"{self.label} loading…"
        if self.state == FAILED:
            return f"{self.label} FAILED"
        if self.state == DONE:
            took = f" {self.seconds:.2f}s" if self.seconds is not None else ""
            return f"{self.label} ✓ {self.tokens} tok{took}"
        if self.state == CANCELLED:
            return f"{self.label} cancelled at {self.tokens} tok"
        where = f" p{self.prompt + 1}/{self.prompts}" if self.prompt is not None and self.prompts else ""
        rate = self.tokens_per_second(now)
        speed = f" {number(rate, 1)} tok/s" if rate is not None else ""
        return f"{self.label}{where} {self.prompt_tokens}/{max_new_tokens}{speed}"


class RunProgress:
    """Feeds on EngineStarted/Loaded/Finished/Failed and StepGenerated events of one run."""

    def __init__(self, labels: list[str], clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.engines = {label: EngineProgress(label) for label in labels}

    def started(self, engine: str, prompts: int) -> None:
        progress = self.engines.setdefault(engine, EngineProgress(engine))
        progress.state, progress.prompts = LOADING, prompts

    def loaded(self, engine: str) -> None:
        progress = self.engines[engine]
        progress.state, progress.loaded_at = GENERATING, self.clock()

    def step(self, engine: str, prompt: int) -> None:
        progress = self.engines[engine]
        if progress.state in (WAITING, LOADING):
            progress.state = GENERATING
            progress.loaded_at = progress.loaded_at or self.clock()
        if progress.prompt != prompt:
            progress.prompt, progress.prompt_tokens = prompt, 0
        progress.prompt_tokens += 1
        progress.tokens += 1

    def finished(self, engine: str, prompts_done: list[int], seconds: float) -> None:
        progress = self.engines[engine]
        progress.state, progress.seconds = DONE, seconds
        progress.done_prompts.update(prompts_done)

    def failed(self, engine: str, error: str) -> None:
        progress = self.engines[engine]
        progress.state, progress.error = FAILED, error

    def cancelled(self) -> None:
        for progress in self.engines.values():
            if progress.state in (WAITING, LOADING, GENERATING):
                progress.state = CANCELLED

    def lines(self, max_new_tokens: int) -> list[str]:
        now = self.clock()
        return [progress.line(max_new_tokens, now) for progress in self.engines.values()]

    def done_for(self, prompt: int) -> list[str]:
        """The engines that have finished the prompt with id ``prompt`` (traces are numbered by id)."""
        return [label for label, progress in self.engines.items() if prompt in progress.done_prompts]

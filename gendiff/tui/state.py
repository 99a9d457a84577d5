"""The app's plain data: the prompt entries and what runs produced for them (no widgets)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from gendiff.snapshot import PromptResult
from gendiff.trace import TokenStep

_uids = itertools.count(1)


@dataclass
class PromptEntry:
    """One prompt in the list. ``uid`` survives reordering, so results stay with their prompt."""

    text: str
    uid: int = field(default_factory=lambda: next(_uids))
    result: PromptResult | None = None
    running: bool = False
    live: dict[str, list[TokenStep]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def clear(self) -> None:
        self.result = None
        self.live = {}
        self.failed = {}

    @property
    def diverged_engines(self) -> list[str]:
        if self.result is None:
            return []
        return [d.engine for d in self.result.divergences if d.diverged]

    @property
    def status(self) -> tuple[str, str]:
        """(status, detail) for the prompt list."""
        if self.running:
            return "running", ""
        if self.result is None:
            return "new", ""
        errors = [d.engine for d in self.result.divergences if d.reason == "error"]
        if errors:
            return "error", f"{len(errors)} failed"
        diverged = self.diverged_engines
        if diverged:
            return "diverged", f"{len(diverged)} diverged"
        if any(t.finish_reason == "cancelled" for t in self.result.traces.values()):
            return "cancelled", "cancelled"
        return "identical", ""

    def steps(self, engine: str) -> list[TokenStep]:
        if engine in self.live:
            return self.live[engine]
        if self.result is not None and engine in self.result.traces:
            return list(self.result.traces[engine].steps)
        return []

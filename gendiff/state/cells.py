"""The plain records of the app's state model (:mod:`gendiff.state.workspace`): a cell per (prompt,
engine) with its state, a prompt with its stable id, what one run gets, and the header's counts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gendiff.records.divergence import Divergence
from gendiff.records.snapshot import Batch
from gendiff.records.trace import TokenStep, Trace

NOT_RUN, RUNNING, CANCELLED, FINISHED, FAILED = "not run", "running", "cancelled", "finished", "failed"

# marks of the prompt list, derived by Workspace.mark
NEW, RUN_MARK, IDENTICAL, DIVERGED, ERROR, INCOMPLETE = "new", "running", "identical", "diverged", "error", "incomplete"
MARK_ICONS = {NEW: "·", RUN_MARK: "…", IDENTICAL: "✓", DIVERGED: "✗", ERROR: "!", INCOMPLETE: "–"}


@dataclass
class Cell:
    """One engine on one prompt. ``batch`` names the call that produced ``trace``."""

    state: str = NOT_RUN
    trace: Trace | None = None
    batch: int | None = None
    error: str | None = None
    live: list[TokenStep] = field(default_factory=list)  # running: the steps streamed so far

    @classmethod
    def of(cls, trace: Trace, batch: int) -> Cell:
        state = {"error": FAILED, "cancelled": CANCELLED}.get(trace.finish_reason, FINISHED)
        return cls(state, trace, batch, trace.error)

    @property
    def seen(self) -> Sequence[TokenStep]:
        """The steps as stored: streamed so far while running, else the trace's (a loaded trace's
        columns, not built into TokenSteps)."""
        if self.state == RUNNING:
            return self.live
        return self.trace.steps if self.trace is not None else ()


@dataclass
class Prompt:
    """A prompt with its stable ``id``; ``token_ids`` as its results saw them; ``error`` when the
    prompt itself can't run (too long, empty), said of this prompt only."""

    id: int
    text: str
    cells: dict[str, Cell] = field(default_factory=dict)
    token_ids: tuple[int, ...] | None = None
    error: str | None = None
    divergences: dict[str, Divergence] = field(default_factory=dict)
    statistics: dict = field(default_factory=dict)  # engine -> DistributionStats (gendiff run --stats)

    def call(self, batches: Mapping[int, Batch]) -> Batch | None:
        """The widest call this prompt's results came from (of ``batches``, the workspace's): the
        one its batching engines made. An engine that isolates prompts may have run it in a call of
        its own (``r``), which is no call to repeat."""
        made = [batches[c.batch] for c in self.cells.values() if c.batch is not None and c.batch in batches]
        return max(made, key=lambda batch: len(batch.prompt_ids), default=None)


@dataclass(frozen=True)
class RunPlan:
    """What one Session.run gets: ``ids``/``texts`` in row order; ``keep`` the prompts whose
    results are taken (``r`` replays a whole batch but updates only the selected prompt)."""

    ids: tuple[int, ...]
    texts: tuple[str, ...]
    keep: tuple[int, ...]
    batch: int | None = None  # the earlier call this run repeats, if any


@dataclass(frozen=True)
class Counts:
    """The header's numbers."""

    total: int
    complete: int  # every engine finished
    identical: int
    diverged_prompts: int
    divergences: int
    failed: int
    incomplete: int
    running: int

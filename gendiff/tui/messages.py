"""Messages the workers post to the main screen (thread-safe via post_message): the only way a
worker reports anything."""

from __future__ import annotations

from textual.message import Message

from gendiff.records.divergence import Divergence
from gendiff.records.events import Event, StepGenerated
from gendiff.records.snapshot import Snapshot
from gendiff.state.cells import RunPlan


class StepsGenerated(Message):
    """A batch of streamed steps, coalesced by the worker (~50 ms each)."""

    def __init__(self, run_id: int, steps: list[StepGenerated]) -> None:
        super().__init__()
        self.run_id = run_id
        self.steps = steps


class EngineEvent(Message):
    """An engine started, loaded, finished or failed."""

    def __init__(self, run_id: int, event: Event) -> None:
        super().__init__()
        self.run_id = run_id
        self.event = event


class PromptsRejected(Message):
    """Prompts that can't run (id -> why); the others run."""

    def __init__(self, run_id: int, rejected: dict[int, str]) -> None:
        super().__init__()
        self.run_id = run_id
        self.rejected = rejected


class RunCompleted(Message):
    """The run ended: ``snapshot`` None when it could not start (then ``error`` says why)."""

    def __init__(
        self, run_id: int, plan: RunPlan, snapshot: Snapshot | None, cancelled: bool, error: str | None = None
    ) -> None:
        super().__init__()
        self.run_id = run_id
        self.plan = plan
        self.snapshot = snapshot
        self.cancelled = cancelled
        self.error = error


class Diagnosed(Message):
    """A bisection and re-convergence finished (``new``) or failed (``error``) for prompt ``pid``."""

    def __init__(self, pid: int, old: Divergence, new: Divergence | None, error: str | None = None) -> None:
        super().__init__()
        self.pid = pid
        self.old = old
        self.new = new
        self.error = error


class DiagnosisStage(Message):
    """What the diagnosis worker is doing now (for the view's loading line)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class Preloaded(Message):
    """The reference engine's model is loaded (or could not be: ``error``)."""

    def __init__(self, error: str | None = None) -> None:
        super().__init__()
        self.error = error


class Rechecked(Message):
    """The float32 re-check: records by (prompt id, engine), notes, or ``error``."""

    def __init__(self, records: dict, notes: list[str], error: str | None = None) -> None:
        super().__init__()
        self.records = records
        self.notes = notes
        self.error = error

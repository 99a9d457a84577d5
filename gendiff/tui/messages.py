"""Messages the run worker posts to the app (thread-safe via post_message)."""

from __future__ import annotations

from textual.message import Message

from gendiff.session import Event, StepGenerated
from gendiff.snapshot import Snapshot


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


class RunCompleted(Message):
    def __init__(
        self, run_id: int, snapshot: Snapshot | None, uids: list[int], cancelled: bool, error: str | None = None
    ) -> None:
        super().__init__()
        self.run_id = run_id
        self.snapshot = snapshot
        self.uids = uids
        self.cancelled = cancelled
        self.error = error

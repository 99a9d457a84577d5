"""Messages the workers post to the main screen (thread-safe via post_message): the only way a
worker reports anything. Messages a widget posts are nested in the widget."""

from __future__ import annotations

from textual.message import Message

from gendiff.records.divergence import Divergence
from gendiff.records.snapshot import Snapshot


class RunEvents(Message):
    """The run's events (gendiff.records.events) since the last batch, in the order they happened."""

    def __init__(self, run_id: int, events: list[object]) -> None:
        super().__init__()
        self.run_id = run_id
        self.events = events


class PromptsRejected(Message):
    """Prompts that can't run (id -> why); the others run."""

    def __init__(self, run_id: int, rejected: dict[int, str]) -> None:
        super().__init__()
        self.run_id = run_id
        self.rejected = rejected


class RunEnded(Message):
    """The run ended: ``snapshot`` None when it could not start or stopped on bad input (then
    ``error`` says why)."""

    def __init__(self, run_id: int, snapshot: Snapshot | None, error: str | None = None) -> None:
        super().__init__()
        self.run_id = run_id
        self.snapshot = snapshot
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
    """What the diagnosis worker is doing now (``2/4 …``, for the view's loading line)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class Preloaded(Message):
    """The reference engine's model is loaded (or could not be: ``error``)."""

    def __init__(self, error: str | None = None) -> None:
        super().__init__()
        self.error = error


class RecheckEvents(Message):
    """The float32 re-check's engine events since the last batch (its progress)."""

    def __init__(self, events: list[object]) -> None:
        super().__init__()
        self.events = events


class Rechecked(Message):
    """The float32 re-check: records by (prompt id, engine), notes, or ``error``."""

    def __init__(self, records: dict, notes: list[str], error: str | None = None, cancelled: bool = False) -> None:
        super().__init__()
        self.records = records
        self.notes = notes
        self.error = error
        self.cancelled = cancelled


class DeterminismEvents(Message):
    """A protocol run's events (each trial's Session events) since the last batch, in order."""

    def __init__(self, run_id: int, events: list[object]) -> None:
        super().__init__()
        self.run_id = run_id
        self.events = events


class DeterminismEnded(Message):
    """A protocol run ended: ``result`` (``partial`` when it was cancelled), or None and ``error``."""

    def __init__(self, run_id: int, result: object | None, error: str | None = None) -> None:
        super().__init__()
        self.run_id = run_id
        self.result = result
        self.error = error

"""Lanes: engines that run apart (a served engine, vLLM's worker process) overlap the in-process
ones. The in-process engines form the local lane, run one after another in the caller's thread
(torch gets every core); each other lane (one server, one worker process) runs its engines one
after another in a daemon thread of its own, started first. Nothing here knows what an engine
is: :meth:`gendiff.run.session.Session.run` says which label goes in which lane and how one runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from gendiff.records.events import Event, OnEvent

JOIN_AFTER_INTERRUPT_S = 5.0  # after ctrl+c in the local lane: how long the others get to stop


class RunStop(threading.Event):
    """The switch every engine of one run reads: set by the caller's ``cancel`` (the user) or by
    :meth:`set` (the run itself, when one engine's bad input stops every lane). Only
    :meth:`is_set` sees the caller's switch (engines never ``wait`` on it)."""

    def __init__(self, cancel: threading.Event) -> None:
        super().__init__()
        self.cancel = cancel

    def is_set(self) -> bool:
        return self.cancel.is_set() or super().is_set()


def serialized(on_event: OnEvent | None) -> OnEvent:
    """``on_event`` called by one lane at a time (a listener never sees two calls at once, so the
    app's batcher and the command line's progress lines need no lock of their own); each event
    goes out as it happens, from the thread of the engine it is about."""
    if on_event is None:
        return lambda event: None
    lock = threading.RLock()

    def emit(event: Event) -> None:
        with lock:
            on_event(event)

    return emit


def plan_lanes(labels: list[str], lane_of: Callable[[str], str | None], overlap: bool = True) -> list[list[str]]:
    """``labels`` (in run order) split into lanes: first the local one (labels whose lane is None;
    every label without ``overlap``), then one per lane name in the order of its first label.
    Each lane keeps the run order."""
    if not overlap:
        return [list(labels)]
    named: dict[str | None, list[str]] = {None: []}
    for label in labels:
        named.setdefault(lane_of(label), []).append(label)
    return list(named.values())


def run_lanes(lanes: list[list[str]], run_one: Callable[[str], None], stop: RunStop, order: list[str]) -> None:
    """Run ``lanes[0]`` in this thread and every other lane in a thread of its own (started
    first); in each lane, ``run_one(label)`` for each label until ``stop`` is set. A lane whose
    ``run_one`` raises sets ``stop`` (the other lanes stop after their current step) and ends;
    once every lane has ended, the exception of the label first in ``order`` is raised. Returns
    when every lane has ended (after ctrl+c here, the others get JOIN_AFTER_INTERRUPT_S)."""
    raised: dict[str, BaseException] = {}

    def lane(labels: list[str]) -> None:
        for label in labels:
            if stop.is_set():
                return
            try:
                run_one(label)
            except BaseException as exc:  # noqa: BLE001 — raised in the caller's thread below
                raised[label] = exc
                stop.set()
                return

    threads = [
        threading.Thread(target=lane, args=(labels,), daemon=True, name=f"gendiff-lane-{labels[0]}")
        for labels in lanes[1:]
        if labels
    ]
    for thread in threads:
        thread.start()
    try:
        lane(lanes[0])
        interrupted = [exc for exc in raised.values() if not isinstance(exc, Exception)]
        for thread in threads:
            thread.join(JOIN_AFTER_INTERRUPT_S if interrupted else None)
    except BaseException:  # ctrl+c between two engines or while waiting: stop the others, give them a moment
        stop.set()
        for thread in threads:
            thread.join(JOIN_AFTER_INTERRUPT_S)
        raise
    if interrupted:
        raise interrupted[0]
    if raised:
        raise raised[min(raised, key=order.index)]

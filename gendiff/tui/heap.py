"""The app's heap and Python's cyclic garbage collector: a frame must not wait for a collection.

A big snapshot is millions of small objects: after it is loaded (or a run ends) they are moved out
of the collector's reach (:func:`freeze_heap`). What the app makes afterwards (Textual's caches,
the columns' kept lines, the workspace's decoded texts) still ages into the older generations,
and a collection of those in the middle of a burst of keys cost a frame 133–240 ms at
1000 × 5 × 256 (benchmarks/app_scale.py). So young collections run as Python runs them, only less
often, and the older generations are collected when nobody is pressing keys
(:class:`IdleCollector`: no key or mouse event for :data:`IDLE_S`), which is also when a pause
goes unseen.
"""

from __future__ import annotations

import gc
import time

YOUNG_THRESHOLD = 5_000  # allocations between young collections (Python's default: 700; 50 000 paused frames 30-60 ms)
IDLE_S = 0.5  # no input for this long: the older generations may be collected
FULL_EVERY_S = 30.0  # at most this often, an idle moment collects every generation


def freeze_heap() -> None:
    """Move what exists now out of the collector's reach (after a snapshot is loaded or a run
    ends: a full collection would walk millions of objects and freeze the UI)."""
    gc.collect()
    gc.freeze()


class IdleCollector:
    """Young collections automatic; the older generations collected in :meth:`tick` when no
    input came for :data:`IDLE_S` (``note_input`` on every key and mouse event)."""

    def __init__(self) -> None:
        self.last_input = time.monotonic()
        self.last_full = time.monotonic()
        self.collections = 0  # the older generations' collections made here, for the benchmarks

    def install(self) -> None:
        """Python collects only the young generation by itself until :meth:`uninstall`."""
        self.before = gc.get_threshold()
        gc.set_threshold(YOUNG_THRESHOLD, 1_000_000_000, 1_000_000_000)

    def uninstall(self) -> None:
        """Python's thresholds as they were (the app ends; a test process goes on)."""
        gc.set_threshold(*getattr(self, "before", gc.get_threshold()))

    def note_input(self) -> None:
        self.last_input = time.monotonic()

    def tick(self) -> None:
        """Collect the older generations if nobody pressed a key for :data:`IDLE_S` and young
        collections happened since the last one (every generation every :data:`FULL_EVERY_S`)."""
        now = time.monotonic()
        if now - self.last_input < IDLE_S:
            return
        if now - self.last_full >= FULL_EVERY_S:
            gc.collect(2)
            self.last_full = now
            self.collections += 1
        elif gc.get_count()[1] > 0:  # young collections since the older ones were collected
            gc.collect(1)
            self.collections += 1

"""The app's collector policy (gendiff.tui.heap): the older generations are collected only when
no input came for IDLE_S, and Python's thresholds come back when the app ends."""

from __future__ import annotations

import gc
import time
import weakref

from gendiff.tui.heap import IDLE_S, IdleCollector


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle_in_older_generation() -> weakref.ref:
    """A garbage reference cycle that a young collection has already moved on (survivors of
    gen 0 go to gen 1, where only the idle collector looks now)."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    probe = weakref.ref(a)
    gc.collect(0)  # while it is referenced: it survives into gen 1
    del a, b
    gc.collect(0)  # unreferenced now, but gen 0 no longer holds it
    return probe


def test_the_older_generations_wait_for_an_idle_moment():
    before = gc.get_threshold()
    collector = IdleCollector()
    collector.install()
    try:
        assert gc.get_threshold()[1] >= 1_000_000  # Python collects only the young generation
        probe = cycle_in_older_generation()
        collector.note_input()
        collector.tick()  # a key just came: no collection
        assert probe() is not None and collector.collections == 0
        collector.last_input = time.monotonic() - IDLE_S - 0.01
        collector.tick()
        assert probe() is None and collector.collections == 1
    finally:
        collector.uninstall()
    assert gc.get_threshold() == before


def test_an_idle_moment_collects_everything_now_and_then():
    collector = IdleCollector()
    collector.install()
    try:
        collector.last_input = time.monotonic() - 10
        collector.last_full = time.monotonic() - 1000
        collector.tick()
        assert gc.get_count()[2] == 0 and collector.collections == 1  # a full collection ran
        assert time.monotonic() - collector.last_full < 1
    finally:
        collector.uninstall()

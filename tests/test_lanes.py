"""gendiff.run.lanes without engines: which label runs in which lane, lanes really running at the
same time, a raising lane stopping the others, and the listener never called twice at once.
Session.run with real engines and a real server: tests/test_overlap.py (slow tier)."""

from __future__ import annotations

import threading

import pytest

from gendiff.run.lanes import RunStop, plan_lanes, run_lanes, serialized

WAIT_S = 30.0  # only ever reached when the code under test is broken (a lane that never ran)


def test_plan_lanes_keeps_run_order_local_first_and_one_lane_per_name():
    lane_of = {"a": None, "s1": "server x", "b": None, "v": "vllm", "s2": "server x", "c": None}.get
    assert plan_lanes(["a", "s1", "b", "v", "s2", "c"], lane_of) == [["a", "b", "c"], ["s1", "s2"], ["v"]]
    assert plan_lanes(["s1", "v"], lane_of) == [[], ["s1"], ["v"]]  # no in-process engine
    assert plan_lanes(["a", "s1", "b"], lane_of, overlap=False) == [["a", "s1", "b"]]


def test_lanes_run_at_the_same_time_and_each_lane_in_order():
    """The local lane's first label waits until the other lane's has begun: only possible if
    the two run at once (sequentially it would wait forever, so the test would fail)."""
    began = {label: threading.Event() for label in ("a", "b", "s1", "s2")}
    ran: list[str] = []
    threads: dict[str, str] = {}

    def run_one(label: str) -> None:
        ran.append(label)
        threads[label] = threading.current_thread().name
        began[label].set()
        if label == "a":
            assert began["s1"].wait(WAIT_S), "the served lane did not run beside the local one"

    caller = threading.current_thread().name
    run_lanes([["a", "b"], ["s1", "s2"]], run_one, RunStop(threading.Event()), ["a", "b", "s1", "s2"])
    assert ran.index("a") < ran.index("b") and ran.index("s1") < ran.index("s2")
    assert threads["a"] == threads["b"] == caller  # in-process engines in the caller's thread
    assert threads["s1"] == threads["s2"] != caller


def test_a_raising_lane_stops_the_others_and_the_first_in_run_order_is_raised():
    stop = RunStop(threading.Event())
    ran: list[str] = []
    a_began = threading.Event()

    def run_one(label: str) -> None:
        ran.append(label)
        if label == "s1":
            assert a_began.wait(WAIT_S)
            raise ValueError("bad input of s1")
        a_began.set()
        if label == "a":
            assert stop.wait(WAIT_S)  # set by the failing lane (RunStop.set), seen here
        if label == "b":
            raise ValueError("bad input of b")

    with pytest.raises(ValueError, match="bad input of s1"):
        run_lanes([["a", "b"], ["s1", "s2"]], run_one, stop, ["a", "b", "s1", "s2"])
    assert sorted(ran) == ["a", "s1"]  # neither lane started another engine after the stop


def test_both_lanes_raising_raise_the_one_first_in_run_order():
    both = threading.Barrier(2, timeout=WAIT_S)

    def run_one(label: str) -> None:
        both.wait()  # both have begun before either raises
        raise KeyError(label)

    with pytest.raises(KeyError, match="a"):
        run_lanes([["a"], ["s1"]], run_one, RunStop(threading.Event()), ["a", "s1"])
    with pytest.raises(KeyError, match="a"):
        both.reset()
        run_lanes([["s1"], ["a"]], run_one, RunStop(threading.Event()), ["a", "s1"])


def test_the_caller_s_cancel_stops_every_lane_before_its_next_engine():
    cancel = threading.Event()
    stop = RunStop(cancel)
    both = threading.Barrier(2, timeout=WAIT_S)
    ran: list[str] = []

    def run_one(label: str) -> None:
        ran.append(label)
        both.wait()
        cancel.set()

    run_lanes([["a", "b"], ["s1", "s2"]], run_one, stop, ["a", "b", "s1", "s2"])
    assert sorted(ran) == ["a", "s1"] and stop.is_set()


def test_run_stop_reads_the_callers_switch_and_its_own_without_setting_the_callers():
    cancel = threading.Event()
    stop = RunStop(cancel)
    assert not stop.is_set()
    cancel.set()
    assert stop.is_set()
    cancel.clear()
    stop.set()
    assert stop.is_set() and not cancel.is_set()  # the run stopping itself is not a user's cancel


def test_the_listener_is_never_called_from_two_threads_at_once():
    inside = threading.Lock()
    overlaps: list[int] = []
    calls: list[int] = []

    def listener(event: object) -> None:
        if not inside.acquire(blocking=False):
            overlaps.append(1)
            return
        try:
            calls.append(1)
            threading.Event().wait(0.0005)  # widen the window a concurrent call would land in
        finally:
            inside.release()

    emit = serialized(listener)
    start = threading.Barrier(4, timeout=WAIT_S)

    def burst() -> None:
        start.wait()
        for _ in range(200):
            emit(object())

    workers = [threading.Thread(target=burst) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert overlaps == [] and len(calls) == 800


def test_ctrl_c_in_the_local_lane_stops_the_others_and_is_raised():
    stop = RunStop(threading.Event())
    served_saw_the_stop = threading.Event()
    served_began = threading.Event()

    def run_one(label: str) -> None:
        if label == "s1":
            served_began.set()
            if stop.wait(WAIT_S):
                served_saw_the_stop.set()
            return
        assert served_began.wait(WAIT_S)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_lanes([["a"], ["s1", "s2"]], run_one, stop, ["a", "s1", "s2"])
    assert served_saw_the_stop.is_set()

"""Served engines overlap the in-process ones (Session.run's lanes), against a real llama.cpp
server limited to one thread (llama-server -t 1, the demo model's float32 GGUF built by
scripts/build_llamacpp.py): the overlapped run records what the sequential one records, the
events of both lanes interleave, a cancel stops every engine, a failing engine stops none.
No timing is asserted here (benchmarks/overlap.py measures the time)."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import fields

import pytest
from helpers import llamacpp_built
from server_process import ServerProcess, free_port

pytestmark = [pytest.mark.slow, pytest.mark.llamacpp]
IN_PROCESS = ["hf-single", "hf-left", "packed"]
TOKENS = 24


BUILT = llamacpp_built("llama_server", "gguf_f32")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    command = [BUILT["llama_server"], "-m", BUILT["gguf_f32"], "--host", "127.0.0.1", "--port", str(port)]
    command += ["--alias", "demo", "-t", "1", "-tb", "1", "-np", "8", "-c", "4096"]
    command += ["-ctk", "f32", "-ctv", "f32", "-fa", "off"]
    started = ServerProcess(command, tmp_path_factory.mktemp("overlap") / "llama-server.log", port)
    started.name = "llama-server"
    try:
        started.wait_ready(60)
        yield started
    finally:
        started.stop()


def _session(*served: str, stop_at_eos: bool = True):
    from gendiff.demo import demo_prompts_path
    from gendiff.engines import engine_names, parse_engine_spec
    from gendiff.engines.settings import GenerationSettings
    from gendiff.io.prompts import PromptBook
    from gendiff.run.config import RunConfig
    from gendiff.run.session import Session

    specs = tuple(parse_engine_spec(n, {"dtype": "float32"}, engine_names()) for n in [*IN_PROCESS, *served])
    settings = GenerationSettings(max_new_tokens=TOKENS, top_k=5, stop_at_eos=stop_at_eos)
    return Session(RunConfig(None, specs, "hf-single", settings), PromptBook.load(demo_prompts_path()).prompts)


def _served(server, **options: str) -> str:
    extra = "".join(f",{k}={v}" for k, v in options.items())
    return f"openai:url={server.url},model=demo,concurrency=1{extra}"


def _record(trace) -> dict:
    """Everything a trace records but its own timing."""
    return {f.name: getattr(trace, f.name) for f in fields(trace) if f.name != "wall_time_s"}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_overlapped_run_records_what_the_sequential_run_records(server, monkeypatch):
    import asyncio

    from gendiff.engines.openai import OpenAIServer
    from gendiff.io.snapshots import snapshot_json
    from gendiff.records.events import EngineStarted, StepGenerated

    served = _served(server)
    session = _session(served)
    assert [session.engines[label].lane() for label in session.run_order()] == [None] * 3 + [f"server {server.root}"]
    sequential = session.run(overlap=False)
    events: list[object] = []
    threads: set[str] = set()
    # Overlap shown without timing: the served engine's second request waits (outside the
    # listener's lock) for an in-process token that came after its own first token. Run one after
    # another, no such token ever comes and the wait ends empty.
    beside = threading.Event()
    asked: list[bool] = []
    ask = OpenAIServer._ask

    async def ask_after_a_local_token(self, *args, **kwargs):
        # only the second request waits (a run one after another fails once, not per prompt)
        asked.append(await asyncio.to_thread(beside.wait, 120) if len(asked) == 1 else True)
        return await ask(self, *args, **kwargs)

    def listen(event: object) -> None:
        events.append(event)
        threads.add(threading.current_thread().name)
        if isinstance(event, StepGenerated) and event.engine in IN_PROCESS:
            if any(isinstance(e, StepGenerated) and e.engine == served for e in events):
                beside.set()

    monkeypatch.setattr(OpenAIServer, "_ask", ask_after_a_local_token)
    overlapped = session.run(listen)
    monkeypatch.undo()
    assert overlapped.engine_labels == sequential.engine_labels == [*IN_PROCESS, served]
    assert [p.id for p in overlapped.prompts] == [p.id for p in sequential.prompts]
    for a, b in zip(sequential.prompts, overlapped.prompts, strict=True):
        assert list(a.traces) == list(b.traces) == [*IN_PROCESS, served]
        for label in a.traces:
            assert _record(a.traces[label]) == _record(b.traces[label]), (a.id, label)
        assert a.divergences == b.divergences
        assert a.batches == b.batches
    assert sum(d.diverged for d in overlapped.divergences()) == sum(d.diverged for d in sequential.divergences())

    def without_timing(snapshot) -> dict:
        data = json.loads(snapshot_json(snapshot))
        data.pop("created")
        for prompt in data["prompts"]:
            for trace in prompt["traces"].values():
                trace.pop("wall_time_s", None)
        return data

    assert without_timing(overlapped) == without_timing(sequential)

    # the served engine started at once, beside the reference, in a thread of its own, and its
    # token events interleave with the in-process engines' (each engine's own in step order)
    started = [e.engine for e in events if isinstance(e, EngineStarted)]
    assert started[:2] in (["hf-single", served], [served, "hf-single"])
    assert len(threads) == 2
    assert len(asked) == len(overlapped.prompts) and asked[1], "no in-process token came while the served engine ran"
    for label in [*IN_PROCESS, served]:
        mine = [(e.prompt_index, e.step_index) for e in events if isinstance(e, StepGenerated) and e.engine == label]
        for pid in {p for p, _ in mine}:
            assert [s for p, s in mine if p == pid] == list(range(len([1 for p, _ in mine if p == pid])))


def test_a_cancel_stops_every_running_engine(server):
    from gendiff.records.events import RunFinished, StepGenerated

    served = _served(server)
    session = _session(served, stop_at_eos=False)
    cancel = threading.Event()
    finished: list[RunFinished] = []

    def listen(event: object) -> None:
        if isinstance(event, StepGenerated) and event.engine == served:
            cancel.set()  # the served engine has prompts left; hf-single, running beside it, too
        if isinstance(event, RunFinished):
            finished.append(event)

    snapshot = session.run(listen, cancel)
    assert finished and finished[0].cancelled
    # the engines running when it came stopped after their current step; those after never began
    assert snapshot.engine_labels == ["hf-single", served]
    for label in snapshot.engine_labels:
        reasons = {p.traces[label].finish_reason for p in snapshot.prompts}
        assert "cancelled" in reasons, (label, reasons)
    assert not [t for t in threading.enumerate() if t.name.startswith("gendiff-lane-")]


def test_a_failing_served_engine_stops_no_other_and_its_error_is_recorded_as_sequentially(server):
    served, gone = _served(server), f"openai:url=http://127.0.0.1:{_closed_port()}/v1,model=demo,retries=0"
    session = _session(served, gone)
    sequential, overlapped = session.run(overlap=False), session.run()
    for snapshot in (sequential, overlapped):
        errors = {e["label"]: e.get("error") for e in snapshot.engines}
        assert errors[gone] and "no server answers" in errors[gone]
        assert all(errors[label] is None for label in [*IN_PROCESS, served])
        assert all(p.traces[gone].error == errors[gone] for p in snapshot.prompts)
        assert all(p.traces[served].finish_reason in ("eos", "length") for p in snapshot.prompts)
    assert [e.get("error") for e in sequential.engines] == [e.get("error") for e in overlapped.engines]
    for a, b in zip(sequential.prompts, overlapped.prompts, strict=True):
        assert [_record(t) for t in a.traces.values()] == [_record(t) for t in b.traces.values()]
        assert a.divergences == b.divergences

"""``r`` on one prompt of a call (model-free): which rows each engine's call holds
(``run.calls.plan_calls``), and what the app's Workspace makes of a run of two calls — each
engine's progress counts its own rows, each cell names the call that truly produced it, the next
``r`` repeats the batching engines' whole call, and the export says the same and loads."""

from __future__ import annotations

from app_helpers import ENVIRONMENT, step_of

from gendiff.io.snapshots import load_snapshot, save_snapshot
from gendiff.records.divergence import compare
from gendiff.records.events import (
    EngineFinished,
    EngineLoaded,
    EngineStarted,
    PromptFinished,
    RunStarted,
    StepGenerated,
)
from gendiff.records.snapshot import Batch, PromptResult, Snapshot
from gendiff.records.trace import Trace
from gendiff.run.calls import Call, plan_calls, rows_of
from gendiff.state import progress
from gendiff.state.exchange import export_snapshot
from gendiff.state.workspace import Workspace

ORDER = ["single", "left", "other"]
ISOLATES = {"single": True, "left": False, "other": True}


def test_every_engine_runs_the_whole_call_when_every_row_is_kept():
    for keep in (None, [3, 5, 7], {7, 5, 3}):
        assert plan_calls(ORDER, ISOLATES, [3, 5, 7], keep) == [Call(0, tuple(ORDER), (3, 5, 7))]


def test_an_isolating_engine_runs_only_the_kept_rows_a_batching_one_the_whole_call():
    calls = plan_calls(ORDER, ISOLATES, [3, 5, 7], [5])
    assert calls == [Call(0, ("left",), (3, 5, 7)), Call(1, ("single", "other"), (5,))]
    assert rows_of(calls) == {"left": (3, 5, 7), "single": (5,), "other": (5,)}
    # the kept rows in the call's own row order, whatever order keep lists them in
    assert plan_calls(ORDER, ISOLATES, [7, 3, 5], [5, 7])[1] == Call(1, ("single", "other"), (7, 5))


def test_with_no_batching_engine_there_is_one_call_of_the_kept_rows():
    assert plan_calls(["single"], {"single": True}, [3, 5, 7], [7]) == [Call(0, ("single",), (7,))]
    assert plan_calls(["left"], {"left": False}, [3, 5, 7], [7]) == [Call(0, ("left",), (3, 5, 7))]


def test_an_isolating_engine_with_no_kept_row_makes_no_call():
    assert plan_calls(ORDER, ISOLATES, [3, 5], []) == [Call(0, ("left",), (3, 5))]
    assert plan_calls(ORDER, ISOLATES, [], None) == [Call(0, tuple(ORDER), ())]


# ── the app's Workspace fed a run of two calls, as Session.run emits it ────────────────────────
IDS = {"ab": (1, 2), "ay": (1, 25), "by": (2, 25)}


def trace(label: str, pid: int, text: str, tokens: list[int]) -> Trace:
    return Trace(label, pid, IDS[text], tuple(step_of(t) for t in tokens), "length")


def replay_events(ws: Workspace, pids: list[int], kept: int, tokens: dict[str, list[int]]):
    """``r`` on ``kept`` of the call ``pids``: ``left`` (batching) runs every row, ``single``
    (isolating) only the kept one; each emits its own rows' events."""
    texts = tuple(ws.get(p).text for p in pids)
    calls = [
        Batch(0, ("left",), tuple(pids), texts, tuple(IDS[t] for t in texts)),
        Batch(1, ("single",), (kept,), (ws.get(kept).text,), (IDS[ws.get(kept).text],)),
    ]
    meta = Snapshot(
        model={"name": "fake", "path": "/fake", "dtype": "float32", "attn": "sdpa"},
        decoding={"max_new_tokens": 2, "top_k": 2},
        reference="single",
        engines=[
            {"label": "single", "name": "single", "settings": {}, "isolates_prompts": True},
            {"label": "left", "name": "left", "settings": {}, "isolates_prompts": False},
        ],
        prompts=[],
        environment=ENVIRONMENT,
        batches=calls,
    )
    events: list[object] = [RunStarted(meta, ("single", "left"))]
    traces: dict[str, list[Trace]] = {}
    for label, rows in (("single", [kept]), ("left", pids)):
        events += [EngineStarted(label, len(rows)), EngineLoaded(label, 0.1)]
        for pid in rows:
            done = trace(label, pid, ws.get(pid).text, tokens[label])
            events += [StepGenerated(label, pid, i, step_of(t)) for i, t in enumerate(tokens[label])]
            events.append(PromptFinished(label, done))
            traces.setdefault(label, []).append(done)
        events.append(EngineFinished(label, tuple(traces[label]), 0.5))
    result = PromptResult(ws.get(kept).text, list(IDS[ws.get(kept).text]), id=kept)
    result.traces = {label: next(t for t in traces[label] if t.prompt_index == kept) for label in traces}
    result.batches = {"single": 1, "left": 0}
    result.divergences = [compare(result.traces["single"], result.traces["left"])]
    return events, (meta, result)


def test_a_replay_of_two_calls_counts_each_engines_rows_and_records_each_call(tmp_path):
    ws = Workspace(["single", "left"], "single")
    pids = [ws.add(text).id for text in ("ab", "ay", "by")]
    kept = pids[1]
    plan = ws.plan_all()
    plan = type(plan)(plan.ids, plan.texts, (kept,))  # r on the second prompt of this call
    run = ws.start(plan, 2)
    events, (meta, result) = replay_events(ws, pids, kept, {"single": [7, 8], "left": [7, 9]})
    ws.apply(events[0])
    # before either engine starts, each already counts the rows it will run
    assert (run.engines["single"].prompts, run.engines["left"].prompts) == (1, 3)
    for event in events[1:]:
        ws.apply(event)
    strip = " │ ".join(progress.strip(run))
    assert "single ✓ 1/1 · 2 tok" in strip and "left ✓ 3/3 · 6 tok" in strip
    ws.finish(Snapshot(**{**meta.__dict__, "prompts": [result]}))
    prompt = ws.get(kept)
    single, left = (ws.batches[prompt.cells[label].batch] for label in ("single", "left"))
    assert (single.engines, single.prompt_ids) == (("single",), (kept,))
    assert (left.engines, left.prompt_ids) == (("left",), tuple(pids))
    assert ws.mark(prompt) == ("diverged", 1) and ws.mark(ws.get(pids[0])) == ("new", 0)
    # the next r repeats the batching engines' whole call, not the kept row alone
    again = ws.plan_one(kept)
    assert (again.ids, again.keep, again.batch) == (tuple(pids), (kept,), prompt.cells["left"].batch)
    # the export says which call made each trace, and loads (schema, consistency)
    exported = export_snapshot(ws)
    path = save_snapshot(exported, tmp_path / "replay.gdz", check=True)
    loaded = load_snapshot(path)
    saved = next(p for p in loaded.prompts if p.traces)
    assert loaded.batch(saved.batches["single"]).prompt_ids == (saved.id,)
    assert len(loaded.batch(saved.batches["left"]).prompt_ids) == 3
    assert loaded.replay_case(saved, "left") == ([list(IDS[t]) for t in ("ab", "ay", "by")], 1)
    assert loaded.replay_case(saved, "single") == ([list(IDS["ay"])], 0)

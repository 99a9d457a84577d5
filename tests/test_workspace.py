"""The app's state model against random action sequences (no model, no Textual): hand-made traces
stand in for engines, and the test keeps its own record of what ran to check every mark against."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gendiff.io.compare import compare_snapshots
from gendiff.io.snapshots import snapshot_from_data, snapshot_json
from gendiff.records.divergence import compare
from gendiff.records.snapshot import Batch, PromptResult, Snapshot
from gendiff.records.trace import TokenStep, TopToken, Trace
from gendiff.state.workspace import Workspace

LABELS = ["ref", "batched", "picky"]
MAX_LEN = 8  # longer prompts are "too long" for the fake model


def ids_of(text: str) -> tuple[int, ...]:
    return tuple(ord(c) % 50 + 1 for c in text)


def fake_tokens(label: str, text: str, batch_size: int, row: int) -> list[int]:
    """What each fake engine generates: 'batched' differs in odd rows of a batch of 2+ (a batch
    effect), 'picky' differs on texts with a 'z'; the reference never varies."""
    base = [(sum(ids_of(text)) * (i + 3)) % 97 for i in range(4)]
    if label == "batched" and batch_size > 1 and row % 2 == 1:
        base[2] += 1
    if label == "picky" and "z" in text:
        base[1] += 1
    return base


def fake_trace(label: str, pid: int, text: str, tokens: list[int], finish: str) -> Trace:
    steps = tuple(
        TokenStep(t, f"t{t}", -0.1, (TopToken(t, f"t{t}", -0.1, 1.0), TopToken(0, "x", -3.0, -2.0))) for t in tokens
    )
    return Trace(label, pid, ids_of(text), steps, finish)


def fake_run(ids, texts, cancel_at: int | None, rejected: set[int]) -> Snapshot:
    """As Session.run would report: engines in order; with ``cancel_at`` = k, engine k stops after
    its first row (rows after it cancelled with no steps) and later engines never run."""
    rows = [(pid, text) for pid, text in zip(ids, texts) if pid not in rejected]
    traces: dict[str, list[Trace]] = {}
    for k, label in enumerate(LABELS):
        if cancel_at is not None and k > cancel_at:
            break
        out = []
        for row, (pid, text) in enumerate(rows):
            tokens = fake_tokens(label, text, len(rows), row)
            if cancel_at == k and row > 0:
                out.append(fake_trace(label, pid, text, [], "cancelled"))
            elif cancel_at == k:
                out.append(fake_trace(label, pid, text, tokens[:2], "cancelled"))
            else:
                out.append(fake_trace(label, pid, text, tokens, "length"))
        traces[label] = out
    batch = Batch(
        0, tuple(traces), tuple(p for p, _ in rows), tuple(t for _, t in rows), tuple(ids_of(t) for _, t in rows)
    )
    prompts = []
    for row, (pid, text) in enumerate(rows):
        result = PromptResult(text, list(ids_of(text)), id=pid)
        for label, engine_traces in traces.items():
            result.traces[label] = engine_traces[row]
            result.batches[label] = 0
        if "ref" in result.traces:
            result.divergences = [compare(result.traces["ref"], t) for lb, t in result.traces.items() if lb != "ref"]
        prompts.append(result)
    return Snapshot(
        model={"name": "fake", "path": "/fake"},
        decoding={"max_new_tokens": 4, "top_k": 2},
        reference="ref",
        engines=[{"label": label, "name": label, "settings": {}} for label in traces],
        prompts=prompts,
        environment={"python": "3", "torch": None, "transformers": None, "device": "cpu"},
        batches=[batch],
    )


texts = st.text(alphabet="abyz", min_size=1, max_size=MAX_LEN + 2)


class WorkspaceMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ws = Workspace(LABELS, "ref")
        self.pending = None  # a started run: (plan, ids, texts)
        # the test's own truth: pid -> {label: (state, tokens)}, and the call each result came from
        self.truth: dict[int, dict[str, tuple[str, tuple[int, ...]]]] = {}
        self.too_long: set[int] = set()
        self.ran_in: dict[int, tuple[tuple[int, ...], tuple[tuple[int, ...], ...], int]] = {}

    def _forget(self, pid: int) -> None:
        self.truth.pop(pid, None)
        self.too_long.discard(pid)
        self.ran_in.pop(pid, None)

    # ── edits ──────────────────────────────────────────────────────────────
    @rule(text=texts, where=st.integers(0, 20))
    def add(self, text, where):
        self.ws.add(text, min(where, len(self.ws.prompts)))

    @precondition(lambda self: self.ws.prompts)
    @rule(which=st.integers(0, 20), text=texts)
    def edit(self, which, text):
        prompt = self.ws.prompts[which % len(self.ws.prompts)]
        if text != prompt.text:
            self._forget(prompt.id)
        self.ws.edit(prompt.id, text)

    @precondition(lambda self: self.ws.prompts)
    @rule(which=st.integers(0, 20))
    def delete(self, which):
        prompt = self.ws.prompts[which % len(self.ws.prompts)]
        self._forget(prompt.id)
        self.ws.delete(prompt.id)

    @precondition(lambda self: self.ws.prompts)
    @rule(which=st.integers(0, 20), offset=st.sampled_from([-1, 1]))
    def move(self, which, offset):
        self.ws.move(self.ws.prompts[which % len(self.ws.prompts)].id, offset)

    # ── runs ───────────────────────────────────────────────────────────────
    @precondition(lambda self: self.ws.prompts and self.pending is None)
    @rule(which=st.integers(0, 20), run_all=st.booleans())
    def start_run(self, which, run_all):
        prompt = self.ws.prompts[which % len(self.ws.prompts)]
        plan = self.ws.plan_all() if run_all else self.ws.plan_one(prompt.id)
        if not run_all and prompt.id in self.ran_in:
            # r repeats the call the prompt ran in: same members, same rows
            ids, token_ids, _ = self.ran_in[prompt.id]
            assert plan.ids == ids and tuple(ids_of(t) for t in plan.texts) == token_ids
        self.ws.start(plan)
        self.pending = plan

    @precondition(lambda self: self.pending is not None)
    @rule(cancel_at=st.one_of(st.none(), st.integers(0, len(LABELS) - 1)))
    def finish_run(self, cancel_at):
        plan, self.pending = self.pending, None
        rejected = {pid for pid, text in zip(plan.ids, plan.texts) if len(text) > MAX_LEN}
        for pid in rejected & set(plan.keep):
            self.ws.reject(pid, "too long")
        snapshot = fake_run(plan.ids, plan.texts, cancel_at, rejected)
        live = {p.id: p.text for p in self.ws.prompts}
        running = {
            pid
            for pid in plan.keep
            if pid in live and any(c.state == "running" for c in self.ws.get(pid).cells.values())
        }
        self.ws.finish(plan, snapshot)
        rows = [pid for pid in plan.ids if pid not in rejected]
        for pid in plan.keep:
            if pid in rejected and pid in live:
                self.truth[pid] = {}
                self.too_long.add(pid)
                self.ran_in.pop(pid, None)
                continue
            if pid not in running:
                continue
            self.too_long.discard(pid)
            result = next(p for p in snapshot.prompts if p.id == pid)
            self.truth[pid] = {
                label: ({"cancelled": "cancelled"}.get(t.finish_reason, "finished"), t.token_ids)
                for label, t in result.traces.items()
            }
            self.ran_in[pid] = (
                tuple(rows),
                tuple(ids_of(t) for p, t in zip(plan.ids, plan.texts) if p not in rejected),
                rows.index(pid),
            )

    @precondition(lambda self: self.pending is not None)
    @rule()
    def run_cannot_start(self):
        plan, self.pending = self.pending, None
        before = {p.id: self.ws.mark(p) for p in self.ws.prompts}
        self.ws.finish(plan, None, "model folder missing")
        for p in self.ws.prompts:
            assert self.ws.mark(p)[0] != "running"
            assert p.id in before  # nothing appears or vanishes

    # ── export, reopen, compare ────────────────────────────────────────────
    def _reopened(self) -> tuple[Snapshot, Workspace]:
        snapshot = self.ws.to_snapshot()
        data = json.loads(snapshot_json(snapshot))
        from gendiff.io.snapshots import validate

        validate(data, "export")
        again = snapshot_from_data(data, "export")
        return again, Workspace.from_snapshot(again)

    @precondition(lambda self: self.pending is None and self.ws.meta is not None)
    @rule()
    def export_and_reopen(self):
        snapshot, reopened = self._reopened()
        assert [reopened.mark(p) for p in reopened.prompts] == [self.ws.mark(p) for p in self.ws.prompts]
        assert reopened.counts() == self.ws.counts()
        # a replay from the reopened export uses the prompt and the call that the run used
        for prompt, result in zip(self.ws.prompts, snapshot.prompts):
            if prompt.id not in self.ran_in or "ref" not in result.traces:
                continue
            _, token_ids, row = self.ran_in[prompt.id]
            batch, replay_row = snapshot.replay_case(result, "ref")
            assert [tuple(b) for b in batch] == list(token_ids) and replay_row == row
            assert tuple(batch[replay_row]) == ids_of(prompt.text)
        # carry on from the reopened file, as a user would (ids are now positions)
        self.truth = {
            reopened.prompts[i].id: self.truth[p.id] for i, p in enumerate(self.ws.prompts) if p.id in self.truth
        }
        self.too_long = {reopened.prompts[i].id for i, p in enumerate(self.ws.prompts) if p.id in self.too_long}
        old_to_new = {p.id: reopened.prompts[i].id for i, p in enumerate(self.ws.prompts)}
        self.ran_in = {}
        for i, result in enumerate(snapshot.prompts):
            if "ref" in result.traces:
                batch, row = snapshot.replay_case(result, "ref")
                members = snapshot.batch(result.batches["ref"]).prompt_ids
                self.ran_in[reopened.prompts[i].id] = (members, tuple(tuple(b) for b in batch), row)
        assert set(old_to_new.values()) == {p.id for p in reopened.prompts}
        self.ws = reopened

    @precondition(lambda self: self.pending is None and self.ws.meta is not None)
    @rule()
    def compare_with_itself(self):
        snapshot = self.ws.to_snapshot()
        if not snapshot.prompts or not snapshot.engines:
            return
        compared = Workspace.from_snapshot(compare_snapshots(snapshot, snapshot))
        for prompt in compared.prompts:
            assert compared.mark(prompt)[0] != "diverged"
            if compared.mark(prompt)[0] == "identical":
                assert all(c.state == "finished" for c in prompt.cells.values())

    # ── invariants ─────────────────────────────────────────────────────────
    @invariant()
    def marks_are_true(self):
        if self.pending is not None:
            return
        divergences = complete = 0
        for prompt in self.ws.prompts:
            mark, count = self.ws.mark(prompt)
            truth = self.truth.get(prompt.id, {})
            finished = {label: tokens for label, (state, tokens) in truth.items() if state == "finished"}
            differ = [
                label
                for label in LABELS[1:]
                if label in finished and "ref" in finished and finished[label] != finished["ref"]
            ]
            all_done = len(finished) == len(LABELS)
            complete += all_done
            divergences += len(differ)
            if prompt.id in self.too_long:
                assert mark == "error"
            elif differ:
                assert (mark, count) == ("diverged", len(differ))
            elif all_done:
                assert mark == "identical"
            elif truth:
                assert mark == "incomplete"
            else:
                assert mark == "new"
            # ✓ only when every engine finished and all agree
            if mark == "identical":
                assert all_done and not differ
        counts = self.ws.counts()
        assert counts.total == len(self.ws.prompts)
        assert counts.complete == complete and counts.divergences == divergences

    @invariant()
    def navigation_stops_are_the_divergences(self):
        stops = self.ws.stops(LABELS[1:])
        assert len(stops) == self.ws.counts().divergences
        for index, engine in stops:
            d = self.ws.divergence(self.ws.prompts[index], engine)
            assert d is not None and d.diverged


WorkspaceMachine.TestCase.settings = settings(
    max_examples=80, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestWorkspace = WorkspaceMachine.TestCase


def test_r_on_a_prompt_from_a_batch_replays_that_batch_and_updates_only_it():
    ws = Workspace(LABELS, "ref")
    for text in ("ab", "ay", "by"):
        ws.add(text)
    plan = ws.plan_all()
    ws.start(plan)
    ws.finish(plan, fake_run(plan.ids, plan.texts, None, set()))
    second = ws.prompts[1]
    assert ws.mark(second) == ("diverged", 1)  # row 1 of a batch of 3: the batch effect
    ws.edit(ws.prompts[2].id, "zz")  # another member changes: the replay still uses what ran
    again = ws.plan_one(second.id)
    assert again.ids == plan.ids and again.texts == plan.texts and again.keep == (second.id,)
    ws.start(again)
    ws.finish(again, fake_run(again.ids, again.texts, None, set()))
    assert ws.mark(second) == ("diverged", 1)  # still there: r did not run it alone
    assert ws.mark(ws.prompts[2]) == ("new", 0)  # the edited member is not filled in
    fresh = ws.add("ab")
    alone = ws.plan_one(fresh.id)
    assert alone.ids == (fresh.id,) and alone.batch is None


def test_cancel_before_an_engine_ran_marks_nothing_identical():
    ws = Workspace(LABELS, "ref")
    for text in ("ab", "ab", "ab"):
        ws.add(text)
    plan = ws.plan_all()
    ws.start(plan)
    ws.finish(plan, fake_run(plan.ids, plan.texts, 0, set()))
    assert [ws.mark(p)[0] for p in ws.prompts] == ["incomplete"] * 3
    counts = ws.counts()
    assert counts.complete == 0 and counts.divergences == 0 and counts.incomplete == 3


def test_a_run_that_cannot_start_keeps_the_results_shown_before():
    ws = Workspace(LABELS, "ref")
    ws.add("ab")
    plan = ws.plan_all()
    ws.start(plan)
    ws.finish(plan, fake_run(plan.ids, plan.texts, None, set()))
    before = ws.mark(ws.prompts[0])
    again = ws.plan_one(ws.prompts[0].id)
    ws.start(again)
    assert ws.mark(ws.prompts[0])[0] == "running"
    ws.finish(again, None, "no model")
    assert ws.mark(ws.prompts[0]) == before == ("identical", 0)


def test_a_rerun_never_shows_the_previous_runs_divergences_while_it_runs():
    """Found in tmux: during a second R the header still counted the first run's divergences and
    the panel showed its top-k as if current. While running, nothing of the old run is counted."""
    ws = Workspace(LABELS, "ref")
    for text in ("ab", "ab", "az"):
        ws.add(text)
    plan = ws.plan_all()
    ws.start(plan)
    ws.finish(plan, fake_run(plan.ids, plan.texts, None, set()))
    assert ws.counts().divergences > 0
    again = ws.plan_all()
    ws.start(again)
    assert ws.counts().divergences == 0 and ws.counts().running == 3
    assert all(ws.divergence(p, "batched") is None for p in ws.prompts)
    ws.finish(again, None)  # the run could not start: what was shown comes back, divergences included
    assert ws.counts().divergences > 0


def test_after_a_cancel_the_counts_add_up():
    """A prompt with a real divergence between two finished engines keeps its ✗, and is still
    counted as incomplete when another engine never ran: complete + incomplete = run prompts."""
    ws = Workspace(LABELS, "ref")
    for text in ("ab", "ab", "ab"):
        ws.add(text)
    plan = ws.plan_all()
    ws.start(plan)
    ws.finish(plan, fake_run(plan.ids, plan.texts, 2, set()))  # 'picky' cancelled after its first row
    counts = ws.counts()
    assert ws.mark(ws.prompts[1])[0] == "diverged"  # batched differs in row 1: both finished
    assert counts.complete == 0 and counts.incomplete == 3 and counts.divergences == 1


def test_replace_texts_keeps_unchanged_prompts_by_text_in_order():
    ws = Workspace(LABELS, "ref")
    for text in ("ab", "ay", "ab"):
        ws.add(text)
    plan = ws.plan_all()
    ws.start(plan)
    ws.finish(plan, fake_run(plan.ids, plan.texts, None, set()))
    old = [p.id for p in ws.prompts]
    assert ws.replace_texts(["ab", "zz", "ab", "ab"]) == 2  # two "ab" had results; the third is new
    assert [p.id for p in ws.prompts[:3:2]] == [old[0], old[2]]
    assert ws.prompts[1].id not in old and ws.prompts[3].id not in old
    assert [ws.mark(p)[0] for p in ws.prompts][1::2] == ["new", "new"]
    assert ws.prompts[0].cells["ref"].trace is not None and ws.prompts[3].cells["ref"].trace is None

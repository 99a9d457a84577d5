"""The app's state model against random action sequences (no model, no Textual): a fake session
streams the events a real one emits (run start, steps, prompts finishing, engines finishing, a
cancel landing between steps), and the test keeps its own record of what each event said. Every
surface's text — the progress strip, the prompt rows' marks, the header's counts, the columns'
foots, the panel's title or hint, and an export, mid-run too — is checked against that record."""

from __future__ import annotations

import json
from collections.abc import Iterator

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gendiff.io.compare import compare_snapshots
from gendiff.io.snapshots import snapshot_from_data, snapshot_json, validate
from gendiff.records.divergence import compare
from gendiff.records.events import (
    EngineFinished,
    EngineLoaded,
    EngineStarted,
    PromptFinished,
    RunFinished,
    RunStarted,
    StepGenerated,
)
from gendiff.records.snapshot import Batch, PromptResult, Snapshot
from gendiff.records.trace import TokenStep, TopToken, Trace
from gendiff.state import progress, view
from gendiff.state.exchange import export_snapshot, open_workspace
from gendiff.state.workspace import Workspace

LABELS = ["ref", "batched", "picky"]
TOKENS = 4  # every fake engine generates 4 tokens per prompt
MAX_LEN = 8  # longer prompts are "too long" for the fake model
ENVIRONMENT = {"python": "3", "torch": None, "transformers": None, "device": "cpu"}


def ids_of(text: str) -> tuple[int, ...]:
    return tuple(ord(c) % 50 + 1 for c in text)


def fake_tokens(label: str, text: str, batch_size: int, row: int) -> list[int]:
    """What each fake engine generates: 'batched' differs in odd rows of a batch of 2+ (a batch
    effect), 'picky' differs on texts with a 'z'; the reference never varies."""
    base = [(sum(ids_of(text)) * (i + 3)) % 97 for i in range(TOKENS)]
    if label == "batched" and batch_size > 1 and row % 2 == 1:
        base[2] += 1
    if label == "picky" and "z" in text:
        base[1] += 1
    return base


def step_of(token: int) -> TokenStep:
    return TokenStep(token, f"t{token}", -0.1, (TopToken(token, f"t{token}", -0.1, 1.0), TopToken(0, "x", -3.0, -2.0)))


def fake_trace(label: str, pid: int, text: str, tokens: list[int], finish: str) -> Trace:
    return Trace(label, pid, ids_of(text), tuple(step_of(t) for t in tokens), finish)


def meta(labels: list[str], rows: list[tuple[int, str]], prompts: list[PromptResult]) -> Snapshot:
    batch = Batch(
        0, tuple(labels), tuple(p for p, _ in rows), tuple(t for _, t in rows), tuple(ids_of(t) for _, t in rows)
    )
    return Snapshot(
        model={"name": "fake", "path": "/fake", "dtype": "float32", "attn": "sdpa"},
        decoding={"max_new_tokens": TOKENS, "top_k": 2},
        reference="ref",
        engines=[
            {"label": label, "name": label, "settings": {"dtype": "float32"}, "applies": ["dtype"]} for label in labels
        ],
        prompts=prompts,
        environment=ENVIRONMENT,
        batches=[batch],
    )


def fake_session(ids, texts, rejected: set[int], cancel, apart: tuple[str, ...] = ()) -> Iterator[object]:
    """The events Session.run emits, one at a time; ``cancel`` (a threading.Event) is read between
    steps, as engines do: the engine running stops with its unfinished prompts cancelled, the
    engines after it never start. 'ref' decodes one prompt at a time, the others all rows in step.
    Engines in ``apart`` run as Session.run runs served engines: each in a lane of its own,
    started at once, its events interleaved one for one with the in-process engines'."""
    rows = [(pid, text) for pid, text in zip(ids, texts) if pid not in rejected]
    yield RunStarted(meta(LABELS, rows, []), tuple(LABELS))
    traces: dict[str, list[Trace]] = {}
    lanes = [lane_events([x for x in LABELS if x not in apart], rows, cancel, traces)]
    lanes += [lane_events([label], rows, cancel, traces) for label in apart]
    while lanes:  # one event of each lane in turn
        for lane in list(lanes):
            event = next(lane, None)
            if event is None:
                lanes.remove(lane)
            else:
                yield event
    traces = {label: traces[label] for label in LABELS if label in traces}  # run order, as Session.run
    prompts = []
    for row, (pid, text) in enumerate(rows):
        prompt = PromptResult(text, list(ids_of(text)), id=pid)
        for label, engine_traces in traces.items():
            prompt.traces[label], prompt.batches[label] = engine_traces[row], 0
        if "ref" in prompt.traces:
            prompt.divergences = [compare(prompt.traces["ref"], t) for lb, t in prompt.traces.items() if lb != "ref"]
        prompts.append(prompt)
    yield RunFinished(meta(list(traces), rows, prompts), cancel.is_set())


def lane_events(labels: list[str], rows, cancel, traces: dict[str, list[Trace]]) -> Iterator[object]:
    """One lane's engines one after another (their traces go into ``traces``)."""
    for label in labels:
        if cancel.is_set():
            break
        yield EngineStarted(label, len(rows))
        yield EngineLoaded(label, 0.1)
        made: dict[int, list[int]] = {pid: [] for pid, _ in rows}
        done: dict[int, Trace] = {}
        order = (
            [(r, i) for r in range(len(rows)) for i in range(TOKENS)]
            if label == "ref"
            else [(r, i) for i in range(TOKENS) for r in range(len(rows))]
        )
        for row, index in order:
            if cancel.is_set():
                break
            pid, text = rows[row]
            token = fake_tokens(label, text, len(rows), row)[index]
            made[pid].append(token)
            yield StepGenerated(label, pid, index, step_of(token))
            if index == TOKENS - 1:
                done[pid] = fake_trace(label, pid, text, made[pid], "length")
                yield PromptFinished(label, done[pid])
        result = [done.get(pid) or fake_trace(label, pid, text, made[pid], "cancelled") for pid, text in rows]
        traces[label] = result
        yield EngineFinished(label, tuple(result), 0.5)


def run_to_end(ws: Workspace, plan, rejected: set[int] = frozenset(), cancel_before: str | None = None) -> None:
    """Start ``plan`` and feed every event; ``cancel_before`` an engine's start cancels there."""
    run = ws.start(plan, TOKENS)
    for event in fake_session(plan.ids, plan.texts, set(rejected), run.cancel):
        if isinstance(event, EngineStarted) and event.engine == cancel_before:
            run.cancel.set()
        if isinstance(event, RunFinished):
            ws.finish(event.snapshot)
        else:
            ws.apply(event)


texts = st.text(alphabet="abyz", min_size=1, max_size=MAX_LEN + 2)


class WorkspaceMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ws = Workspace(LABELS, "ref")
        self.events: Iterator[object] | None = None  # the running run's events still to come
        # the test's own truth, from the events it applied: pid -> {label: (state, tokens)}
        self.truth: dict[int, dict[str, tuple[str, tuple[int, ...]]]] = {}
        self.engine_truth: dict[str, str] = {}  # this run: label -> finished/cancelled/…
        self.too_long: set[int] = set()
        self.ran_in: dict[int, tuple[tuple[int, ...], tuple[tuple[int, ...], ...], int]] = {}
        self.applied = 0
        self.in_run: set[int] = set()

    def _forget(self, pid: int) -> None:
        self.in_run.discard(pid)
        self.truth.pop(pid, None)
        self.too_long.discard(pid)
        self.ran_in.pop(pid, None)

    @property
    def running(self) -> bool:
        return self.events is not None

    def _running_ids(self) -> set[int]:
        """The prompts the running run fills (kept, not rejected, not edited since it began)."""
        return self.in_run if self.running else set()

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
        if self.ws.mark(prompt)[0] == "running":
            return  # the app refuses (escape first)
        self._forget(prompt.id)
        self.ws.delete(prompt.id)

    @precondition(lambda self: self.ws.prompts)
    @rule(which=st.integers(0, 20), offset=st.sampled_from([-1, 1]))
    def move(self, which, offset):
        self.ws.move(self.ws.prompts[which % len(self.ws.prompts)].id, offset)

    # ── runs ───────────────────────────────────────────────────────────────
    @precondition(lambda self: self.ws.prompts and not self.running)
    # apart: engines that overlap the others, as served engines do (their events interleaved)
    @rule(which=st.integers(0, 20), run_all=st.booleans(), apart=st.sampled_from([(), ("picky",), ("ref", "batched")]))
    def start_run(self, which, run_all, apart):
        prompt = self.ws.prompts[which % len(self.ws.prompts)]
        plan = self.ws.plan_all() if run_all else self.ws.plan_one(prompt.id)
        if not run_all and prompt.id in self.ran_in:
            # r repeats the call the prompt ran in: same members, same rows
            ids, token_ids, _ = self.ran_in[prompt.id]
            assert plan.ids == ids and tuple(ids_of(t) for t in plan.texts) == token_ids
        run = self.ws.start(plan, TOKENS)
        self.rejected = {pid for pid, text in zip(plan.ids, plan.texts) if len(text) > MAX_LEN}
        for pid in self.rejected & set(plan.keep):
            self.ws.reject(pid, "too long")
            if self.ws.get(pid) is not None:
                self.truth[pid] = {}
                self.ran_in.pop(pid, None)
                self.too_long.add(pid)
        self.in_run = {pid for pid in set(plan.keep) - self.rejected if self.ws.get(pid) is not None}
        for pid in self.in_run:
            self.truth[pid] = {}
            self.too_long.discard(pid)
        self.engine_truth = {}
        self.applied = 0
        self.events = fake_session(plan.ids, plan.texts, self.rejected, run.cancel, apart)

    def _apply_next(self) -> bool:
        """Feed one event; False once the run has finished."""
        assert self.events is not None
        event = next(self.events)
        self.applied += 1
        keep, live = set(self.ws.run.plan.keep), set(self.in_run)
        if isinstance(event, RunFinished):
            self.ws.finish(event.snapshot)
            self.events = None
            rows = [pid for pid in self.ws.run.plan.ids if pid not in self.rejected]
            for pid in keep & live:
                if pid in self.rejected:
                    continue
                if not self.truth.get(pid):
                    self.ran_in.pop(pid, None)  # cancelled before any engine finished it: nothing ran
                    continue
                self.ran_in[pid] = (
                    tuple(rows),
                    tuple(ids_of(t) for p, t in zip(self.ws.run.plan.ids, self.ws.run.plan.texts) if p in rows),
                    rows.index(pid),
                )
            for label in LABELS:
                self.engine_truth.setdefault(label, "not run")
            return False
        self.ws.apply(event)
        if isinstance(event, PromptFinished) and event.trace.prompt_index in keep & live:
            self.truth[event.trace.prompt_index][event.engine] = ("finished", event.trace.token_ids)
        if isinstance(event, EngineFinished):
            cancelled = any(t.finish_reason == "cancelled" for t in event.traces)
            self.engine_truth[event.engine] = "cancelled" if cancelled else "finished"
            for trace in event.traces:
                if trace.finish_reason == "cancelled" and trace.prompt_index in keep & live:
                    self.truth[trace.prompt_index][event.engine] = ("cancelled", trace.token_ids)
        return True

    @precondition(lambda self: self.running)
    @rule(count=st.integers(1, 40))
    def advance(self, count):
        for _ in range(count):
            if not self._apply_next():
                return

    @precondition(lambda self: self.running)
    @rule()
    def cancel(self):
        self.ws.run.cancel.set()

    @precondition(lambda self: self.running)
    @rule()
    def finish_run(self):
        while self._apply_next():
            pass

    @precondition(lambda self: self.running and self.applied == 0)
    @rule()
    def run_cannot_start(self):
        self.events = None
        before = [p.id for p in self.ws.prompts]
        keep = set(self.ws.run.plan.keep)
        self.ws.finish(None, "model folder missing")
        for pid in keep:
            self.truth.pop(pid, None)  # what was shown before comes back: re-learn it below
        for p in self.ws.prompts:
            assert self.ws.mark(p)[0] != "running"
            if p.id in keep:
                self.truth[p.id] = {
                    label: (c.state, c.trace.token_ids if c.trace else ())
                    for label, c in p.cells.items()
                    if c.state != "not run"
                }
        assert [p.id for p in self.ws.prompts] == before  # nothing appears or vanishes

    # ── export, reopen, compare ────────────────────────────────────────────
    def _exported(self) -> Snapshot:
        snapshot = export_snapshot(self.ws)
        data = json.loads(snapshot_json(snapshot))
        validate(data, "export")
        return snapshot_from_data(data, "export")

    @precondition(lambda self: self.running and self.ws.meta is not None)
    @rule()
    def export_during_the_run(self):
        """Exactly what is settled, marked partial: no finished trace dropped, a cancelled one
        marked cancelled, nothing still running."""
        snapshot = self._exported()
        assert snapshot.partial
        for prompt, result in zip(self.ws.prompts, snapshot.prompts):
            truth = self.truth.get(prompt.id, {})
            if prompt.id in self._running_ids():
                assert set(result.traces) == set(truth), (prompt.id, set(result.traces), set(truth))
                for label, (state, tokens) in truth.items():
                    assert result.traces[label].token_ids == tokens
                    assert (result.traces[label].finish_reason == "cancelled") == (state == "cancelled")

    @precondition(lambda self: not self.running and self.ws.meta is not None)
    @rule()
    def export_and_reopen(self):
        snapshot = self._exported()
        assert not snapshot.partial
        reopened = open_workspace(snapshot)
        assert [reopened.mark(p) for p in reopened.prompts] == [self.ws.mark(p) for p in self.ws.prompts]
        assert reopened.counts() == self.ws.counts()
        for prompt, result in zip(self.ws.prompts, snapshot.prompts):
            if prompt.id not in self.ran_in or "ref" not in result.traces:
                continue
            _, token_ids, row = self.ran_in[prompt.id]
            batch, replay_row = snapshot.replay_case(result, "ref")
            assert [tuple(b) for b in batch] == list(token_ids) and replay_row == row
            assert tuple(batch[replay_row]) == ids_of(prompt.text)
        # carry on from the reopened file, as a user would (ids are now positions)
        new_id = {p.id: reopened.prompts[i].id for i, p in enumerate(self.ws.prompts)}
        self.truth = {new_id[pid]: t for pid, t in self.truth.items() if pid in new_id}
        self.too_long = {new_id[pid] for pid in self.too_long if pid in new_id}
        self.ran_in = {}
        for i, result in enumerate(snapshot.prompts):
            if "ref" in result.traces:
                batch, row = snapshot.replay_case(result, "ref")
                members = snapshot.batch(result.batches["ref"]).prompt_ids
                self.ran_in[reopened.prompts[i].id] = (members, tuple(tuple(b) for b in batch), row)
        self.ws = reopened

    @precondition(lambda self: not self.running and self.ws.meta is not None)
    @rule()
    def compare_with_itself(self):
        snapshot = export_snapshot(self.ws)
        if not snapshot.prompts or not snapshot.engines:
            return
        compared = open_workspace(compare_snapshots(snapshot, snapshot))
        for prompt in compared.prompts:
            assert compared.mark(prompt)[0] != "diverged"
            if compared.mark(prompt)[0] == "identical":
                assert all(c.state == "finished" for c in prompt.cells.values())

    # ── invariants: every surface agrees with what the events said ─────────
    def _expected_mark(self, prompt) -> tuple[str, int]:
        truth = self.truth.get(prompt.id, {})
        finished = {label: tokens for label, (state, tokens) in truth.items() if state == "finished"}
        differ = [x for x in LABELS[1:] if x in finished and "ref" in finished and finished[x] != finished["ref"]]
        settled = {label for label, (state, _) in truth.items() if state in ("finished", "cancelled")}
        # running while an engine has yet to settle it; a cancel settles the engine it stopped
        # (its cells read cancelled at once, before the run's end)
        if prompt.id in self._running_ids() and len(settled) < len(LABELS) and prompt.id not in self.too_long:
            return "running", 0
        if prompt.id in self.too_long:
            return "error", 0
        if differ:
            return "diverged", len(differ)
        if len(finished) == len(LABELS):
            return "identical", 0
        if truth:
            return "incomplete", 0
        return "new", 0

    @invariant()
    def marks_and_header_are_true(self):
        divergences = complete = 0
        for prompt in self.ws.prompts:
            expected = self._expected_mark(prompt)
            mark, count, live = view.prompt_row(self.ws, prompt)
            if expected[0] == "running":
                assert mark == "running"
            else:
                assert (mark, count) == expected, (prompt.id, prompt.text, (mark, count), expected)
            truth = self.truth.get(prompt.id, {})
            finished = {label for label, (state, _) in truth.items() if state == "finished"}
            complete += len(finished) == len(LABELS)
            divergences += expected[1] if expected[0] == "diverged" else 0
            if live:  # ● exactly for the engines whose PromptFinished the test applied
                assert {label for label, m in zip(LABELS, live) if m == "●"} == finished
        counts = self.ws.counts()
        assert counts.total == len(self.ws.prompts) and counts.complete == complete
        if not self.running:
            assert counts.divergences == divergences
        header = view.counts_line(self.ws)
        assert header.startswith(f"{complete}/{len(self.ws.prompts)} complete")

    @invariant()
    def strip_says_what_each_engine_did(self):
        run = self.ws.run
        if run is None:
            return
        if not run.begun and not run.ended:  # before RunStarted: one item says it is starting
            assert progress.strip(run)[0].startswith("starting") and len(progress.strip(run)) == 1
            return
        for item, label in zip(progress.strip(run), run.labels):
            said = self.engine_truth.get(label)
            assert item.startswith(label + " ")
            if said == "finished":
                assert "✓" in item, item
            else:
                assert "✓" not in item, item  # never ✓ for an engine that did not finish every prompt
            if said == "cancelled":
                assert "cancelled" in item
            if said == "not run":
                assert "not run" in item

    @invariant()
    def panel_and_foot_agree_with_the_cells(self):
        for prompt in self.ws.prompts:
            for engine in LABELS[1:]:
                d = self.ws.divergence(prompt, engine)
                truth = self.truth.get(prompt.id, {})
                if d is not None:  # a divergence only ever between two finished traces
                    assert truth.get(engine, ("",))[0] == "finished" and truth.get("ref", ("",))[0] == "finished"
                elif self.ws.mark(prompt)[0] == "running":
                    hint = view.panel_hint(self.ws, prompt, engine)
                    waiting = [x for x in ("ref", engine) if truth.get(x, ("running",))[0] == "running"]
                    if waiting:
                        assert hint == f"running: waiting for {' and '.join(waiting)} to finish this prompt", hint
                foot = view.column_foot(self.ws, prompt, engine)
                if self.running and prompt.id in self._running_ids():
                    assert ("✓" in foot) == (self.engine_truth.get(engine) == "finished")

    @invariant()
    def navigation_stops_are_the_divergences(self):
        # every divergence among the compared engines, from the records themselves
        stops = [
            (i, e)
            for i, p in enumerate(self.ws.prompts)
            for e in LABELS[1:]
            if (d := self.ws.divergence(p, e)) is not None and d.diverged
        ]
        assert len(stops) == self.ws.counts().divergences
        for index, engine in stops:
            d = self.ws.divergence(self.ws.prompts[index], engine)
            assert d is not None and d.diverged
        # n / p from every place: the next (previous) of the sorted stops, wrapping, as a list would say
        engines = LABELS[1:]
        listed = sorted((i, engines.index(e)) for i, e in stops)
        for here in [(p, e) for p in range(-1, len(self.ws.prompts)) for e in range(-1, len(engines))]:
            forward = next((s for s in listed if s > here), listed[0]) if listed else None
            backward = next((s for s in reversed(listed) if s < here), listed[-1]) if listed else None
            if here[0] == -1:
                forward, backward = (listed[0], listed[-1]) if listed else (None, None)
            assert view.next_stop(self.ws, engines, here, 1) == forward, here
            assert view.next_stop(self.ws, engines, here, -1) == backward, here


WorkspaceMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestWorkspace = WorkspaceMachine.TestCase


def test_r_on_a_prompt_from_a_batch_replays_that_batch_and_updates_only_it():
    ws = Workspace(LABELS, "ref")
    for text in ("ab", "ay", "by"):
        ws.add(text)
    plan = ws.plan_all()
    run_to_end(ws, plan)
    second = ws.prompts[1]
    assert ws.mark(second) == ("diverged", 1)  # row 1 of a batch of 3: the batch effect
    ws.edit(ws.prompts[2].id, "zz")  # another member changes: the replay still uses what ran
    again = ws.plan_one(second.id)
    assert again.ids == plan.ids and again.texts == plan.texts and again.keep == (second.id,)
    run_to_end(ws, again)
    assert ws.mark(second) == ("diverged", 1)  # still there: r did not run it alone
    assert ws.mark(ws.prompts[2]) == ("new", 0)  # the edited member is not filled in
    fresh = ws.add("ab")
    alone = ws.plan_one(fresh.id)
    assert alone.ids == (fresh.id,) and alone.batch is None


def test_cancel_before_an_engine_ran_marks_nothing_identical():
    ws = Workspace(LABELS, "ref")
    for text in ("ab", "ab", "ab"):
        ws.add(text)
    run_to_end(ws, ws.plan_all(), cancel_before="batched")
    assert [ws.mark(p)[0] for p in ws.prompts] == ["incomplete"] * 3
    counts = ws.counts()
    assert counts.complete == 0 and counts.divergences == 0 and counts.incomplete == 3
    lines = progress.strip(ws.run)
    assert lines[0].startswith("ref ✓ 3/3") and lines[1].startswith("batched cancelled · 0/3 done")
    assert lines[2] == "picky not run (cancelled before it began)"


def test_a_cancelled_engine_is_never_shown_finished():
    """Found in tmux: r then escape after 12 of 32 tokens, the strip read `hf-single ✓ 12 tok`
    while the column said `cancelled here`. The strip, the foot and the note now agree."""
    ws = Workspace(LABELS, "ref")
    ws.add("ab")
    plan = ws.plan_all()
    run = ws.start(plan, TOKENS)
    events = fake_session(plan.ids, plan.texts, set(), run.cancel)
    for event in events:
        ws.apply(event)
        if isinstance(event, StepGenerated) and event.step_index == 1:
            run.cancel.set()
            break
    assert "stopping" in progress.strip(run)[0]
    for event in events:
        if isinstance(event, RunFinished):
            ws.finish(event.snapshot)
        else:
            ws.apply(event)
    prompt = ws.prompts[0]
    assert progress.strip(run)[0] == "ref cancelled · 0/1 done · 2 tok"
    assert view.cell_note(ws, prompt, "ref") == "cancelled here"
    assert "✓" not in view.column_foot(ws, prompt, "ref") and ws.mark(prompt)[0] == "incomplete"


def test_a_run_that_cannot_start_keeps_the_results_shown_before():
    ws = Workspace(LABELS, "ref")
    ws.add("ab")
    run_to_end(ws, ws.plan_all())
    before = ws.mark(ws.prompts[0])
    ws.start(ws.plan_one(ws.prompts[0].id), TOKENS)
    assert ws.mark(ws.prompts[0])[0] == "running"
    ws.finish(None, "no model")
    assert ws.mark(ws.prompts[0]) == before == ("identical", 0)


def test_a_rerun_never_shows_the_previous_runs_divergences_while_it_runs():
    """Found in tmux: during a second R the header still counted the first run's divergences and
    the panel showed its top-k as if current. While running, nothing of the old run is counted."""
    ws = Workspace(LABELS, "ref")
    for text in ("ab", "ab", "az"):
        ws.add(text)
    run_to_end(ws, ws.plan_all())
    assert ws.counts().divergences > 0
    ws.start(ws.plan_all(), TOKENS)
    assert ws.counts().divergences == 0 and ws.counts().running == 3
    assert all(ws.divergence(p, "batched") is None for p in ws.prompts)
    ws.finish(None)  # the run could not start: what was shown comes back, divergences included
    assert ws.counts().divergences > 0


def test_after_a_cancel_the_counts_add_up():
    """A prompt with a real divergence between two finished engines keeps its ✗, and is still
    counted as incomplete when another engine never ran: complete + incomplete = run prompts."""
    ws = Workspace(LABELS, "ref")
    for text in ("ab", "ab", "ab"):
        ws.add(text)
    run_to_end(ws, ws.plan_all(), cancel_before="picky")
    counts = ws.counts()
    assert ws.mark(ws.prompts[1])[0] == "diverged"  # batched differs in row 1: both finished
    assert counts.complete == 0 and counts.incomplete == 3 and counts.divergences == 1


def test_divergences_appear_as_soon_as_both_engines_finish_the_prompt():
    """Mid-run: the reference and 'batched' finished row 1, 'picky' still runs: the divergence is
    there (the same compare the run's snapshot records), the mark still says running."""
    ws = Workspace(LABELS, "ref")
    for text in ("ab", "ab"):
        ws.add(text)
    plan = ws.plan_all()
    run = ws.start(plan, TOKENS)
    snapshot = None
    for event in fake_session(plan.ids, plan.texts, set(), run.cancel):
        if isinstance(event, EngineStarted) and event.engine == "picky":
            second = ws.prompts[1]
            d = ws.divergence(second, "batched")
            assert d is not None and d.step == 2 and ws.mark(second)[0] == "running"
        if isinstance(event, RunFinished):
            snapshot = event.snapshot
            ws.finish(snapshot)
        else:
            ws.apply(event)
    assert snapshot is not None
    recorded = snapshot.prompts[1].divergence_for("batched")
    assert ws.divergence(ws.prompts[1], "batched").to_dict() == recorded.to_dict()


def test_replace_texts_keeps_unchanged_prompts_by_text_in_order():
    ws = Workspace(LABELS, "ref")
    for text in ("ab", "ay", "ab"):
        ws.add(text)
    run_to_end(ws, ws.plan_all())
    old = [p.id for p in ws.prompts]
    assert ws.replace_texts(["ab", "zz", "ab", "ab"]) == 2  # two "ab" had results; the third is new
    assert [p.id for p in ws.prompts[:3:2]] == [old[0], old[2]]
    assert ws.prompts[1].id not in old and ws.prompts[3].id not in old
    assert [ws.mark(p)[0] for p in ws.prompts][1::2] == ["new", "new"]
    assert ws.prompts[0].cells["ref"].trace is not None and ws.prompts[3].cells["ref"].trace is None

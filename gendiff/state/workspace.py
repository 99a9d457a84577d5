"""The app's state, free of Textual: prompts with stable ids and, for every (prompt, engine),
what is known — not run, running, cancelled, finished or failed — with the trace and the engine
call (batch) that produced it.

The prompt list's marks, the header counts, n/p navigation, the divergence panel's input and
the export are all derived from here, so they can't disagree. A prompt is ✓ only when every
engine finished it and all agree; a divergence is only ever computed between two finished traces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from gendiff.defaults import FRAGILE_THRESHOLD
from gendiff.records.divergence import Divergence, compare
from gendiff.records.events import (
    EngineFailed,
    EngineFinished,
    PromptFinished,
    RunStarted,
    StepGenerated,
)
from gendiff.records.snapshot import Batch, PromptResult, Snapshot
from gendiff.records.trace import TokenStep, Trace
from gendiff.state.cells import (
    DIVERGED,
    ERROR,
    FAILED,
    FINISHED,
    IDENTICAL,
    INCOMPLETE,
    NEW,
    NOT_RUN,
    RUN_MARK,
    RUNNING,
    Cell,
    Counts,
    Prompt,
    RunPlan,
)
from gendiff.state.run import RunState


class Workspace:
    """Prompts and results. ``labels`` are the engine columns, the reference first."""

    def __init__(self, labels: list[str], reference: str, fragile_threshold: float = FRAGILE_THRESHOLD) -> None:
        self.labels = list(labels)
        self.reference = reference
        self.fragile_threshold = fragile_threshold
        self.run: RunState | None = None  # the running run, or the last one (its strip stays)
        self.recheck: RunState | None = None  # the float32 re-check running (or the last one); fills no cells
        self.partial = False  # a snapshot exported mid-run: a missing trace was not finished, not cancelled
        self.saved = False  # a saved snapshot opened to view: nothing runs (r, R and s are off)
        self.replays = True  # b and f can replay its engines (not in a determinism split's view)
        self._run_id = 0
        self.prompts: list[Prompt] = []
        self.batches: dict[int, Batch] = {}
        self.meta: Snapshot | None = None  # model, decoding, environment of the latest run
        self.next_id = 0
        self.next_batch = 0
        self.engine_info: dict[str, dict] = {}  # label -> the engine entry of the latest run that had it
        # cells and divergences before a run, restored if it can't start
        self._saved: dict[int, tuple[dict[str, Cell], str | None, dict[str, Divergence]]] = {}

    # ── prompts ────────────────────────────────────────────────────────────
    def add(self, text: str, position: int | None = None) -> Prompt:
        prompt = Prompt(self.next_id, text, self.blank_cells())
        self.next_id += 1
        self.prompts.insert(len(self.prompts) if position is None else position, prompt)
        return prompt

    def engine_entry(self, label: str) -> dict | None:
        """The snapshot's record of engine ``label`` (its settings as applied, ``applies``,
        ``isolates_prompts``), from the latest run that had it; None before any."""
        return self.engine_info.get(label)

    def get(self, pid: int) -> Prompt | None:
        return next((p for p in self.prompts if p.id == pid), None)

    def index_of(self, pid: int) -> int:
        return next(i for i, p in enumerate(self.prompts) if p.id == pid)

    def edit(self, pid: int, text: str) -> None:
        """New text: old results belong to the old text, so they go (a running result is then dropped too)."""
        prompt = self.get(pid)
        if prompt is not None and prompt.text != text:
            prompt.text, prompt.cells, prompt.divergences, prompt.statistics = text, self.blank_cells(), {}, {}
            prompt.token_ids, prompt.error = None, None

    def delete(self, pid: int) -> None:
        self.prompts = [p for p in self.prompts if p.id != pid]

    def replace_texts(self, texts: list[str]) -> int:
        """The prompt list becomes ``texts`` (a reloaded file): a prompt whose text is unchanged
        keeps its id and results (matched by text, in order), the others are new. Returns how
        many kept their results."""
        unused: dict[str, list[Prompt]] = {}
        for prompt in self.prompts:
            unused.setdefault(prompt.text, []).append(prompt)
        prompts, kept = [], 0
        for text in texts:
            same = unused.get(text)
            if same:
                prompt = same.pop(0)
                prompt.text = text  # the file's own (a chat prompt's line as it now reads)
                kept += any(c.trace is not None for c in prompt.cells.values())
            else:
                prompt = Prompt(self.next_id, text, self.blank_cells())
                self.next_id += 1
            prompts.append(prompt)
        self.prompts = prompts
        return kept

    def move(self, pid: int, offset: int) -> bool:
        index = self.index_of(pid)
        target = index + offset
        if not 0 <= target < len(self.prompts):
            return False
        self.prompts[index], self.prompts[target] = self.prompts[target], self.prompts[index]
        return True

    def set_engines(self, labels: list[str], reference: str) -> None:
        """Other engines or settings: every result is cleared (results of other settings would mislead)."""
        self.labels, self.reference = list(labels), reference
        for prompt in self.prompts:
            prompt.cells, prompt.divergences, prompt.token_ids, prompt.error = self.blank_cells(), {}, None, None
            prompt.statistics = {}

    def blank_cells(self) -> dict[str, Cell]:
        return {label: Cell() for label in self.labels}

    # ── runs ───────────────────────────────────────────────────────────────
    @property
    def running(self) -> bool:
        return self.run is not None and not self.run.ended

    def plan_all(self) -> RunPlan:
        ids = tuple(p.id for p in self.prompts)
        return RunPlan(ids, tuple(p.text for p in self.prompts), ids)

    def plan_one(self, pid: int) -> RunPlan:
        """``r``: the prompt in the call it ran in (same members, same rows, same texts), or alone if
        it never ran (or its text changed since)."""
        prompt = self.get(pid)
        assert prompt is not None
        batch = prompt.call(self.batches)
        if batch is not None and pid in batch.prompt_ids:
            return RunPlan(batch.prompt_ids, batch.texts, (pid,), batch.id)
        return RunPlan((pid,), (prompt.text,), (pid,))

    def start(self, plan: RunPlan, max_new_tokens: int, clock: Callable[[], float] | None = None) -> RunState:
        """A new run of ``plan``: its kept prompts are running, what they showed is kept aside until
        the run reports (a re-run never shows the previous run's divergences as the current ones)."""
        self._run_id += 1
        extra = {"clock": clock} if clock is not None else {}
        self.run = RunState(self._run_id, plan, list(self.labels), max_new_tokens, **extra)
        for pid in plan.keep:
            prompt = self.get(pid)
            if prompt is None:
                continue
            self._saved[pid] = (prompt.cells, prompt.error, prompt.divergences)
            prompt.cells = {label: Cell(RUNNING) for label in self.labels}
            prompt.error, prompt.divergences = None, {}
        return self.run

    def apply(self, event: object) -> set[int]:
        """One event of the running run (see gendiff.records.events); returns the ids of the
        prompts whose cells changed (the screen redraws those)."""
        run = self.run
        if run is None or run.ended:
            return set()
        if isinstance(event, RunStarted):
            run.begun = True
            run.calls = self._record_batches(event.meta, {})
            for batch in event.meta.batches:  # each call as it will run: an engine counts its own rows
                for label in batch.engines:
                    run.engine(label).prompts = len(batch.prompt_ids)
            self.meta = self.meta or event.meta  # an export before the first run ends needs the model, …
            self.engine_info.update({e["label"]: e for e in event.meta.engines if e["label"] not in self.engine_info})
            return set()
        run.apply(event)
        if isinstance(event, StepGenerated):
            cell = self._running_cell(event.prompt_index, event.engine)
            if cell is not None:
                cell.live.append(event.step)
                return {event.prompt_index}
        elif isinstance(event, (PromptFinished, EngineFinished)):
            return self._settle(event.engine, (event.trace,) if isinstance(event, PromptFinished) else event.traces)
        elif isinstance(event, EngineFailed):
            touched = set()
            for pid in run.plan.keep:
                cell = self._running_cell(pid, event.engine)
                if cell is not None:
                    cell.state, cell.error, cell.live = FAILED, event.error, []
                    touched.add(pid)
            return touched
        return set()

    def _running_cell(self, pid: int, engine: str) -> Cell | None:
        """The cell this run fills for (prompt, engine), if the prompt is kept and still running."""
        if self.run is None or pid not in self.run.plan.keep:
            return None
        prompt = self.get(pid)
        cell = prompt.cells.get(engine) if prompt is not None else None
        return cell if cell is not None and cell.state == RUNNING else None

    def _settle(self, engine: str, traces: tuple[Trace, ...]) -> set[int]:
        """Traces of ``engine`` that are final: their cells take them (finished, failed or
        cancelled), and each prompt's divergences are computed as soon as the reference and an
        engine both finished it (the same ``compare`` the run's snapshot records)."""
        touched = set()
        assert self.run is not None
        for trace in traces:
            cell = self._running_cell(trace.prompt_index, engine)
            if cell is None:
                continue
            prompt = self.get(trace.prompt_index)
            assert prompt is not None
            prompt.cells[engine] = Cell.of(trace, self._call_of(engine))
            if prompt.token_ids is None:
                prompt.token_ids = tuple(trace.prompt_token_ids)
            self._compare_finished(prompt)
            touched.add(prompt.id)
        return touched

    def _compare_finished(self, prompt: Prompt) -> None:
        ref = prompt.cells.get(self.reference)
        if ref is None or ref.state != FINISHED or ref.trace is None:
            return
        for label, cell in prompt.cells.items():
            if label != self.reference and cell.state == FINISHED and cell.trace is not None:
                if label not in prompt.divergences:
                    prompt.divergences[label] = compare(ref.trace, cell.trace, self.fragile_threshold)

    def reject(self, pid: int, message: str) -> None:
        """The prompt itself can't run: its own error, its cells not run."""
        prompt = self.get(pid)
        if prompt is not None:
            self._saved.pop(pid, None)
            prompt.cells, prompt.divergences, prompt.error = self.blank_cells(), {}, message
            prompt.statistics = {}

    def finish(self, snapshot: Snapshot | None, error: str | None = None) -> None:
        """The run ended. ``snapshot`` None: it could not start (bad model…): the prompts get back
        what they showed before. Else every kept prompt takes the run's record of it; engines
        that never reached a prompt (a cancel before they began) did not run it."""
        run = self.run
        if run is None or run.ended:
            return
        run.finished(error)
        plan = run.plan
        if snapshot is None:
            for pid in plan.keep:
                prompt = self.get(pid)
                saved = self._saved.pop(pid, None)
                if prompt is not None and saved is not None and self._is_running(prompt):
                    prompt.cells, prompt.error, prompt.divergences = saved
            return
        self.meta = snapshot
        self.engine_info.update({e["label"]: e for e in snapshot.engines})
        by_id = {p.id: p for p in snapshot.prompts}
        batch_id = self._record_batches(snapshot, run.calls)
        for pid in plan.keep:
            prompt, result = self.get(pid), by_id.get(pid)
            self._saved.pop(pid, None)
            if prompt is None or not self._is_running(prompt):
                continue  # deleted or edited while it ran: its result is stale
            if result is None:
                if prompt.error is None:
                    prompt.cells = self.blank_cells()
                continue
            self.apply_result(prompt, result, {label: batch_id.get(b, b) for label, b in result.batches.items()})

    def _is_running(self, prompt: Prompt) -> bool:
        return any(c.state != NOT_RUN for c in prompt.cells.values()) and prompt.id in (
            self.run.plan.keep if self.run else ()
        )

    def _call_of(self, engine: str) -> int:
        """The workspace id of the call ``engine`` makes in the running run (-1: none recorded)."""
        calls = list(self.run.calls.values()) if self.run is not None else []
        return next((b for b in calls if engine in self.batches[b].engines), calls[0] if calls else -1)

    def _record_batches(self, snapshot: Snapshot, started: dict[int, int]) -> dict[int, int]:
        """The snapshot's calls with ids unique in this workspace (those a RunStarted recorded, in
        ``started``, keep theirs); returns old id -> new id."""
        mapping = {}
        for batch in snapshot.batches:
            mapping[batch.id] = new = started.get(batch.id, self.next_batch)
            self.next_batch = max(self.next_batch, new + 1)
            self.batches[new] = replace(batch, id=new)
        return mapping

    def apply_result(self, prompt: Prompt, result: PromptResult, batches: dict[str, int]) -> None:
        prompt.token_ids = tuple(result.token_ids)
        prompt.statistics = dict(result.statistics)
        prompt.cells = {
            label: Cell.of(result.traces[label], batches[label]) if label in result.traces else Cell()
            for label in self.labels
        }
        # only a comparison of two finished traces is a divergence
        prompt.divergences = {
            d.engine: d
            for d in result.divergences
            if prompt.cells.get(d.engine, Cell()).state == FINISHED
            and prompt.cells.get(d.reference, Cell()).state == FINISHED
        }

    def record_diagnosis(self, pid: int, old: Divergence, new: Divergence) -> bool:
        prompt = self.get(pid)
        if prompt is None or prompt.divergences.get(old.engine) is not old:
            return False
        prompt.divergences[old.engine] = new
        return True

    # ── derived ────────────────────────────────────────────────────────────
    def mark(self, prompt: Prompt) -> tuple[str, int]:
        """(mark, count): count is the number of diverged engines for DIVERGED."""
        states = [c.state for c in prompt.cells.values()]
        if RUNNING in states:
            return RUN_MARK, 0
        if prompt.error:
            return ERROR, 0
        diverged = self.diverged_engines(prompt)
        if diverged:
            return DIVERGED, len(diverged)
        if FAILED in states:
            return ERROR, states.count(FAILED)
        if states and all(s == FINISHED for s in states) and set(prompt.cells) == set(self.labels):
            return IDENTICAL, 0
        if any(s != NOT_RUN for s in states):
            return INCOMPLETE, 0
        return NEW, 0

    def diverged_engines(self, prompt: Prompt) -> list[str]:
        """Engines whose finished trace differs from the finished reference's."""
        finished = {label for label, cell in prompt.cells.items() if cell.state == FINISHED}
        return [
            label
            for label in self.labels
            if (d := prompt.divergences.get(label)) is not None and d.diverged and {label, d.reference} <= finished
        ]

    def counts(self) -> Counts:
        marks = [self.mark(p) for p in self.prompts]
        return Counts(
            total=len(self.prompts),
            complete=sum(all(c.state == FINISHED for c in p.cells.values()) for p in self.prompts),
            identical=sum(m == IDENTICAL for m, _ in marks),
            diverged_prompts=sum(m == DIVERGED for m, _ in marks),
            divergences=sum(len(self.diverged_engines(p)) for p in self.prompts),
            failed=sum(m == ERROR for m, _ in marks),
            # every prompt some engine started but not every engine finished (a ✗ among them too)
            # (a prompt that can't run at all is counted with the errors, not here)
            incomplete=sum(
                m not in (RUN_MARK, NEW) and p.error is None and not all(c.state == FINISHED for c in p.cells.values())
                for p, (m, _) in zip(self.prompts, marks)
            ),
            running=sum(m == RUN_MARK for m, _ in marks),
        )

    def steps(self, prompt: Prompt, label: str) -> list[TokenStep]:
        return list(self._steps_seen(prompt, label))

    def step_count(self, prompt: Prompt, label: str) -> int:  # without building the steps
        return len(self._steps_seen(prompt, label))

    def _steps_seen(self, prompt: Prompt, label: str) -> Sequence[TokenStep]:
        cell = prompt.cells.get(label)
        return cell.seen if cell is not None else ()

    def texts(self, prompt: Prompt, label: str) -> list[str]:
        """The chosen tokens' texts of ``steps(prompt, label)``, without building the steps (what a
        token column draws: a loaded trace reads them from its columns)."""
        steps = self._steps_seen(prompt, label)
        texts = getattr(steps, "texts", None)  # StepColumns: one read of the arrays
        return list(texts) if texts is not None else [step.text for step in steps]

    def token_ids(self, prompt: Prompt, label: str) -> list[int]:
        """The chosen token ids of ``steps(prompt, label)``, without building the steps."""
        steps = self._steps_seen(prompt, label)
        ids = getattr(steps, "token_ids", None)
        return list(ids) if ids is not None else [step.token_id for step in steps]

    def length(self, prompt: Prompt, label: str) -> int:
        """``len(steps(prompt, label))`` without building them."""
        return len(self._steps_seen(prompt, label))

    def step_at(self, prompt: Prompt, label: str, index: int) -> TokenStep | None:
        """``steps(prompt, label)[index]``, or None past the end; builds that step only."""
        steps = self._steps_seen(prompt, label)
        return steps[index] if 0 <= index < len(steps) else None

    def divergence(self, prompt: Prompt, engine: str | None) -> Divergence | None:
        return prompt.divergences.get(engine or "")

"""A session: prompts × engines -> traces -> divergences -> Snapshot, reported as a stream of events.

The TUI runs :meth:`Session.run` in a thread worker and turns events into messages; the CLI
runs it directly and prints progress. Nothing here knows who is listening.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from gendiff.defaults import TOLERANCE
from gendiff.demo import model_name
from gendiff.engines import create_engine
from gendiff.engines.base import Engine, run_engine
from gendiff.engines.conformance import verify
from gendiff.engines.hf import check_context
from gendiff.engines.loading import (
    PromptTokenizer,
    check_device,
    load_tokenizer,
    model_fingerprint,
    resolve_model_path,
)
from gendiff.errors import GendiffError, InputError, describe
from gendiff.io.chat import render_chat
from gendiff.io.environment import environment_info
from gendiff.io.prompts import validate_prompt
from gendiff.records.chat import ChatMessage, ChatPrompt
from gendiff.records.divergence import TOKEN, Divergence, compare
from gendiff.records.events import (
    EngineChecked,
    EngineFailed,
    EngineFinished,
    EngineLoaded,
    EngineStarted,
    OnEvent,
    PromptFinished,
    RunFinished,
    RunStarted,
    StepGenerated,
)
from gendiff.records.snapshot import Batch, PromptResult, Snapshot
from gendiff.records.trace import TokenStep, Trace
from gendiff.run.calls import Call, plan_calls, rows_of
from gendiff.run.config import RunConfig, check_token_ids, prompt_problem
from gendiff.run.diagnosis import Bisection, Reconvergence, bisect, reconverge
from gendiff.run.lanes import RunStop, plan_lanes, run_lanes, serialized


@dataclass
class Session:
    """Prompts and a RunConfig, checked up front so that a run fails before any model work.

    ``prompt_ids`` are the prompts' stable identities (default: their positions); traces, results
    and batch records carry them, never a position in one run. With ``per_prompt_errors`` a bad
    prompt (empty, too long) is set aside in ``rejected`` (id -> message) and the others run;
    otherwise it raises GendiffError before any model work."""

    config: RunConfig
    prompts: list[str]
    prompt_ids: list[int] | None = None
    per_prompt_errors: bool = False
    tokenizer: PromptTokenizer = field(init=False)
    token_ids: list[list[int]] = field(init=False)
    engines: dict[str, Engine] = field(init=False)
    model_dir: Path = field(init=False)
    rejected: dict[int, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.config.validate()
        if self.prompt_ids is None:
            self.prompt_ids = list(range(len(self.prompts)))
        if len(set(self.prompt_ids)) != len(self.prompts):
            raise GendiffError("internal: prompt ids must be unique, one per prompt")
        self.model_dir = resolve_model_path(self.config.model_path)
        for index, text in enumerate(self.prompts):
            if self.per_prompt_errors and not text.strip():
                self.rejected[self.prompt_ids[index]] = "empty prompt: write some text or delete it"
                continue
            try:
                validate_prompt(text, index)
            except InputError as exc:  # the app: said of this prompt, the others run
                if not self.per_prompt_errors:
                    raise
                self.rejected[self.prompt_ids[index]] = str(exc)
        # engines first: an unknown option fails before the tokenizer loads
        self.engines = {spec.label: create_engine(spec, str(self.model_dir)) for spec in self.config.engines}
        for device in dict.fromkeys(spec.device for spec in self.config.engines):
            check_device(device)
        self.tokenizer = load_tokenizer(self.model_dir)
        self.config.settings.validate(self.tokenizer.vocab_size)
        # tokenized once: every engine gets exactly these ids (a chat prompt: rendered once by the
        # model's own template, before any model work; a model without one stops the run)
        self.token_ids = [  # a prompt already refused is not tokenized (it may be millions of characters)
            [] if pid in self.rejected else self._encode(index, text)
            for index, (pid, text) in enumerate(zip(self.prompt_ids, self.prompts))
        ]
        if not self.per_prompt_errors:
            check_token_ids(self.prompts, self.token_ids, self.tokenizer)
            check_context(self.token_ids, self.config.settings, self.tokenizer.max_length)
            return
        # a vocabulary mismatch is the model's problem, not one prompt's: it still stops the run
        kept = [(text, ids) for text, ids in zip(self.prompts, self.token_ids) if ids]
        check_token_ids([t for t, _ in kept], [i for _, i in kept], self.tokenizer)
        for pid, ids in zip(self.prompt_ids, self.token_ids):
            problem = self.rejected.get(pid) or prompt_problem(ids, self.config.settings, self.tokenizer.max_length)
            if problem:
                self.rejected[pid] = problem

    def _encode(self, index: int, text: str) -> list[int]:
        if not isinstance(text, ChatPrompt):
            return self.tokenizer.encode(text)
        where = text.where or f"prompt {index + 1}"
        return render_chat(self.tokenizer.hf, text.messages, self.model_dir.name, where)

    @property
    def chats(self) -> dict[int, tuple[ChatMessage, ...]]:
        """Position -> messages of each chat prompt (what served engines check their server renders)."""
        return {i: p.messages for i, p in enumerate(self.prompts) if isinstance(p, ChatPrompt)}

    @property
    def notes(self) -> list[str]:
        return list(self.tokenizer.notes)

    def run_order(self) -> list[str]:
        """Reference first; engines that declare ``runs_last`` (in-process vLLM) after the others."""
        labels = [s.label for s in self.config.engines]
        labels.sort(key=lambda label: (label != self.config.reference, self.engines[label].runs_last))
        return labels

    def run(
        self,
        on_event: OnEvent | None = None,
        cancel: threading.Event | None = None,
        prompt_indices: list[int] | None = None,
        engines: list[str] | None = None,
        *,
        overlap: bool = True,
        keep: list[int] | None = None,
    ) -> Snapshot:
        """Run every engine (or those labelled in ``engines``) on the prompts (or the subset
        ``prompt_indices``); return the Snapshot. The only run loop: the TUI, the CLI and the
        sweep all come through here. ``keep`` (positions; None: all): the prompts whose results
        are wanted (the app's ``r``); the Snapshot holds only those, an engine that isolates
        prompts runs only those and the others the whole call (:func:`gendiff.run.calls.plan_calls`).

        The in-process engines run one after another in this thread, in :meth:`run_order`;
        engines that run apart (``Engine.runs_apart``: served ones, vLLM's worker) start at once,
        each lane of them (:meth:`Engine.lane`: one server, one worker process) in a thread of its
        own, and run while they do (``overlap=False``: every engine in this thread, in run order).
        ``on_event`` is called by one engine at a time, so the events of two engines interleave;
        the Snapshot (order, reference, divergences) is the same whichever finishes first.
        ``cancel`` stops every running engine after its current step; one engine failing marks
        only itself failed; bad input found at an engine's load (InputError) stops every engine
        and is raised."""
        emit = serialized(on_event)
        cancel = cancel or threading.Event()
        indices = list(range(len(self.prompts))) if prompt_indices is None else list(prompt_indices)
        ids = self.prompt_ids or []
        indices = [i for i in indices if ids[i] not in self.rejected]
        order = [label for label in self.run_order() if engines is None or label in engines]
        isolates = {label: self.engines[label].isolates_prompts for label in order}
        wanted = set(indices if keep is None else keep)
        kept = [i for i in indices if i in wanted]
        calls = plan_calls(order, isolates, indices, kept)
        rows = rows_of(calls)
        order = [label for label in order if label in rows]  # an engine with no row to run doesn't
        self.verify_engines(order, emit)
        emit(RunStarted(self.skeleton(order, calls), tuple(order)))
        outcomes: dict[str, tuple[list[Trace], str | None]] = {}
        stop = RunStop(cancel)  # the user's cancel, or one engine's bad input: every lane stops

        def run_one(label: str) -> None:
            mine = list(rows[label])
            outcomes[label] = self._run_engine(label, [self.token_ids[i] for i in mine], mine, emit, stop)

        lanes = plan_lanes(order, lambda label: self.engines[label].lane(), overlap)
        run_lanes(lanes, run_one, stop, order)
        # in run order, whichever finished first: the snapshot never depends on the timing
        traces = {label: outcomes[label][0] for label in order if label in outcomes}
        errors = {label: error for label in order if label in outcomes and (error := outcomes[label][1])}
        snapshot = self.snapshot(traces, errors, calls, kept)
        emit(RunFinished(snapshot, cancel.is_set()))
        return snapshot

    def _run_engine(
        self, label: str, batch: list[list[int]], indices: list[int], emit: OnEvent, cancel: threading.Event
    ) -> tuple[list[Trace], str | None]:
        """Load and run one engine over ``batch`` (the prompts ``indices``), emitting its events:
        its traces (numbered by prompt id) and None, or failed traces and the error line."""
        ids = self.prompt_ids or []
        engine = self.engines[label]
        emit(EngineStarted(label, len(batch)))

        def numbered(trace: Trace) -> Trace:
            """By prompt identity, never by the row in this call."""
            return replace(trace, prompt_index=ids[indices[trace.prompt_index]], engine=label)

        def on_step(row: int, step_index: int, step: TokenStep) -> None:
            emit(StepGenerated(label, ids[indices[row]], step_index, step))

        def on_finish(trace: Trace) -> None:
            emit(PromptFinished(label, numbered(trace)))

        try:
            started = time.perf_counter()
            engine.load()
            emit(EngineLoaded(label, time.perf_counter() - started))
            started = time.perf_counter()
            chats = {row: chat for row, index in enumerate(indices) if (chat := self.chats.get(index))}
            produced = run_engine(
                engine, batch, self.config.settings, on_step=on_step, cancel=cancel, on_finish=on_finish, chats=chats
            )
            seconds = time.perf_counter() - started
            result = [numbered(t) for t in produced]
            emit(EngineFinished(label, tuple(result), seconds))
            return result, None
        except InputError as exc:  # bad input found only at load (e.g. weights that don't fit): stop
            emit(EngineFailed(label, str(exc)))
            raise
        except Exception as exc:  # one engine failing must not stop the others
            message = describe(exc)
            settings = engine.spec.settings()
            emit(EngineFailed(label, message))
            return [Trace.failed(label, ids[i], self.token_ids[i], message, settings) for i in indices], message

    def verify_engines(self, labels: list[str], on_event: OnEvent | None = None) -> None:
        """The conformance probe of each engine in ``labels`` that declares one, before any of them
        runs (cached per model: once per model, engine code and library versions). The verdict is
        kept on the engine, so its settings record and the snapshot carry it; ``on_event`` gets
        an EngineChecked for each.

        Raises:
            InputError: an engine with its own decode loop (hf-right, packed) differs from the
                unpadded model in float32 or crashes on it (one line: where, by how much).
        """
        float32 = {(spec.attn, spec.device) for spec in self.config.engines if spec.dtype == "float32"}
        for label in labels:
            engine = self.engines[label]
            if engine.verdict is None and engine.conformance is not None:
                engine.verdict = verify(engine, keep_loaded=(engine.spec.attn, engine.spec.device) in float32)
                if engine.verdict is not None and on_event is not None:
                    on_event(EngineChecked(label, engine.verdict))

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot, model_path: str | None = None) -> Session:
        """A session that can re-run (and so diagnose) what ``snapshot`` recorded: same model,
        engines with the recorded settings, same prompts; refuses if the token ids differ."""
        config = RunConfig.from_snapshot(snapshot, model_path)
        session = cls(config, [p.text for p in snapshot.prompts], [p.id for p in snapshot.prompts])
        for index, (prompt, ids) in enumerate(zip(snapshot.prompts, session.token_ids)):
            if list(prompt.token_ids) != ids:
                raise GendiffError(
                    f"prompt {index + 1}: the tokenizer of {session.model_dir} gives other token ids than the "
                    "snapshot recorded; open it with the model it was made with (--model)"
                )
        return session

    def _case(self, snapshot: Snapshot, divergence: Divergence) -> tuple[list[list[int]], int, Trace, Trace]:
        """The prompts run together in the call that produced this divergence (from the snapshot's
        batch record), the row of its prompt, both traces."""
        if divergence.reason != TOKEN or divergence.step is None:
            raise GendiffError(
                f"prompt {divergence.prompt_index + 1}, {divergence.engine}: only a token divergence can be "
                f"diagnosed (this one is {divergence.reason}: {divergence.detail})"
            )
        prompt = next((p for p in snapshot.prompts if p.id == divergence.prompt_index), None)
        if prompt is None:
            raise GendiffError(f"prompt {divergence.prompt_index + 1}: not in the snapshot")
        # an engine that isolates prompts computed this one alone: the call that matters is the other's
        pair = (divergence.engine, divergence.reference)
        batching = [label for label in pair if not self.engines[label].isolates_prompts]
        batch, row = snapshot.replay_case(prompt, (batching or [divergence.reference])[0])
        if len({prompt.batches.get(label) for label in batching}) > 1:
            raise GendiffError(
                f"prompt {divergence.prompt_index + 1}: {divergence.reference} and {divergence.engine} ran in "
                "different calls; run the prompt again (r) to diagnose it"
            )
        return batch, row, prompt.traces[divergence.reference], prompt.traces[divergence.engine]

    def bisect(self, snapshot: Snapshot, divergence: Divergence, tolerance: float = TOLERANCE) -> Bisection:
        """Replay both engines to the divergent step and find the first module that differs."""
        batch, row, ref, other = self._case(snapshot, divergence)
        engines = self.engines[divergence.reference], self.engines[divergence.engine]
        return bisect(*engines, batch, row, ref, other, divergence.step or 0, self.config.settings, tolerance)

    def reconverge(self, snapshot: Snapshot, divergence: Divergence) -> Reconvergence:
        """Feed the other engine the reference's tokens: transient flip or lasting fork?"""
        batch, row, ref, other = self._case(snapshot, divergence)
        engine = self.engines[divergence.engine]
        return reconverge(engine, batch, row, ref, other, divergence.step or 0, self.config.settings)

    def batch_record(self, call: Call, engines: list[str]) -> Batch:
        """The record of ``call`` as made by ``engines`` (those of its engines that ran)."""
        ids = self.prompt_ids or []
        rows = call.indices
        texts, token_ids = tuple(self.prompts[i] for i in rows), tuple(tuple(self.token_ids[i]) for i in rows)
        return Batch(call.id, tuple(engines), tuple(ids[i] for i in rows), texts, token_ids)

    def snapshot(
        self, traces: dict[str, list[Trace]], errors: dict[str, str], calls: list[Call], kept: list[int]
    ) -> Snapshot:
        """Assemble the Snapshot of a run made of ``calls`` (engines that did not run are left out):
        the prompts ``kept``, each engine's trace of each from the call it made."""
        reference = self.config.reference
        ids = self.prompt_ids or []
        rows = rows_of(calls)
        by_index = {label: dict(zip(rows[label], engine_traces)) for label, engine_traces in traces.items()}
        call_of = {label: call.id for call in calls for label in call.engines}
        prompts: list[PromptResult] = []
        for index in kept:
            result = PromptResult(self.prompts[index], self.token_ids[index], id=ids[index])
            for label in traces:
                result.traces[label] = by_index[label][index]
                result.batches[label] = call_of[label]
            if reference in result.traces:
                ref_trace = result.traces[reference]
                for label, trace in result.traces.items():
                    if label != reference:
                        result.divergences.append(compare(ref_trace, trace, self.config.fragile_threshold))
            prompts.append(result)
        meta = self.skeleton([label for label in self.run_order() if label in traces], calls, errors, traces)
        return replace(meta, prompts=prompts)

    def skeleton(
        self,
        labels: list[str],
        calls: list[Call],
        errors: dict[str, str] | None = None,
        traces: dict[str, list[Trace]] | None = None,
    ) -> Snapshot:
        """The run's Snapshot without prompts: model, decoding, each engine in ``labels`` with the
        settings it applies, the environment, the engine calls (those of ``labels``). The run's dtype and
        attention are those every engine that applies them shares, else ``mixed`` (each engine's
        own stand in its settings)."""
        errors, traces = errors or {}, traces or {}
        specs = {spec.label: spec for spec in self.config.engines}
        engines = []
        for label in [spec.label for spec in self.config.engines if spec.label in labels]:
            engine, spec = self.engines[label], specs[label]
            recorded = next((t.settings for t in traces.get(label, []) if t.settings), None)
            settings = recorded or engine.declared_settings()
            engines.append(
                {
                    "label": label,
                    "name": spec.name,
                    "settings": settings,
                    "applies": sorted(engine.applies),
                    "isolates_prompts": engine.isolates_prompts,
                    "conformance": engine.verdict.to_dict() if engine.verdict is not None else None,
                    "error": errors.get(label),
                    # the penalties the engine applied, resolved (given / model's config / neutral)
                    "decoding": settings.get("resolved_decoding"),
                }
            )

        def shared(field: str, default: str) -> str:
            values = {getattr(specs[e["label"]], field) for e in engines if field in self.engines[e["label"]].applies}
            return values.pop() if len(values) == 1 else ("mixed" if values else default)

        return Snapshot(
            model={
                "name": model_name(self.model_dir),
                "path": str(self.model_dir),
                "fingerprint": model_fingerprint(self.model_dir),
                "dtype": shared("dtype", "decided by the server"),
                "attn": shared("attn", "decided by the server"),
                # the embedding's rows: every token id of the run lies below (checked when opened)
                **({"vocab_size": vocab} if (vocab := self.tokenizer.model_vocab_size) else {}),
            },
            decoding={
                "max_new_tokens": self.config.settings.max_new_tokens,
                "top_k": self.config.settings.top_k,
                "stop_at_eos": self.config.settings.stop_at_eos,
                "fragile_threshold": self.config.fragile_threshold,
            },
            reference=self.config.reference,
            engines=engines,
            prompts=[],
            environment=environment_info(self.config.engines[0].device),
            notes=self.notes,
            batches=[
                self.batch_record(call, made)
                for call in calls
                if (made := [label for label in call.engines if label in labels])
            ],
        )

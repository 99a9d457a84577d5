"""Run a nondeterminism protocol (``gendiff determinism``): the trials of
:func:`gendiff.records.determinism.layout`, each one engine call through :meth:`Session.run`
(so every engine batches them its own way: hf-left/hf-right/packed/vLLM put the watched prompt
beside the others), then per engine the Spread of the watched prompt's completions and, for the
most common split, a bisection of the engine against itself: the trial that gave the most common
completion and the first trial of that split, each replayed in its own batch with the most
common's tokens forced."""

from __future__ import annotations

import threading
from dataclasses import replace

from gendiff.defaults import TOLERANCE
from gendiff.records.classify import classify
from gendiff.records.determinism import Determinism, Spread, Trial, layout, spread
from gendiff.records.divergence import compare
from gendiff.records.events import OnEvent
from gendiff.records.trace import Trace
from gendiff.run.diagnosis import bisect
from gendiff.run.options import RunOptions
from gendiff.run.session import Session

PREFIX_CUTS = (0.25, 0.5, 0.75)


def prompt_pool(protocol: str, prompt: str, others: list[str]) -> list[str]:
    """The watched prompt first, then the fillers the protocol puts beside it."""
    others = [text for text in others if text != prompt]
    if protocol in ("repeat", "single"):
        return [prompt]
    if protocol == "mixed":  # short: a word or two; long: several prompts run together
        short = [" ".join(text.split()[:2]) for text in others[:3]]
        long = [" ".join(others[i:] + others[:i]) for i in range(min(3, len(others)))]
        return [prompt] + [text for text in short + long if text.strip()]
    if protocol == "prefix":
        words = prompt.split(" ")
        cuts = dict.fromkeys(" ".join(words[: max(1, round(len(words) * f))]) for f in PREFIX_CUTS)
        return [prompt] + [cut for cut in cuts if cut.strip() and cut != prompt]
    return [prompt] + others


def trial_plan(
    protocol: str, prompt: str, others: list[str], trials: int, seed: int, max_batch: int
) -> tuple[list[str], list[Trial]]:
    """The pool (:func:`prompt_pool`) and the trials laid out from ``seed``: what
    :func:`run_protocol` runs (the app's estimate reads each trial's rows from it)."""
    pool = prompt_pool(protocol, prompt, others)
    return pool, layout(protocol, trials, seed, len(pool) - 1, max_batch)


def run_protocol(
    options: RunOptions,
    protocol: str,
    prompt: str,
    others: list[str],
    trials: int,
    seed: int,
    max_batch: int,
    *,
    diagnose: bool = False,
    tolerance: float = TOLERANCE,
    on_event: OnEvent | None = None,
    cancel: threading.Event | None = None,
) -> Determinism:
    """Run ``protocol`` for ``prompt`` with ``trials`` trials laid out from ``seed``. Once
    ``cancel`` is set the trial under way stops after its current step and is dropped: the record
    holds the trials that finished, marked ``partial``."""
    pool, plan = trial_plan(protocol, prompt, others, trials, seed, max_batch)
    largest = max(len(t.prompts) for t in plan)
    # one trial is one engine call: the batch holds all its rows
    session = Session(replace(options, batch_size=max(options.batch_size, largest)).config(), pool)
    watched: dict[str, list[Trace]] = {}
    errors: dict[str, str] = {}
    finished: list[Trial] = []
    for trial in plan:
        if cancel is not None and cancel.is_set():
            break
        snapshot = session.run(on_event, cancel, prompt_indices=list(trial.prompts))
        if cancel is not None and cancel.is_set():
            break  # this trial was cut short: its completions are not a trial's
        finished.append(trial)
        for entry in snapshot.engines:
            if entry.get("error"):
                errors.setdefault(entry["label"], entry["error"])
        for label, trace in snapshot.prompts[trial.row].traces.items():
            watched.setdefault(label, []).append(trace)
    specs = {spec.label: spec for spec in session.config.engines}
    spreads: dict[str, Spread] = {}
    completions: dict[str, list[tuple[int, ...]]] = {}
    bisections: dict[str, object] = {}
    for label, traces in watched.items():
        if label in errors:
            continue
        completions[label] = [tuple(t.token_ids) for t in traces]
        first = spread(completions[label])
        mode = traces[first.mode_trial]
        dtype = specs[label].dtype
        classes = {
            i: classify(compare(mode, t, session.config.fragile_threshold), dtype, session.config.fragile_threshold)
            for i, t in enumerate(traces)
            if completions[label][i] != completions[label][first.mode_trial]
        }
        texts = {s.token_id: s.text for t in traces for s in t.steps}
        spreads[label] = spread(completions[label], classes, texts)
        if diagnose and spreads[label].splits and not (cancel is not None and cancel.is_set()):
            split = spreads[label].splits[0]
            bisections[label] = _bisect(
                session, label, finished, traces, first.mode_trial, split.first_trial, split.step, tolerance
            )
    cut = len(finished) < len(plan)
    return Determinism(
        protocol,
        seed,
        tuple(pool),
        tuple(finished),
        completions,
        spreads,
        bisections,
        errors,
        partial=cut,
        planned=len(plan),
        traces={label: watched[label] for label in completions},
    )


def _bisect(
    session: Session,
    label: str,
    plan: list[Trial],
    traces: list[Trace],
    mode: int,
    other: int,
    step: int,
    tolerance: float,
) -> object:
    """The engine against itself: the most common's trial and the split's, each in its own batch."""
    engine = session.engines[label]

    def case(trial: Trial) -> tuple[list[list[int]], int]:
        return [list(session.token_ids[i]) for i in trial.prompts], trial.row

    batch, row = case(plan[mode])
    return bisect(
        engine,
        engine,
        batch,
        row,
        traces[mode],
        traces[other],
        step,
        session.config.settings,
        tolerance,
        case(plan[other]),
    )

"""``--stats`` and ``gendiff score``: teacher-forced passes whose every position is reduced to the
statistics of :mod:`gendiff.records.statistics` (KL, same top-1, Δp, loss) as the engine runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from gendiff.defaults import FORCED_LOGPROBS
from gendiff.errors import GendiffError, InputError
from gendiff.records.llama_stats import full_set
from gendiff.records.snapshot import Snapshot
from gendiff.records.statistics import DistributionStats, Positions, aggregate, from_positions
from gendiff.run.forced import compare_forced
from gendiff.run.session import Session


class DistributionComparer:
    """The observer of one engine's teacher-forced pass (see ``TraceBuilder.add_rows``).

    ``targets``: per prompt (its index in the pass), the tokens fed. With ``reference=None`` it
    records the logits (this is the reference's pass); otherwise it compares each
    position with ``reference``'s records and keeps only the per-position numbers.
    """

    def __init__(self, targets: dict[int, list[int]], reference: DistributionComparer | None = None) -> None:
        self.targets = targets
        self.reference = reference
        self.logits: dict[tuple[int, int], Any] = {}  # the reference's, per (prompt, step)
        self.positions: dict[int, Positions] = {}

    def __call__(self, prompt_indices: list[int], steps: list[int], logits: Any) -> None:
        import torch

        rows = [i for i, (p, s) in enumerate(zip(prompt_indices, steps)) if s < len(self.targets.get(p, ()))]
        if not rows:
            return
        # the logits are exact (model dtype, or float32); KL of close distributions cancels a lot,
        # so log_softmax and the sums run in float64 (float32 sums are off by ~2e-7)
        scores = (logits[rows] if len(rows) < len(steps) else logits).float()
        logprobs = torch.log_softmax(scores.double(), dim=-1)
        keys = [(prompt_indices[i], steps[i]) for i in rows]
        target = torch.tensor([self.targets[p][s] for p, s in keys], device=logprobs.device)
        own = logprobs.gather(-1, target[:, None])[:, 0]
        own_top1 = logprobs.argmax(-1)
        chose = (own_top1 == target).tolist()
        if self.reference is None:
            # the reference against itself: KL 0, same top-1, Δp 0 by definition; only keep its logits
            for key, row in zip(keys, scores):
                self.logits[key] = row.clone()  # float32 (4 bytes per token), not float64
            kld, same, dp = [0.0] * len(keys), [True] * len(keys), [0.0] * len(keys)
        else:
            stored = torch.stack([self.reference.logits[key] for key in keys]).to(logprobs.device)
            reference = torch.log_softmax(stored.double(), dim=-1)
            p = reference.exp()
            # KL(P || Q): a token P gives no mass adds nothing, even where Q has none either
            terms = torch.where(p > 0, p * (reference - logprobs), 0.0)
            kld = terms.sum(-1).clamp_min(0.0).tolist()  # rounding can make an exact zero -1e-9
            same = (reference.argmax(-1) == own_top1).tolist()
            dp = (own.exp() - p.gather(-1, target[:, None])[:, 0]).tolist()
        numbers = zip(keys, kld, same, dp, own.tolist(), chose)
        for (prompt, step), k, s, d, lp, c in numbers:
            positions = self.positions.setdefault(prompt, Positions())
            positions.kld[step], positions.same[step], positions.dp[step], positions.nll[step] = k, s, d, -lp
            positions.chose_target[step] = c

    def stats(self) -> dict[int, DistributionStats]:
        """Per prompt (its index in the pass)."""
        return {prompt: from_positions(positions) for prompt, positions in self.positions.items()}

    def totals(self, reference: DistributionComparer | None) -> DistributionStats:
        """Over every position of every prompt, with llama.cpp's whole set and δ against
        ``reference``'s own teacher-forced pass (see :func:`full_statistics`)."""
        return replace(aggregate(self.positions), full=full_statistics(self, reference))


def check_forced(engines: list[tuple[str, Any]]) -> None:
    """Before any model work: an engine that reports logprobs on given tokens but can't here
    (llama.cpp's server has no prompt logprobs) is bad input, one line."""
    for _label, engine in engines:
        if not engine.can_replay and engine.forced_logprobs:
            problem = engine.forced_problem()
            if problem:
                raise InputError(problem)


def teacher_forced(
    engines: list[tuple[str, Any]],
    batch: list[list[int]],
    targets: dict[int, list[int]],
    settings: Any,
    on_engine: Callable[[str], None] | None = None,
) -> tuple[dict[str, DistributionComparer], list[str]]:
    """One teacher-forced pass per engine over ``batch`` (all rows together, as in a run),
    feeding ``targets[row]``; the first engine is the reference. Engines that can't be replayed
    and report no logprobs on given tokens are left out with a note; those that do (vLLM, a vLLM
    server: ``Engine.forced_pass``) are compared on what they report (run/forced.py). Returns
    each engine's comparer and the notes."""
    check_forced(engines)
    notes: list[str] = []
    comparers: dict[str, DistributionComparer] = {}
    reference: DistributionComparer | None = None
    for position, (label, engine) in enumerate(engines):
        if not engine.can_replay and (position == 0 or not engine.forced_logprobs):
            note = f"{label}: can't be teacher-forced, so it has no distribution statistics (the hf-* and packed engines can)"
            if position == 0:
                raise_no_reference(label)
            notes.append(note)
            continue
        if on_engine is not None:
            on_engine(label)
        comparer = DistributionComparer(targets, reference)
        if not engine.can_replay:
            assert reference is not None  # the first engine replays (raise_no_reference)
            reported = engine.forced_pass(batch, {row: list(ids) for row, ids in targets.items()}, FORCED_LOGPROBS)
            comparer.positions = compare_forced(reported, reference.logits, label)
            notes.append(_forced_note(label, reported))
            comparers[label] = comparer
            continue
        engine.replay(batch, settings, {row: list(ids) for row, ids in targets.items()}, observer=comparer)
        comparers[label] = comparer
        if reference is None:
            reference = comparer
    return comparers, notes


def _forced_note(label: str, reported: Any) -> str:
    if reported.top_k is None:
        return f"{label}: {reported.how}; every position over the whole vocabulary (full KL)"
    return (
        f"{label}: {reported.how}; only its top {reported.top_k} per position: its KLD is a lower bound on the "
        "full KL (≥; see docs/forced.md)"
    )


def raise_no_reference(label: str) -> None:

    raise GendiffError(
        f"--stats: the reference {label} can't be teacher-forced; pick an hf-* or packed engine as --reference"
    )


def attach_statistics(
    session: Session, snapshot: Snapshot, on_engine: Callable[[str], None] | None = None
) -> list[str]:
    """``gendiff run --stats``: teacher-force every engine on the reference's tokens and store the
    statistics per prompt and engine, and per engine over all prompts; returns notes."""
    reference = snapshot.reference
    labels = [label for label in session.run_order() if label in snapshot.engine_labels]
    batch = [list(prompt.token_ids) for prompt in snapshot.prompts]
    targets = {}
    for row, prompt in enumerate(snapshot.prompts):
        trace = prompt.traces.get(reference)
        if trace is not None and trace.finish_reason != "error" and trace.steps:
            targets[row] = list(trace.token_ids)
    notes: list[str] = []
    if not targets:
        return ["--stats: the reference produced no tokens; no statistics"]
    failed = {e["label"] for e in snapshot.engines if e.get("error")}
    engines = [(label, session.engines[label]) for label in labels if label not in failed]
    settings = replace(session.config.settings, max_new_tokens=max(len(t) for t in targets.values()))
    comparers, notes = teacher_forced(engines, batch, targets, settings, on_engine)
    for label, comparer in comparers.items():
        for row, stats in comparer.stats().items():
            snapshot.prompts[row].statistics[label] = stats
        snapshot.statistics[label] = comparer.totals(comparers.get(reference))
    ref = comparers.get(reference)
    if ref is not None and not all(all(p.chose_target.values()) for p in ref.positions.values()):
        notes.append(f"--stats: {reference} chose other tokens when replayed than in the run (not deterministic)")
    return notes


def full_statistics(comparer: DistributionComparer, reference: DistributionComparer | None) -> dict[str, Any] | None:
    """llama.cpp's whole set over all prompts; base = the reference's own teacher-forced nll."""
    if reference is None:
        return None
    kld, dp, same, nll, base = [], [], [], [], []
    for prompt in sorted(comparer.positions):
        mine, theirs = comparer.positions[prompt], reference.positions.get(prompt)
        for step in sorted(mine.kld):
            if theirs is None or step not in theirs.nll or step not in mine.nll:
                continue
            kld.append(mine.kld[step])
            dp.append(mine.dp[step])
            same.append(mine.same[step])
            nll.append(mine.nll[step])
            base.append(theirs.nll[step])
    return full_set(kld, dp, same, nll, base) if kld else None

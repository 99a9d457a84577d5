"""How far apart two engines' next-token distributions are, over whole continuations.

The set ``llama-perplexity --kl-divergence`` reports. Every engine is teacher-forced on the same
tokens (the reference's greedy continuation, or given text for ``gendiff score``); at every
position the engine's full next-token distribution Q is compared with the reference's P:

- ``kld``: KL(P ‖ Q) = Σ p (log p − log q), in nats (the engine "from" the reference);
- ``same_top1``: whether both distributions have the same argmax;
- ``dp``: q(t) − p(t), the change of the probability of the token t that comes next;
- ``loss``: −log q(t), the engine's per-token cross-entropy on that text.

Full distributions are vocabulary-sized, so none is stored in a trace: the reference's pass
keeps its logits (float32) in memory until the other engines' passes are done, and every other
engine's pass reduces each position to these four numbers as it runs (an observer on the
engine's own decode loop: the same batches, shapes and kernels as its plain run).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gendiff.session import Session
    from gendiff.snapshot import Snapshot


@dataclass(frozen=True)
class DistributionStats:
    """Per-position comparisons reduced to llama.cpp's summary. ``kld_steps``: KL per position
    (per prompt only: the sparkline); ``kld_max_prompt``: on an aggregate, where the max was."""

    positions: int
    kld_mean: float | None
    kld_median: float | None
    kld_p99: float | None
    kld_max: float | None
    kld_max_position: int | None
    same_top1: float | None
    dp_mean: float | None
    dp_rms: float | None
    loss: float | None = None
    kld_steps: tuple[float, ...] = ()
    kld_max_prompt: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "positions": self.positions,
            "kld_mean": self.kld_mean,
            "kld_median": self.kld_median,
            "kld_p99": self.kld_p99,
            "kld_max": self.kld_max,
            "kld_max_position": self.kld_max_position,
            "same_top1": self.same_top1,
            "dp_mean": self.dp_mean,
            "dp_rms": self.dp_rms,
            "loss": self.loss,
        }
        if self.kld_steps:
            data["kld_steps"] = list(self.kld_steps)
        if self.kld_max_prompt is not None:
            data["kld_max_prompt"] = self.kld_max_prompt
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DistributionStats:
        return cls(
            positions=int(data["positions"]),
            kld_mean=data.get("kld_mean"),
            kld_median=data.get("kld_median"),
            kld_p99=data.get("kld_p99"),
            kld_max=data.get("kld_max"),
            kld_max_position=data.get("kld_max_position"),
            same_top1=data.get("same_top1"),
            dp_mean=data.get("dp_mean"),
            dp_rms=data.get("dp_rms"),
            loss=data.get("loss"),
            kld_steps=tuple(float(v) for v in data.get("kld_steps") or ()),
            kld_max_prompt=data.get("kld_max_prompt"),
        )


@dataclass
class Positions:
    """The per-position numbers of one (prompt, engine), indexed by step."""

    kld: dict[int, float] = field(default_factory=dict)
    same: dict[int, bool] = field(default_factory=dict)
    dp: dict[int, float] = field(default_factory=dict)
    nll: dict[int, float] = field(default_factory=dict)
    chose_target: dict[int, bool] = field(default_factory=dict)  # the engine's own argmax is the token fed


def quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    where = q * (len(ordered) - 1)
    low = math.floor(where)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (where - low)


def summarize(
    kld: list[float], same: list[bool], dp: list[float], nll: list[float], keep_steps: bool = True
) -> DistributionStats:
    """Reduce per-position numbers (in position order) to a :class:`DistributionStats`."""
    n = len(kld)
    if n == 0:
        return DistributionStats(0, None, None, None, None, None, None, None, None)
    top = max(range(n), key=lambda i: kld[i])
    return DistributionStats(
        positions=n,
        kld_mean=sum(kld) / n,
        kld_median=quantile(kld, 0.5),
        kld_p99=quantile(kld, 0.99),
        kld_max=kld[top],
        kld_max_position=top,
        same_top1=sum(same) / n,
        dp_mean=sum(dp) / n,
        dp_rms=math.sqrt(sum(v * v for v in dp) / n),
        loss=sum(nll) / len(nll) if nll else None,
        kld_steps=tuple(kld) if keep_steps else (),
    )


def from_positions(positions: Positions) -> DistributionStats:
    steps = sorted(positions.kld)
    return summarize(
        [positions.kld[s] for s in steps],
        [positions.same[s] for s in steps],
        [positions.dp[s] for s in steps],
        [positions.nll[s] for s in steps if s in positions.nll],
    )


def aggregate(per_prompt: dict[int, Positions]) -> DistributionStats:
    """One engine over all prompts: every position of every prompt counts once."""
    kld, same, dp, nll, where = [], [], [], [], []
    for prompt in sorted(per_prompt):
        positions = per_prompt[prompt]
        for step in sorted(positions.kld):
            kld.append(positions.kld[step])
            same.append(positions.same[step])
            dp.append(positions.dp[step])
            if step in positions.nll:
                nll.append(positions.nll[step])
            where.append((prompt, step))
    stats = summarize(kld, same, dp, nll, keep_steps=False)
    if not kld:
        return stats
    prompt, step = where[max(range(len(kld)), key=lambda i: kld[i])]
    return DistributionStats(**{**stats.__dict__, "kld_max_position": step, "kld_max_prompt": prompt})


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
        if self.reference is None:
            for key, row in zip(keys, scores):
                self.logits[key] = row.clone()  # float32 (4 bytes per token), not float64
            reference = logprobs
        else:
            stored = torch.stack([self.reference.logits[key] for key in keys]).to(logprobs.device)
            reference = torch.log_softmax(stored.double(), dim=-1)
        p = reference.exp()
        # KL(P || Q): a token P gives no mass adds nothing, even where Q has none either
        terms = torch.where(p > 0, p * (reference - logprobs), torch.zeros_like(p))
        kld = terms.sum(-1).clamp_min(0.0)  # rounding can make an exact zero -1e-9
        same = reference.argmax(-1) == logprobs.argmax(-1)
        dp = own.exp() - reference.gather(-1, target[:, None])[:, 0].exp()
        chose = (logprobs.argmax(-1) == target).tolist()
        numbers = zip(keys, kld.tolist(), same.tolist(), dp.tolist(), own.tolist(), chose)
        for (prompt, step), k, s, d, lp, c in numbers:
            positions = self.positions.setdefault(prompt, Positions())
            positions.kld[step], positions.same[step], positions.dp[step], positions.nll[step] = k, s, d, -lp
            positions.chose_target[step] = c

    def stats(self) -> dict[int, DistributionStats]:
        return {prompt: from_positions(positions) for prompt, positions in self.positions.items()}


def teacher_forced(
    engines: list[tuple[str, Any]],
    batch: list[list[int]],
    targets: dict[int, list[int]],
    settings: Any,
    on_engine: Callable[[str], None] | None = None,
) -> tuple[dict[str, DistributionComparer], list[str]]:
    """One teacher-forced pass per engine over ``batch`` (all rows together, as in a run),
    feeding ``targets[row]``; the first engine is the reference. Engines that can't be replayed
    (vLLM) are left out with a note. Returns each engine's comparer and the notes."""
    notes: list[str] = []
    comparers: dict[str, DistributionComparer] = {}
    reference: DistributionComparer | None = None
    for position, (label, engine) in enumerate(engines):
        if not engine.can_replay:
            note = f"{label}: can't be teacher-forced, so it has no distribution statistics (the hf-* and packed engines can)"
            if position == 0:
                raise_no_reference(label)
            notes.append(note)
            continue
        if on_engine is not None:
            on_engine(label)
        comparer = DistributionComparer(targets, reference)
        engine.replay(batch, settings, {row: list(ids) for row, ids in targets.items()}, observer=comparer)
        comparers[label] = comparer
        if reference is None:
            reference = comparer
    return comparers, notes


def raise_no_reference(label: str) -> None:
    from gendiff.errors import GendiffError

    raise GendiffError(
        f"--stats: the reference {label} can't be teacher-forced; pick an hf-* or packed engine as --reference"
    )


def attach_statistics(
    session: Session, snapshot: Snapshot, on_engine: Callable[[str], None] | None = None
) -> list[str]:
    """``gendiff run --stats``: teacher-force every engine on the reference's tokens and store the
    statistics per prompt and engine, and per engine over all prompts; returns notes."""
    from dataclasses import replace

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
        snapshot.statistics[label] = aggregate(comparer.positions)
    ref = comparers.get(reference)
    if ref is not None and not all(all(p.chose_target.values()) for p in ref.positions.values()):
        notes.append(f"--stats: {reference} chose other tokens when replayed than in the run (not deterministic)")
    return notes

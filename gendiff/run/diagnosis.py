"""Explain a divergence: where in the network it starts (bisection) and whether it lasts (re-convergence).

Both replay the engines with teacher forcing: the prompt's row is fed the reference's tokens,
the other prompts of the run go on as they did, so each engine repeats its own computation
(same batch, same shapes, same kernels) up to the divergent step.

- :func:`bisect` captures every module's output at the divergent position in both engines
  (see :mod:`gendiff.engines.probe`) and finds the first one that differs.
- :func:`reconverge` feeds the other engine the reference's tokens past the divergence and
  records where its own choice still differs.

The records (:mod:`gendiff.records`) are plain data and go into snapshots next to their
Divergence. A bisection that cannot run records why instead of raising: the run is kept.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gendiff.defaults import TOLERANCE
from gendiff.engines.base import Engine
from gendiff.engines.probe import Probe
from gendiff.engines.settings import GenerationSettings
from gendiff.errors import GendiffError, describe
from gendiff.records.bisection import Bisection, KeyValueDiff, ModuleDiff, PositionDiff, PositionSplit
from gendiff.records.reconvergence import LASTING, TRANSIENT, UNDETERMINED, Reconvergence
from gendiff.records.trace import Trace

__all__ = [
    "LASTING",
    "TRANSIENT",
    "UNDETERMINED",
    "Bisection",
    "Reconvergence",
    "bisect",
    "reconverge",
]


def _replay_batch(engine: Engine, batch: list[list[int]], row: int) -> tuple[list[list[int]], int]:
    """The prompts an engine must replay to repeat its computation for ``row``: the whole batch,
    or the prompt alone for engines that run each prompt on its own."""
    if engine.isolates_prompts:
        return [batch[row]], 0
    return batch, row


def bisect(
    reference: Engine,
    other: Engine,
    batch: list[list[int]],
    row: int,
    reference_trace: Trace,
    other_trace: Trace,
    step: int,
    settings: GenerationSettings,
    tolerance: float = TOLERANCE,
    other_case: tuple[list[list[int]], int] | None = None,
) -> Bisection:
    """Bisect the divergence of ``other`` from ``reference`` at ``step`` on ``batch[row]``.

    ``batch`` holds the token ids of every prompt of the run (as the engines saw them together);
    ``other_case`` (batch, row): ``other`` replays that call instead (one engine against itself
    in two batches: ``gendiff determinism``).
    Never raises for a model or engine it cannot probe: the Bisection's ``error`` says why.
    """
    position = len(batch[row]) + step - 1
    failed = Bisection(
        reference.spec.label, other.spec.label, reference_trace.prompt_index, step, tolerance, (), False, position
    )
    try:
        cases = ((batch, row), other_case or (batch, row))
        probes, chosen = _replay_both(reference, other, cases, reference_trace, step, settings)
    except Exception as exc:  # noqa: BLE001 — a failed bisection is recorded, the run is kept
        return replace(failed, error=describe(exc).removeprefix("bisection: "))
    ref_probe, other_probe = probes
    modules = []
    for name, a in ref_probe.captured.items():
        b = other_probe.captured.get(name)
        if b is None or b.shape != a.shape:
            continue
        equal, rel, largest = _difference(a, b)
        label = ref_probe.labels[name]
        modules.append(ModuleDiff(name, equal, rel, largest, label.role, label.layer))
    in_run = (
        [reference_trace.steps[step].token_id, other_trace.steps[step].token_id]
        if len(other_trace.steps) > step
        else None
    )
    return replace(
        failed,
        modules=tuple(modules),
        reproduced=chosen == in_run,
        key_values=_key_values(ref_probe, other_probe),
        position_splits=_position_splits(ref_probe, other_probe, position),
    )


def _replay_both(
    reference: Engine,
    other: Engine,
    cases: tuple[tuple[list[list[int]], int], tuple[list[list[int]], int]],
    reference_trace: Trace,
    step: int,
    settings: GenerationSettings,
) -> tuple[list[Any], list[int]]:
    """Replay both engines, each on its (batch, row), to ``step`` with the reference's tokens
    forced and a probe attached."""

    forced = list(reference_trace.token_ids[: step + 1])
    if len(forced) <= step:
        raise GendiffError(f"the reference has no token at step {step} (it stopped earlier)")
    until = replace(settings, max_new_tokens=step + 1)
    probes, chosen = [], []
    for engine, (batch, row) in zip((reference, other), cases):
        prompts, target = _replay_batch(engine, batch, row)
        probe = Probe(target, step)
        traces = engine.replay(prompts, until, {target: forced}, probe)
        steps = traces[target].steps
        if len(steps) <= step or not probe.captured:
            raise GendiffError(f"{engine.spec.label} did not reach step {step} when replayed")
        probes.append(probe)
        chosen.append(steps[step].token_id)
    return probes, chosen


def _difference(a: Any, b: Any) -> tuple[bool, float, float]:
    """(bitwise equal, ||b - a|| / ||a||, max |b - a|); a zero ``a`` gives the absolute norm."""
    import torch

    diff = (b - a).double()
    norm, diff_norm = float(a.double().norm()), float(diff.norm())
    rel = diff_norm / norm if norm > 0 else diff_norm
    return bool(torch.equal(a, b)), rel, float(diff.abs().max()) if diff.numel() else 0.0


def _position_splits(ref_probe: Any, other_probe: Any, position: int) -> tuple[PositionSplit, ...]:
    """For each position before ``position``, the first in-layer module whose output there differs;
    ordered by that module's place in the execution order, then by position."""
    import torch

    order = list(ref_probe.positions)
    splits: dict[int, tuple[int, PositionSplit]] = {}
    for rank, name in enumerate(order):
        label = ref_probe.labels.get(name)
        theirs = other_probe.positions.get(name, {})
        for pos, a in ref_probe.positions[name].items():
            b = theirs.get(pos)
            if pos >= position or pos in splits or b is None or b.shape != a.shape or torch.equal(a, b):
                continue
            _, rel, _ = _difference(a, b)
            role, layer = (label.role, label.layer) if label else ("module", None)
            splits[pos] = (rank, PositionSplit(pos, name, role, layer, rel))
    return tuple(split for _, split in sorted(splits.values(), key=lambda item: (item[0], item[1].position)))


def _key_values(ref_probe: Any, other_probe: Any) -> tuple[KeyValueDiff, ...]:
    """Per key/value source, the positions of the row whose output differs between the engines."""
    out = []
    for name, ref_positions in ref_probe.keys_values.items():
        other_positions = other_probe.keys_values.get(name, {})
        label = ref_probe.labels.get(name)
        if label is None or label.layer is None:
            continue
        compared, differing = 0, []
        for position, a in sorted(ref_positions.items()):
            b = other_positions.get(position)
            if b is None or b.shape != a.shape:
                continue
            compared += 1
            equal, rel, largest = _difference(a, b)
            if not equal:
                differing.append(PositionDiff(position, rel, largest))
        out.append(KeyValueDiff(label.layer, name, label.role, compared, tuple(differing)))
    return tuple(out)


def reconverge(
    other: Engine,
    batch: list[list[int]],
    row: int,
    reference_trace: Trace,
    other_trace: Trace,
    step: int,
    settings: GenerationSettings,
) -> Reconvergence:
    """Feed ``other`` the reference's tokens for ``batch[row]`` and see where it still disagrees.

    Never raises for a replay that fails: the Reconvergence's ``error`` says why (verdict ``failed``).
    """
    forced = list(reference_trace.token_ids)
    failed = Reconvergence(reference_trace.engine, other.spec.label, reference_trace.prompt_index, step, 0, (), False)
    try:
        prompts, target = _replay_batch(other, batch, row)
        traces = other.replay(prompts, settings, {target: forced})
    except Exception as exc:  # noqa: BLE001 — a failed re-convergence is recorded, the run is kept
        return replace(failed, error=describe(exc))
    own = [s.token_id for s in traces[target].steps]
    mismatches = tuple(i for i, (mine, theirs) in enumerate(zip(own, forced)) if mine != theirs)
    reproduced = len(own) > step and len(other_trace.steps) > step and own[step] == other_trace.steps[step].token_id
    checked = min(len(own), len(forced))
    return replace(
        failed,
        steps_checked=checked,
        mismatches=mismatches,
        reproduced=reproduced,
        forced_steps=tuple(traces[target].steps[:checked]),
    )

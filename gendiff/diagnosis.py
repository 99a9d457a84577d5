"""Explain a divergence: where in the network it starts (bisection) and whether it lasts (re-convergence).

Both replay the engines with teacher forcing: the prompt's row is fed the reference's tokens,
the other prompts of the run go on as they did, so each engine repeats its own computation
(same batch, same shapes, same kernels) up to the divergent step.

- :func:`bisect` captures every module's output at the divergent position in both engines
  (see :mod:`gendiff.engines.probe`) and finds the first one that differs.
- :func:`reconverge` feeds the other engine the reference's tokens past the divergence and
  records where its own choice still differs.

The records are plain data (no torch) and go into snapshots next to their Divergence.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from gendiff.errors import GendiffError
from gendiff.trace import Trace

if TYPE_CHECKING:  # divergence and snapshot import this module: keep the engines out of their path
    from gendiff.engines.base import Engine, GenerationSettings

DEFAULT_TOLERANCE = 1e-3

TRANSIENT = "transient flip"
LASTING = "lasting fork"
UNDETERMINED = "undetermined"


@dataclass(frozen=True)
class ModuleDiff:
    """One module's output at the divergent position, reference vs other."""

    name: str
    equal: bool  # bitwise
    rel_diff: float  # ||other - reference|| / ||reference||
    max_abs_diff: float

    @property
    def layer(self) -> int | None:
        parts = self.name.split(".")
        return int(parts[1]) if parts[0] == "layers" and len(parts) > 1 else None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "equal": self.equal, "rel_diff": self.rel_diff, "max_abs_diff": self.max_abs_diff}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModuleDiff:
        return cls(str(data["name"]), bool(data["equal"]), float(data["rel_diff"]), float(data["max_abs_diff"]))


@dataclass(frozen=True)
class Bisection:
    """Every module's output at the divergent step's position, compared in execution order."""

    reference: str
    engine: str
    prompt_index: int
    step: int
    tolerance: float
    modules: tuple[ModuleDiff, ...]
    reproduced: bool  # the replay chose the same tokens at the step as the run did

    @property
    def first_bitwise(self) -> ModuleDiff | None:
        """The first module whose output is not bitwise identical."""
        return next((m for m in self.modules if not m.equal), None)

    @property
    def first_over_tolerance(self) -> ModuleDiff | None:
        return next((m for m in self.modules if m.rel_diff > self.tolerance), None)

    def layer_outputs(self) -> list[ModuleDiff]:
        """The residual stream after each decoder layer: the per-layer chart."""
        return [m for m in self.modules if m.layer is not None and m.name == f"layers.{m.layer}"]

    def summary(self) -> str:
        first = self.first_bitwise
        if first is None:
            return "every module's output is bitwise identical at this position"
        over = self.first_over_tolerance
        text = f"first differs at {first.name} (rel {first.rel_diff:.2e})"
        if over is None:
            return text + f"; nothing exceeds rel {self.tolerance:g} before the logits"
        if over.name != first.name:
            text += f"; exceeds rel {self.tolerance:g} at {over.name} ({over.rel_diff:.2e})"
        return text

    def to_dict(self) -> dict[str, Any]:
        first, over = self.first_bitwise, self.first_over_tolerance
        return {
            "reference": self.reference,
            "engine": self.engine,
            "prompt_index": self.prompt_index,
            "step": self.step,
            "tolerance": self.tolerance,
            "first_bitwise": first.name if first else None,
            "first_over_tolerance": over.name if over else None,
            "reproduced": self.reproduced,
            "modules": [m.to_dict() for m in self.modules],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Bisection:
        return cls(
            reference=str(data["reference"]),
            engine=str(data["engine"]),
            prompt_index=int(data["prompt_index"]),
            step=int(data["step"]),
            tolerance=float(data["tolerance"]),
            modules=tuple(ModuleDiff.from_dict(m) for m in data["modules"]),
            reproduced=bool(data.get("reproduced", True)),
        )


@dataclass(frozen=True)
class Reconvergence:
    """The other engine fed the reference's tokens: where its own choice still differs.

    ``mismatches`` are the steps (the divergent one included) where it would have picked
    another token. ``rejoin_after`` counts the steps after the divergence until it first agrees
    again (1 = the very next step; None = never, within the reference's tokens). A
    **transient flip** agrees again at the next step; a **lasting fork** does not.
    """

    reference: str
    engine: str
    prompt_index: int
    step: int
    steps_checked: int
    mismatches: tuple[int, ...]
    reproduced: bool

    @property
    def later(self) -> tuple[int, ...]:
        """Mismatching steps after the divergent one."""
        return tuple(s for s in self.mismatches if s > self.step)

    @property
    def rejoin_after(self) -> int | None:
        for offset in range(1, self.steps_checked - self.step):
            if self.step + offset not in self.mismatches:
                return offset
        return None

    @property
    def verdict(self) -> str:
        if self.steps_checked <= self.step + 1:
            return UNDETERMINED
        return TRANSIENT if self.rejoin_after == 1 else LASTING

    def summary(self) -> str:
        if self.verdict == UNDETERMINED:
            return "undetermined: the divergence is at the reference's last token"
        later = len(self.later)
        if self.verdict == TRANSIENT:
            rest = (
                "no later flips"
                if not later
                else f"{later} later flip{'s' if later != 1 else ''} at step {_steps(self.later)}"
            )
            return f"transient flip: fed the reference's token it agrees again at once; {rest}"
        rejoin = self.rejoin_after
        again = f"agrees again after {rejoin} steps" if rejoin else "never agrees again"
        return f"lasting fork: fed the reference's tokens it still differs ({again}; {later} later differing steps)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "engine": self.engine,
            "prompt_index": self.prompt_index,
            "step": self.step,
            "steps_checked": self.steps_checked,
            "mismatches": list(self.mismatches),
            "rejoin_after": self.rejoin_after,
            "later_divergences": len(self.later),
            "verdict": self.verdict,
            "reproduced": self.reproduced,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reconvergence:
        return cls(
            reference=str(data["reference"]),
            engine=str(data["engine"]),
            prompt_index=int(data["prompt_index"]),
            step=int(data["step"]),
            steps_checked=int(data["steps_checked"]),
            mismatches=tuple(int(s) for s in data["mismatches"]),
            reproduced=bool(data.get("reproduced", True)),
        )


def _steps(steps: tuple[int, ...]) -> str:
    shown = ", ".join(str(s) for s in steps[:5])
    return shown + (", …" if len(steps) > 5 else "")


def _replay_batch(engine: Engine, batch: list[list[int]], row: int) -> tuple[list[list[int]], int]:
    """The prompts an engine must replay to repeat its computation for ``row``: the whole batch,
    or the prompt alone for engines that run each prompt on its own."""
    if getattr(engine, "isolates_prompts", False):
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
    tolerance: float = DEFAULT_TOLERANCE,
) -> Bisection:
    """Bisect the divergence of ``other`` from ``reference`` at ``step`` on ``batch[row]``.

    ``batch`` holds the token ids of every prompt of the run (as the engines saw them together).
    """
    import torch

    from gendiff.engines.probe import Probe

    forced = list(reference_trace.token_ids[: step + 1])
    if len(forced) <= step:
        raise GendiffError(f"bisection: the reference has no token at step {step} (it stopped earlier)")
    until = replace(settings, max_new_tokens=step + 1)
    captured = []
    chosen = []
    for engine in (reference, other):
        prompts, target = _replay_batch(engine, batch, row)
        probe = Probe(target, step)
        traces = engine.replay(prompts, until, {target: forced}, probe)
        steps = traces[target].steps
        if len(steps) <= step or not probe.captured:
            raise GendiffError(f"bisection: {engine.spec.label} did not reach step {step} when replayed")
        captured.append(probe.captured)
        chosen.append(steps[step].token_id)
    ref_out, other_out = captured
    modules = []
    for name, a in ref_out.items():
        b = other_out.get(name)
        if b is None or b.shape != a.shape:
            continue
        diff = (b - a).double()
        norm, diff_norm = float(a.double().norm()), float(diff.norm())
        rel = diff_norm / norm if norm > 0 else diff_norm  # a zero reference: the absolute difference
        modules.append(ModuleDiff(name, bool(torch.equal(a, b)), rel, float(diff.abs().max())))
    in_run = (
        [reference_trace.steps[step].token_id, other_trace.steps[step].token_id]
        if len(other_trace.steps) > step
        else None
    )
    reproduced = chosen == in_run
    return Bisection(
        reference=reference.spec.label,
        engine=other.spec.label,
        prompt_index=reference_trace.prompt_index,
        step=step,
        tolerance=tolerance,
        modules=tuple(modules),
        reproduced=reproduced,
    )


def reconverge(
    other: Engine,
    batch: list[list[int]],
    row: int,
    reference_trace: Trace,
    other_trace: Trace,
    step: int,
    settings: GenerationSettings,
) -> Reconvergence:
    """Feed ``other`` the reference's tokens for ``batch[row]`` and see where it still disagrees."""
    forced = list(reference_trace.token_ids)
    prompts, target = _replay_batch(other, batch, row)
    traces = other.replay(prompts, settings, {target: forced})
    own = [s.token_id for s in traces[target].steps]
    mismatches = tuple(i for i, (mine, theirs) in enumerate(zip(own, forced)) if mine != theirs)
    reproduced = len(own) > step and len(other_trace.steps) > step and own[step] == other_trace.steps[step].token_id
    return Reconvergence(
        reference=reference_trace.engine,
        engine=other.spec.label,
        prompt_index=reference_trace.prompt_index,
        step=step,
        steps_checked=min(len(own), len(forced)),
        mismatches=mismatches,
        reproduced=reproduced,
    )

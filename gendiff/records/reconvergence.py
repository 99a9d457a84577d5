"""The re-convergence record a diagnosis leaves next to a Divergence: the other engine fed the
reference's tokens, and whether the split lasts. Plain frozen data, no torch; it goes into
snapshots and loads back. Below :mod:`gendiff.divergence`, which holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gendiff.records.trace import TokenStep

TRANSIENT = "transient flip"
LASTING = "lasting fork"
UNDETERMINED = "undetermined"
FAILED = "failed"


@dataclass(frozen=True)
class Reconvergence:
    """The other engine fed the reference's tokens: where its own choice still differs.

    ``mismatches`` are the steps (the divergent one included) where it would have picked
    another token. ``rejoin_after`` counts the steps after the divergence until it first agrees
    again (1 = the very next step; None = never, within the reference's tokens). A
    **transient flip** agrees again at the next step; a **lasting fork** does not.

    A re-convergence that could not run keeps ``error`` (why), checks no steps and its verdict
    is ``failed``: the run it explains is kept all the same.
    """

    reference: str
    engine: str
    prompt_index: int
    step: int
    steps_checked: int
    mismatches: tuple[int, ...]
    reproduced: bool
    error: str | None = None
    # the engine's own steps while fed the reference's tokens: its top-k after the split are
    # conditioned on the reference's prefix, so they compare like with like (the step explorer)
    forced_steps: tuple[TokenStep, ...] = ()

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
        if self.error is not None:
            return FAILED
        if self.steps_checked <= self.step + 1:
            return UNDETERMINED
        return TRANSIENT if self.rejoin_after == 1 else LASTING

    def summary(self) -> str:
        if self.error is not None:
            return f"failed: {self.error}"
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
            "error": self.error,
            **({"forced_steps": [step.to_dict() for step in self.forced_steps]} if self.forced_steps else {}),
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
            error=data.get("error"),
            forced_steps=tuple(TokenStep.from_dict(step) for step in data.get("forced_steps") or ()),
        )


def _steps(steps: tuple[int, ...]) -> str:
    shown = ", ".join(str(s) for s in steps[:5])
    return shown + (", …" if len(steps) > 5 else "")

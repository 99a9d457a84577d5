"""The float32 re-check of a divergence (``--recheck float32``, ``f``): the record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

AGREES = "agrees"
DIVERGES = "diverges"
RECHECK_DTYPES = ("float32",)


@dataclass(frozen=True)
class Recheck:
    """The pair re-run in ``dtype``: ``verdict`` agrees/diverges, ``step`` where it diverges then."""

    dtype: str
    verdict: str
    step: int | None
    classification: str | None = None

    def summary(self) -> str:
        if self.verdict == AGREES:
            return f"rounding: gone in {self.dtype} (the engines agree on every token there)"
        where = "" if self.step is None else f" at step {self.step}"
        kind = f", {self.classification}" if self.classification else ""
        if self.classification in ("exact-tie", "near-tie"):
            # a tie in the re-check's own precision too: it proves nothing either way
            return f"persists in {self.dtype}{where}{kind}: a tie there too, so this does not settle it"
        return f"persists in {self.dtype}{where}{kind}: not rounding noise"

    def to_dict(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "verdict": self.verdict, "step": self.step, "classification": self.classification}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recheck:
        return cls(str(data["dtype"]), str(data["verdict"]), data.get("step"), data.get("classification"))

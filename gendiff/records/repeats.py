"""How often an engine gives the same completion for a prompt over repeated runs (``--repeat``):
the record, and the first step where completions split. Computed by :mod:`gendiff.run.repeat`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Repeats:
    """One prompt and engine over ``runs`` runs: ``unique`` distinct completions, the first step
    where any two split (None when all agree), and the prompt's row in each run."""

    runs: int
    unique: int
    first_split: int | None
    rows: tuple[int, ...] = ()

    @property
    def deterministic(self) -> bool:
        return self.unique == 1

    def summary(self) -> str:
        if self.deterministic:
            return f"1 unique of {self.runs}"
        return f"{self.unique} unique of {self.runs}, first split at step {self.first_split}"

    def to_dict(self) -> dict[str, Any]:
        return {"runs": self.runs, "unique": self.unique, "first_split": self.first_split, "rows": list(self.rows)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Repeats:
        return cls(int(data["runs"]), int(data["unique"]), data.get("first_split"), tuple(data.get("rows") or ()))


def first_split(completions: list[tuple[int, ...]]) -> int | None:
    """The first step where any two completions differ (a shorter one ending counts); None if all equal."""
    distinct = sorted(set(completions))
    if len(distinct) < 2:
        return None
    split = None
    for a, b in zip(distinct, distinct[1:]):  # sorted: the longest common prefix is between neighbours
        common = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        split = common if split is None else min(split, common)
    return split

"""Which part of a prompt file a snapshot holds: the shard rule and its record.

A prompt's shard is a function of its text alone (:func:`shard_of`: the SHA-256 of its UTF-8
bytes as a big-endian integer, mod the shard count, numbered from 1), so it does not depend on the
prompt's position or on the other prompts: reordering a file or adding prompts moves no prompt to
another shard. ``gendiff run --shard I/N`` runs the prompts of shard I, ``gendiff merge`` joins the
snapshots of several shards; :class:`Shard` is what both record (``"shard"`` in a snapshot).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

RULE = "sha256-utf8-mod"  # the rule's name in a snapshot: int(sha256(text.encode("utf-8")), 16) % count + 1


def prompt_digest(text: str) -> str:
    """A prompt's stable id: the hex SHA-256 of its UTF-8 bytes (surrogates kept, so any str hashes)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def shard_of(text: str, count: int) -> int:
    """The shard (1 … ``count``) that the prompt ``text`` falls in."""
    return int(prompt_digest(text), 16) % count + 1


def prompts_digest(prompts: Sequence[str]) -> str:
    """The hex SHA-256 of a whole prompt list, in order: every shard of one split records the same."""
    return hashlib.sha256(json.dumps(list(prompts), ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Shard:
    """The shards a snapshot holds (``indices``, numbered 1 … ``count``; one for a ``--shard`` run,
    several for a merged snapshot) of a prompt list of ``total`` prompts whose digest is
    ``prompts_sha256``. Prompt ids are positions in that list, so a merged snapshot of every
    shard holds the list's prompts in its order, with its ids."""

    indices: tuple[int, ...]
    count: int
    total: int
    prompts_sha256: str
    rule: str = RULE

    def selects(self, text: str) -> bool:
        return shard_of(text, self.count) in self.indices

    @property
    def label(self) -> str:
        """``2/4``, or ``1,3/4`` for a merged snapshot."""
        return f"{','.join(map(str, self.indices))}/{self.count}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "indices": list(self.indices),
            "count": self.count,
            "rule": self.rule,
            "prompts_total": self.total,
            "prompts_sha256": self.prompts_sha256,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Shard:
        return cls(
            tuple(int(i) for i in data["indices"]),
            int(data["count"]),
            int(data["prompts_total"]),
            str(data["prompts_sha256"]),
            str(data["rule"]),
        )


def select_shard(prompts: Sequence[str], index: int, count: int) -> tuple[list[int], Shard]:
    """The positions of the prompts of shard ``index`` of ``count`` (in the list's order), and its record."""
    positions = [i for i, text in enumerate(prompts) if shard_of(text, count) == index]
    return positions, Shard((index,), count, len(prompts), prompts_digest(prompts))

"""A run's results as plain records: the engine calls (Batch), each prompt's traces and
divergences (PromptResult), and the whole run (Snapshot). ``to_dict``/``from_dict`` give the
dict form of the snapshot schema; reading and writing files is :mod:`gendiff.io.snapshots`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from gendiff import __version__
from gendiff.errors import GendiffError
from gendiff.records.chat import chat_from_data, messages_of
from gendiff.records.divergence import Divergence
from gendiff.records.repeats import Repeats
from gendiff.records.shard import Shard
from gendiff.records.statistics import DistributionStats
from gendiff.records.trace import Trace

SCHEMA_ID = "gendiff.snapshot/2"


@dataclass(frozen=True)
class Batch:
    """One engine call's composition: which prompts ran together, in which rows, with which ids.

    ``prompt_ids[row]`` is the prompt in that row; ``texts`` and ``token_ids`` are what they were
    at run time, so the call can be replayed exactly even after a member was edited or deleted
    (a chat prompt's text is a :class:`~gendiff.records.chat.ChatPrompt`: its messages are stored
    beside, ``messages[row]``, null for a text prompt, written only when the call held one)."""

    id: int
    engines: tuple[str, ...]
    prompt_ids: tuple[int, ...]
    texts: tuple[str, ...]
    token_ids: tuple[tuple[int, ...], ...]

    def row_of(self, prompt_id: int) -> int:
        return self.prompt_ids.index(prompt_id)

    def to_dict(self) -> dict[str, Any]:
        messages = [messages_of(text) for text in self.texts]
        return {
            "id": self.id,
            "engines": list(self.engines),
            "prompt_ids": list(self.prompt_ids),
            "texts": [str(text) for text in self.texts],
            "token_ids": [list(ids) for ids in self.token_ids],
            **({"messages": messages} if any(messages) else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Batch:
        messages = data.get("messages") or [None] * len(data["texts"])
        return cls(
            int(data["id"]),
            tuple(data["engines"]),
            tuple(int(i) for i in data["prompt_ids"]),
            tuple(chat_from_data(text, chat) for text, chat in zip(data["texts"], messages)),
            tuple(tuple(int(t) for t in ids) for ids in data["token_ids"]),
        )


@dataclass
class PromptResult:
    """One prompt's traces and divergences. ``id`` is the prompt's stable identity (traces carry
    it as ``prompt_index``); ``batches`` maps each engine to the :class:`Batch` that produced its trace.
    A chat prompt's ``text`` is a :class:`~gendiff.records.chat.ChatPrompt` and ``token_ids`` its
    rendered template; its ``messages`` are stored beside the text."""

    text: str
    token_ids: list[int]
    traces: dict[str, Trace] = field(default_factory=dict)
    divergences: list[Divergence] = field(default_factory=list)
    id: int = 0
    batches: dict[str, int] = field(default_factory=dict)
    error: str | None = None  # the prompt itself could not run (too long, empty)
    statistics: dict[str, DistributionStats] = field(default_factory=dict)  # --stats, per engine
    repeats: dict[str, Repeats] = field(default_factory=dict)  # --repeat, per engine

    def divergence_for(self, engine: str) -> Divergence | None:
        return next((d for d in self.divergences if d.engine == engine), None)

    def to_dict(self) -> dict[str, Any]:
        messages = messages_of(self.text)
        return {
            "text": str(self.text),
            **({"messages": messages} if messages else {}),
            "token_ids": list(self.token_ids),
            "traces": {label: trace.to_dict() for label, trace in self.traces.items()},
            "divergences": [d.to_dict() for d in self.divergences],
            "id": self.id,
            "batches": dict(self.batches),
            **({"error": self.error} if self.error else {}),
            **({"statistics": {k: v.to_dict() for k, v in self.statistics.items()}} if self.statistics else {}),
            **({"repeats": {k: v.to_dict() for k, v in self.repeats.items()}} if self.repeats else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptResult:
        return cls(
            text=chat_from_data(data["text"], data.get("messages")),
            token_ids=list(data["token_ids"]),
            traces={label: Trace.from_dict(t) for label, t in data["traces"].items()},
            divergences=[Divergence.from_dict(d) for d in data["divergences"]],
            id=int(data["id"]),
            batches={label: int(b) for label, b in data["batches"].items()},
            error=data.get("error"),
            statistics={k: DistributionStats.from_dict(v) for k, v in (data.get("statistics") or {}).items()},
            repeats={k: Repeats.from_dict(v) for k, v in (data.get("repeats") or {}).items()},
        )


@dataclass
class Snapshot:
    """Everything a run produced. ``engines`` is a list of {label, name, settings, error}."""

    model: dict[str, Any]
    decoding: dict[str, Any]
    reference: str
    engines: list[dict[str, Any]]
    prompts: list[PromptResult]
    environment: dict[str, Any] = field(default_factory=dict)  # gendiff.io.environment.environment_info()
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    gendiff_version: str = __version__
    notes: list[str] = field(default_factory=list)
    # set on a comparison of two snapshots (gendiff compare): where each side came from
    sources: list[dict[str, Any]] = field(default_factory=list)
    # the engine calls that produced the traces (see PromptResult.batches)
    batches: list[Batch] = field(default_factory=list)
    # --stats: per engine, over every position of every prompt
    statistics: dict[str, DistributionStats] = field(default_factory=dict)
    # written while a run was going: engines that had not finished a prompt have no trace of it
    partial: bool = False
    # gendiff run --shard / gendiff merge: which shards of which prompt list this holds (None: all of it)
    shard: Shard | None = None

    @property
    def engine_labels(self) -> list[str]:
        return [e["label"] for e in self.engines]

    def batch(self, batch_id: int) -> Batch | None:
        return next((b for b in self.batches if b.id == batch_id), None)

    def prompt_numbers(self) -> list[int]:
        """The number each prompt is shown by (from 1): in a shard's or a merged snapshot its
        position in the prompt file (ids are file positions there), else its place in this one."""
        if self.shard is not None:
            return [prompt.id + 1 for prompt in self.prompts]
        return list(range(1, len(self.prompts) + 1))

    def replay_case(self, prompt: PromptResult, engine: str) -> tuple[list[list[int]], int]:
        """The token ids of every row of the call that produced ``engine``'s trace of ``prompt``,
        and the prompt's row in it: what a replay must run to repeat that computation."""
        batch_id = prompt.batches.get(engine)
        batch = self.batch(batch_id) if batch_id is not None else None
        if batch is None:
            raise GendiffError(f"prompt {prompt.id + 1}: the snapshot does not record which call produced {engine}")
        return [list(ids) for ids in batch.token_ids], batch.row_of(prompt.id)

    def divergences(self) -> list[Divergence]:
        return [d for p in self.prompts for d in p.divergences if d.diverged]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_ID,
            "created": self.created,
            "gendiff_version": self.gendiff_version,
            "environment": self.environment,
            "model": self.model,
            "decoding": self.decoding,
            "reference": self.reference,
            "engines": self.engines,
            "prompts": [p.to_dict() for p in self.prompts],
            "notes": self.notes,
            "batches": [b.to_dict() for b in self.batches],
            **({"sources": self.sources} if self.sources else {}),
            **({"statistics": {k: v.to_dict() for k, v in self.statistics.items()}} if self.statistics else {}),
            **({"partial": True} if self.partial else {}),
            **({"shard": self.shard.to_dict()} if self.shard is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Snapshot:
        return cls(
            model=data["model"],
            decoding=data["decoding"],
            reference=data["reference"],
            engines=data["engines"],
            prompts=[PromptResult.from_dict(p) for p in data["prompts"]],
            environment=data["environment"],
            created=data["created"],
            gendiff_version=data["gendiff_version"],
            notes=list(data.get("notes") or []),
            sources=list(data.get("sources") or []),
            batches=[Batch.from_dict(b) for b in data["batches"]],
            statistics={k: DistributionStats.from_dict(v) for k, v in (data.get("statistics") or {}).items()},
            partial=bool(data.get("partial", False)),
            shard=Shard.from_dict(data["shard"]) if data.get("shard") is not None else None,
        )

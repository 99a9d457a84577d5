"""Snapshot: a run's traces and divergences as JSON, with the environment needed to reproduce it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from gendiff import __version__
from gendiff.divergence import Divergence
from gendiff.environment import environment_info
from gendiff.errors import GendiffError
from gendiff.fileio import atomic_write_text
from gendiff.repeat import Repeats
from gendiff.statistics import DistributionStats
from gendiff.trace import Trace

SCHEMA_ID = "gendiff.snapshot/2"
SCHEMA_FAMILY = "gendiff.snapshot/"
READABLE = ("gendiff.snapshot/1", SCHEMA_ID)  # /1 files are upgraded on load


@dataclass(frozen=True)
class Batch:
    """One engine call's composition: which prompts ran together, in which rows, with which ids.

    ``prompt_ids[row]`` is the prompt in that row; ``texts`` and ``token_ids`` are what they were
    at run time, so the call can be replayed exactly even after a member was edited or deleted."""

    id: int
    engines: tuple[str, ...]
    prompt_ids: tuple[int, ...]
    texts: tuple[str, ...]
    token_ids: tuple[tuple[int, ...], ...]

    def row_of(self, prompt_id: int) -> int:
        return self.prompt_ids.index(prompt_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "engines": list(self.engines),
            "prompt_ids": list(self.prompt_ids),
            "texts": list(self.texts),
            "token_ids": [list(ids) for ids in self.token_ids],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Batch:
        return cls(
            int(data["id"]),
            tuple(data["engines"]),
            tuple(int(i) for i in data["prompt_ids"]),
            tuple(data["texts"]),
            tuple(tuple(int(t) for t in ids) for ids in data["token_ids"]),
        )


@dataclass
class PromptResult:
    """One prompt's traces and divergences. ``id`` is the prompt's stable identity (traces carry
    it as ``prompt_index``); ``batches`` maps each engine to the :class:`Batch` that produced its trace."""

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
        return {
            "text": self.text,
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
            text=data["text"],
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
    environment: dict[str, Any] = field(default_factory=lambda: environment_info())
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    gendiff_version: str = __version__
    notes: list[str] = field(default_factory=list)
    # set on a comparison of two snapshots (gendiff compare): where each side came from
    sources: list[dict[str, Any]] = field(default_factory=list)
    # the engine calls that produced the traces (see PromptResult.batches)
    batches: list[Batch] = field(default_factory=list)
    # --stats: per engine, over every position of every prompt
    statistics: dict[str, DistributionStats] = field(default_factory=dict)

    @property
    def engine_labels(self) -> list[str]:
        return [e["label"] for e in self.engines]

    def batch(self, batch_id: int) -> Batch | None:
        return next((b for b in self.batches if b.id == batch_id), None)

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
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n"

    def save(self, path: str | Path, check: bool = False) -> Path:
        """Write atomically; returns the path written.

        What gendiff writes is built from typed records, so it is not re-validated here (that
        cost 0.2 s per run, 15% of a demo run); ``check=True`` validates first. Every snapshot
        the tests write is validated against the schema, and :meth:`load` always validates."""
        data = self.to_dict()
        if check:
            validate(data, str(path))
        # compact: a 16-prompt run is ~1 MB, a big one hundreds; `python -m json.tool` pretty-prints
        return atomic_write_text(path, json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Snapshot:
        """Read and validate a snapshot (/1 files are upgraded); GendiffError names the file and the problem."""
        file = Path(path).expanduser()
        return cls.from_data(read_json(file, "snapshot"), str(file))

    @classmethod
    def from_data(cls, data: Any, source: str) -> Snapshot:
        """A parsed snapshot file: upgraded from /1 if needed, validated, loaded."""
        if isinstance(data, dict) and data.get("schema") == "gendiff.snapshot/1":
            data = upgrade_v1(data)
        validate(data, source)
        return cls.from_dict(data)


def read_json(file: Path, what: str) -> Any:
    """Parse a JSON file; GendiffError names the file and says what is wrong (missing, unreadable, corrupt)."""
    if file.exists() and not file.is_file() and not file.is_dir():  # a FIFO would block forever
        raise GendiffError(f"{what} {file}: not a regular file; give a .json file")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GendiffError(f"{what} {file}: no such file; check the path") from None
    except IsADirectoryError:
        raise GendiffError(f"{what} {file}: is a folder; give a file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GendiffError(f"{what} {file}: cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise GendiffError(
            f"{what} {file}: not valid JSON (line {exc.lineno}: {exc.msg}); the file is corrupt"
        ) from None


def upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A /1 snapshot as /2: prompt ids are positions, and (as /1 runs always did) every engine ran
    every prompt of the file in one call. A /1 file made by joining runs can't say otherwise."""
    prompts = data.get("prompts")
    if not isinstance(prompts, list) or not all(isinstance(p, dict) for p in prompts):
        return data  # validation names the problem
    labels = [e.get("label") for e in data.get("engines") or [] if isinstance(e, dict)]
    upgraded = dict(data, schema=SCHEMA_ID)
    upgraded["prompts"] = [
        dict(p, id=i, batches={label: 0 for label in p.get("traces") or {}}) for i, p in enumerate(prompts)
    ]
    upgraded["batches"] = [
        {
            "id": 0,
            "engines": labels,
            "prompt_ids": list(range(len(prompts))),
            "texts": [p.get("text") for p in prompts],
            "token_ids": [p.get("token_ids") for p in prompts],
        }
    ]
    return upgraded


def schema() -> dict[str, Any]:
    return json.loads((resources.files("gendiff") / "schema" / "snapshot.schema.json").read_text())


@lru_cache(maxsize=1)
def _outline_validator() -> Any:
    """The schema with trace steps left unchecked: jsonschema takes minutes on 250k steps,
    so :func:`_check_steps` checks those (the same rules) in plain Python."""
    import jsonschema

    outline = schema()
    outline["$defs"]["trace"]["properties"]["steps"] = {"type": "array"}
    return jsonschema.Draft202012Validator(outline)


def validate(data: Any, source: str) -> None:
    """Raise GendiffError if ``data`` does not follow the snapshot schema."""
    import jsonschema

    found = data.get("schema") if isinstance(data, dict) else None
    if isinstance(found, str) and found.startswith(SCHEMA_FAMILY) and found not in READABLE:
        raise GendiffError(
            f"snapshot {source}: schema {found} is a version this gendiff can't read "
            f"(it reads {', '.join(READABLE)}); update gendiff to open it"
        )
    if found != SCHEMA_ID:
        shown = found if found is not None else type(data).__name__
        raise GendiffError(f"snapshot {source}: not a gendiff snapshot (schema {shown!r}, expected {SCHEMA_ID!r})")
    error = jsonschema.exceptions.best_match(_outline_validator().iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "top level"
        raise GendiffError(f"snapshot {source}: invalid at {where}: {error.message}")
    for p, prompt in enumerate(data["prompts"]):
        for label, trace in prompt["traces"].items():
            problem = _check_steps(trace["steps"])
            if problem:
                raise GendiffError(f"snapshot {source}: invalid at prompts/{p}/traces/{label}/steps/{problem}")
    problem = _check_consistency(data)
    if problem:
        raise GendiffError(f"snapshot {source}: {problem}; the file was edited or is corrupt")
    problem = _check_identity(data)
    if problem:
        raise GendiffError(f"snapshot {source}: invalid at {problem}")


def _check_consistency(data: dict[str, Any]) -> str | None:
    """What the schema can't say: traces agree with their prompt and with the engine list
    (a mismatch would crash the comparison or show one prompt's tokens under another)."""
    labels = [engine["label"] for engine in data["engines"]]
    if len(set(labels)) != len(labels):
        return f"engine labels repeat ({', '.join(labels)})"
    if labels and data["reference"] not in labels:
        return f"reference {data['reference']!r} is not among its engines ({', '.join(labels)})"
    for p, prompt in enumerate(data["prompts"]):
        where = f"prompt {p + 1}"
        indices = set()
        for label, trace in prompt["traces"].items():
            if label not in labels:
                return f"{where} has a trace of {label!r}, which is not among its engines ({', '.join(labels)})"
            if trace["engine"] != label:
                return f"{where}: the trace filed under {label!r} says it is of {trace['engine']!r}"
            if list(trace["prompt_token_ids"]) != list(prompt["token_ids"]):
                return f"{where}, {label}: the trace's prompt_token_ids differ from the prompt's token_ids"
            if list(trace["token_ids"]) != [step["token_id"] for step in trace["steps"]]:
                return f"{where}, {label}: the trace's token_ids differ from its steps' token ids"
            indices.add(trace["prompt_index"])
        if len(indices) > 1:
            return f"{where}: its traces give different prompt_index values ({sorted(indices)})"
        for divergence in prompt["divergences"]:
            for key in ("engine", "reference"):
                name = divergence.get(key)
                if name is not None and name not in prompt["traces"]:
                    return f"{where}: a divergence names {key} {name!r}, which has no trace there"
    return None


def _check_identity(data: dict[str, Any]) -> str | None:
    """Prompt ids unique; each trace numbered by its prompt's id and made by a recorded call that holds it."""
    members = {b["id"]: b["prompt_ids"] for b in data["batches"]}
    if len(members) != len(data["batches"]):
        return "batches: two calls share an id"
    for b, batch in enumerate(data["batches"]):
        if not len(batch["prompt_ids"]) == len(batch["texts"]) == len(batch["token_ids"]):
            return f"batches/{b}: prompt_ids, texts and token_ids differ in length"
    seen: set[int] = set()
    for p, prompt in enumerate(data["prompts"]):
        if prompt["id"] in seen:
            return f"prompts/{p}/id: {prompt['id']} appears twice"
        seen.add(prompt["id"])
        for label, trace in prompt["traces"].items():
            if trace["prompt_index"] != prompt["id"]:
                return f"prompts/{p}/traces/{label}/prompt_index: {trace['prompt_index']} is not the prompt's id"
            batch = prompt["batches"].get(label)
            if batch not in members or prompt["id"] not in members[batch]:
                return f"prompts/{p}/batches/{label}: no recorded call holds this prompt"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_candidate(entry: Any, logit_required: bool) -> str | None:
    if not isinstance(entry, dict):
        return "is not an object"
    if not isinstance(entry.get("token_id"), int) or isinstance(entry.get("token_id"), bool):
        return "token_id is not an integer"
    if not isinstance(entry.get("text"), str):
        return "text is not a string"
    if not _is_number(entry.get("logprob")):
        return "logprob is not a number"
    if logit_required and ("logit" not in entry or not (entry["logit"] is None or _is_number(entry["logit"]))):
        return "logit is not a number or null"
    return None


def _check_steps(steps: list[Any]) -> str | None:
    """The schema's ``step`` rules, fast; returns 'index: problem' or None."""
    for index, step in enumerate(steps):
        problem = _check_candidate(step, logit_required=False)
        if problem is None and not isinstance(step.get("top"), list):
            problem = "top is not an array"
        if problem is None:
            for rank, candidate in enumerate(step["top"]):
                inner = _check_candidate(candidate, logit_required=True)
                if inner:
                    problem = f"top/{rank}: {inner}"
                    break
        if problem:
            return f"{index}: {problem}"
    return None


def is_snapshot_data(data: Any) -> bool:
    """Parsed JSON that claims to be a gendiff snapshot (any version: an unknown one is then refused by name)."""
    return isinstance(data, dict) and str(data.get("schema", "")).startswith(SCHEMA_FAMILY)


def is_snapshot_file(path: str | Path) -> bool:
    """Recognised by content: the file parses as JSON and its ``schema`` names a gendiff snapshot."""
    file = Path(path)
    if not file.is_file():
        return False
    try:
        return is_snapshot_data(json.loads(file.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False

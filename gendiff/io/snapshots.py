"""Snapshot files: write (atomically), read, upgrade old versions, validate against the schema
and the consistency rules a schema can't state. The records are :mod:`gendiff.records.snapshot`."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from gendiff.errors import GendiffError
from gendiff.io.fileio import atomic_write_text
from gendiff.records.consistency import verify_snapshot
from gendiff.records.snapshot import SCHEMA_ID, Snapshot

SCHEMA_FAMILY = "gendiff.snapshot/"
READABLE = ("gendiff.snapshot/1", SCHEMA_ID)  # /1 files are upgraded on load


def snapshot_json(snapshot: Snapshot) -> str:
    """The snapshot as indented JSON (for people; files are written compact)."""
    return json.dumps(snapshot.to_dict(), indent=1, ensure_ascii=False) + "\n"


def save_snapshot(snapshot: Snapshot, path: str | Path, check: bool = False) -> Path:
    """Write atomically; returns the path written.

    What gendiff writes is built from typed records, so it is not re-validated here (that
    cost 0.2 s per run, 15% of a demo run); ``check=True`` validates first. Every snapshot
    the tests write is validated (``GENDIFF_VALIDATE_SNAPSHOTS=1``), and :func:`load_snapshot`
    always validates."""
    data = snapshot.to_dict()
    if check or os.environ.get("GENDIFF_VALIDATE_SNAPSHOTS") == "1":
        validate(data, str(path))
    # compact: a 16-prompt run is ~1 MB, a big one hundreds; `python -m json.tool` pretty-prints
    return atomic_write_text(path, json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")


def load_snapshot(path: str | Path) -> Snapshot:
    """Read and validate a snapshot (/1 files are upgraded); GendiffError names the file and the problem."""
    file = Path(path).expanduser()
    return snapshot_from_data(read_json(file, "snapshot"), str(file))


def snapshot_from_data(data: Any, source: str) -> Snapshot:
    """A parsed snapshot file: upgraded from /1 if needed, validated, loaded, and checked
    against itself (:func:`gendiff.records.consistency.verify_snapshot`: every divergence
    recomputed from the traces, token ids within the vocabulary). The one way in for every
    snapshot the app, ``compare`` and ``load_snapshot`` open."""
    if isinstance(data, dict) and data.get("schema") == "gendiff.snapshot/1":
        data = upgrade_v1(data)
    validate(data, source)
    return verify_snapshot(Snapshot.from_dict(data), source)


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
    except RecursionError:
        raise GendiffError(f"{what} {file}: values nested deeper than gendiff reads; the file is corrupt") from None


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
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return False

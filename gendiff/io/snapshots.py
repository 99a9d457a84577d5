"""Snapshot files: write (atomically), read, upgrade old versions, validate against the schema
and the consistency rules a schema can't state. The records are :mod:`gendiff.records.snapshot`.

Two formats, told apart by content when read: JSON (``gendiff.snapshot/2``, /1 upgraded), and the
``.gdz`` container (``gendiff.snapshot/3``, :mod:`gendiff.io.columnar`: the same snapshot with its
steps in compressed typed columns). A write picks the format by the file name: ``.gdz`` or JSON."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from gendiff.errors import GendiffError, InputError
from gendiff.io import columnar
from gendiff.io.fileio import atomic_write, atomic_write_text
from gendiff.records.columns import StepColumns
from gendiff.records.consistency import verify_snapshot
from gendiff.records.snapshot import SCHEMA_ID, Snapshot

SCHEMA_FAMILY = "gendiff.snapshot/"
READABLE = ("gendiff.snapshot/1", SCHEMA_ID)  # JSON; /1 files are upgraded on load
FORMATS = ("json", "gdz")


def format_for(path: str | Path) -> str:
    """The format a write to ``path`` uses: ``gdz`` for a ``.gdz`` name, else ``json``."""
    return "gdz" if str(path).lower().endswith(columnar.SUFFIX) else "json"


def snapshot_json(snapshot: Snapshot) -> str:
    """The snapshot as indented JSON (for people; files are written compact)."""
    return json.dumps(snapshot.to_dict(), indent=1, ensure_ascii=False) + "\n"


def save_snapshot(snapshot: Snapshot, path: str | Path, check: bool = False, format: str | None = None) -> Path:
    """Write atomically as ``format`` (``json`` or ``gdz``; None: :func:`format_for` the path);
    returns the path written.

    What gendiff writes is built from typed records, so it is not re-validated here (that
    cost 0.2 s per run, 15% of a demo run); ``check=True`` validates first (the JSON view, and a
    .gdz's outline too). Every snapshot the tests write is validated
    (``GENDIFF_VALIDATE_SNAPSHOTS=1``), and :func:`load_snapshot` always validates."""
    chosen = format or format_for(path)
    check = check or os.environ.get("GENDIFF_VALIDATE_SNAPSHOTS") == "1"
    if chosen == "gdz":
        if check:
            validate(snapshot.to_dict(), str(path))
        outline, arrays = columnar.encode(snapshot)
        if check:
            validate_outline(outline, str(path))
        return atomic_write(path, lambda handle: columnar.write(handle, outline, arrays))
    data = snapshot.to_dict()
    if check:
        validate(data, str(path))
    # compact: a 16-prompt run is ~1 MB, a big one hundreds; `python -m json.tool` pretty-prints
    return atomic_write_text(path, json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")


def load_snapshot(path: str | Path) -> Snapshot:
    """Read and validate a snapshot of either format (/1 files are upgraded); GendiffError names
    the file and the problem (an InputError for a corrupt or truncated .gdz)."""
    file = Path(path).expanduser()
    if columnar.is_columnar(read_head(file, "snapshot")):
        return load_columnar(file)
    return snapshot_from_data(read_json(file, "snapshot"), str(file))


def load_columnar(file: Path) -> Snapshot:
    """A .gdz snapshot: its outline validated, its columns checked and kept as arrays (each trace's
    ``steps`` a StepColumns over them), then checked against itself as a JSON one is."""
    outline, columns = columnar.read(file, validate_outline)
    for prompt in outline["prompts"]:
        for trace in prompt["traces"].values():
            trace["steps"] = StepColumns(columns, *trace.pop("rows"))
    return verify_snapshot(Snapshot.from_dict(outline), str(file))  # believed no more than a JSON one


def snapshot_from_data(data: Any, source: str) -> Snapshot:
    """A parsed snapshot file: upgraded from /1 if needed, validated, loaded, and checked
    against itself (:func:`gendiff.records.consistency.verify_snapshot`: every divergence
    recomputed from the traces, token ids within the vocabulary). The one way in for every
    snapshot the app, ``compare`` and ``load_snapshot`` open."""
    if isinstance(data, dict) and data.get("schema") == "gendiff.snapshot/1":
        data = upgrade_v1(data)
    validate(data, source)
    return verify_snapshot(Snapshot.from_dict(data), source)


def _check_regular(file: Path, what: str) -> None:
    if file.exists() and not file.is_file() and not file.is_dir():  # a FIFO would block forever
        raise GendiffError(f"{what} {file}: not a regular file; give a .json or .gdz file")


def read_head(file: Path, what: str, size: int = 4) -> bytes:
    """The first bytes of a file (to tell the formats apart); GendiffError as :func:`read_json`'s."""
    _check_regular(file, what)
    try:
        with open(file, "rb") as handle:
            return handle.read(size)
    except FileNotFoundError:
        raise GendiffError(f"{what} {file}: no such file; check the path") from None
    except IsADirectoryError:
        raise GendiffError(f"{what} {file}: is a folder; give a file") from None
    except OSError as exc:
        raise GendiffError(f"{what} {file}: cannot read it ({exc})") from None


def read_json(file: Path, what: str) -> Any:
    """Parse a JSON file; GendiffError names the file and says what is wrong (missing, unreadable, corrupt)."""
    _check_regular(file, what)
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


@lru_cache(maxsize=1)
def _fast_validator(kind: str) -> Any:
    """The whole schema (``json``: trace steps included; ``gdz``: a .gdz outline's) compiled by
    jsonschema-rs: ~100x faster than jsonschema, so it checks every file first; None if it is
    not installed. Only its "valid" is trusted: on "invalid" the jsonschema path finds and words
    the problem (and has the last word: Python's JSON takes NaN as a number, jsonschema-rs does not)."""
    try:
        import jsonschema_rs
    except ImportError:
        return None
    return jsonschema_rs.validator_for(schema() if kind == "json" else _columnar_schema())


def _fast_valid(kind: str, data: Any) -> bool:
    validator = _fast_validator(kind)
    try:
        return validator is not None and bool(validator.is_valid(data))
    except Exception:  # noqa: BLE001 — an int past 64 bits, a type it can't convert: the slow path decides
        return False


def _columnar_schema() -> dict[str, Any]:
    """The schema of a .gdz file's snapshot.json: the snapshot's, each trace's steps and token ids
    replaced by its ``rows`` in the columns, plus the token table and the columns' layout."""
    outline = schema()
    outline["properties"]["schema"] = {"const": columnar.FORMAT_ID}
    count = {"type": "integer", "minimum": 0}
    trace = outline["$defs"]["trace"]
    trace["required"] = [key for key in trace["required"] if key not in ("steps", "token_ids")] + ["rows"]
    del trace["properties"]["steps"], trace["properties"]["token_ids"]
    trace["properties"]["rows"] = {"type": "array", "items": count, "minItems": 2, "maxItems": 2}
    outline["required"] = [*outline["required"], "tokens", "columns"]
    outline["properties"]["tokens"] = {
        "type": "object",
        "required": ["ids", "texts"],
        "properties": {
            "ids": {"type": "array", "items": {"type": "integer"}},
            "texts": {"type": "array", "items": {"type": "string"}},
        },
    }
    outline["properties"]["text_overrides"] = {
        "type": "array",
        "items": {
            "type": "array",
            "prefixItems": [{"enum": ["step", "top", "raw_top"]}, count, {"type": "string"}],
            "minItems": 3,
            "maxItems": 3,
        },
    }
    outline["properties"]["columns"] = {
        "type": "object",
        "required": ["rows", "width", "arrays"],
        "properties": {"rows": count, "width": count, "raw_width": count, "arrays": {"type": "object"}},
    }
    return outline


@lru_cache(maxsize=1)
def _columnar_validator() -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(_columnar_schema())


def validate_outline(outline: Any, source: str) -> None:
    """Raise InputError if a .gdz file's snapshot.json does not follow its schema (see
    :func:`_columnar_schema`) or the consistency rules of a snapshot."""
    import jsonschema

    found = outline.get("schema") if isinstance(outline, dict) else None
    if found != columnar.FORMAT_ID:
        newer = isinstance(found, str) and found.startswith(SCHEMA_FAMILY)
        raise InputError(
            f"snapshot {source}: schema {found} is a version this gendiff can't read; update gendiff to open it"
            if newer
            else f"snapshot {source}: a zip, but not a gendiff snapshot (schema {found!r}, expected {columnar.FORMAT_ID!r})"
        )
    error = (
        None
        if _fast_valid("gdz", outline)
        else jsonschema.exceptions.best_match(_columnar_validator().iter_errors(outline))
    )
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "top level"
        raise InputError(f"snapshot {source}: invalid at {where}: {error.message}; the file is corrupt")
    tokens = outline["tokens"]
    if len(tokens["ids"]) != len(tokens["texts"]) or len(set(tokens["ids"])) != len(tokens["ids"]):
        raise InputError(f"snapshot {source}: its token table's ids and texts do not pair up; the file is corrupt")
    problem = _check_consistency(outline) or _check_identity(outline)
    if problem:
        raise InputError(f"snapshot {source}: {problem}; the file was edited or is corrupt")


def validate(data: Any, source: str) -> None:
    """Raise GendiffError if ``data`` does not follow the snapshot schema."""
    import jsonschema

    found = data.get("schema") if isinstance(data, dict) else None
    if found == columnar.FORMAT_ID:
        raise GendiffError(
            f"snapshot {source}: schema {found} is the .gdz format's, but this file is JSON; "
            "open the .gdz file itself (gendiff export --json turns it into JSON)"
        )
    if isinstance(found, str) and found.startswith(SCHEMA_FAMILY) and found not in READABLE:
        raise GendiffError(
            f"snapshot {source}: schema {found} is a version this gendiff can't read "
            f"(it reads {', '.join(READABLE)}); update gendiff to open it"
        )
    if found != SCHEMA_ID:
        shown = found if found is not None else type(data).__name__
        raise GendiffError(f"snapshot {source}: not a gendiff snapshot (schema {shown!r}, expected {SCHEMA_ID!r})")
    if not _fast_valid("json", data):
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
            if "steps" in trace and list(trace["token_ids"]) != [step["token_id"] for step in trace["steps"]]:
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
    """Recognised by content: a JSON file whose ``schema`` names a gendiff snapshot, or a zip
    whose snapshot.json does (.gdz)."""
    file = Path(path)
    if not file.is_file():
        return False
    try:
        if columnar.is_columnar(read_head(file, "snapshot")):
            return is_snapshot_data(columnar.read_outline(file))
        return is_snapshot_data(json.loads(file.read_text(encoding="utf-8")))
    except (GendiffError, OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return False

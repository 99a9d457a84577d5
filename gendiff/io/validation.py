"""Is this snapshot data well formed? The JSON schema (``gendiff/schema/snapshot.schema.json``;
jsonschema-rs first for speed, jsonschema to word the error) and the rules a schema can't state
(ids and batches that agree, candidates and steps that make sense). Whether its records agree
with its traces is :mod:`gendiff.records.consistency`."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from gendiff.errors import GendiffError, InputError
from gendiff.io.columnar import FORMAT_ID
from gendiff.records.chat import ChatMessage, preview
from gendiff.records.snapshot import SCHEMA_ID

SCHEMA_FAMILY = "gendiff.snapshot/"
READABLE = ("gendiff.snapshot/1", SCHEMA_ID)  # JSON; /1 files are upgraded on load


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
    outline["properties"]["schema"] = {"const": FORMAT_ID}
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
    if found != FORMAT_ID:
        newer = isinstance(found, str) and found.startswith(SCHEMA_FAMILY)
        raise InputError(
            f"snapshot {source}: schema {found} is a version this gendiff can't read; update gendiff to open it"
            if newer
            else f"snapshot {source}: a zip, but not a gendiff snapshot (schema {found!r}, expected {FORMAT_ID!r})"
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
    problem = _check_consistency(outline) or _check_identity(outline) or _check_chats(outline)
    if problem:
        raise InputError(f"snapshot {source}: {problem}; the file was edited or is corrupt")


def validate(data: Any, source: str) -> None:
    """Raise GendiffError if ``data`` does not follow the snapshot schema."""
    import jsonschema

    found = data.get("schema") if isinstance(data, dict) else None
    if found == FORMAT_ID:
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
    problem = _check_identity(data) or _check_chats(data)
    if problem:
        raise GendiffError(f"snapshot {source}: invalid at {problem}")


def _check_chats(data: dict[str, Any]) -> str | None:
    """A chat prompt's text is its messages' preview (in the prompts and in every call's rows)."""
    for p, prompt in enumerate(data["prompts"]):
        if prompt.get("messages") and prompt["text"] != preview(_messages(prompt["messages"])):
            return f"prompts/{p}/text: not the [role] lines of its messages"
    for b, batch in enumerate(data["batches"]):
        rows = batch.get("messages")
        if rows is None:
            continue
        if len(rows) != len(batch["texts"]):
            return f"batches/{b}/messages: one entry per row needed ({len(batch['texts'])})"
        for row, messages in enumerate(rows):
            if messages and batch["texts"][row] != preview(_messages(messages)):
                return f"batches/{b}/texts/{row}: not the [role] lines of its messages"
    return None


def _messages(data: list[dict[str, Any]]) -> tuple[ChatMessage, ...]:
    return tuple(ChatMessage(m["role"], m["content"]) for m in data)


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

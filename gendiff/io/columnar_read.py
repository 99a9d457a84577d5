"""Reading a ``.gdz`` container (:mod:`gendiff.io.columnar` writes it): the outline handed to a
validator before any column is read, then every column checked for its type, shape and values
(ids in range, counts within the widths, texts for every id) before it becomes
:class:`gendiff.records.columns.Columns`. Any fault is one InputError naming the file."""

from __future__ import annotations

import json
import math
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zstandard

from gendiff.errors import InputError
from gendiff.io import npy
from gendiff.io.columnar import COLUMN_SUFFIX, OUTLINE
from gendiff.records.columns import (
    HAS_LOGIT,
    RAW_LOGPROB,
    RAW_STEP_COLUMNS,
    RAW_TOP,
    STEP_COLUMNS,
    Columns,
    candidate_columns,
)

_READ_ERRORS = (zipfile.BadZipFile, zlib.error, zstandard.ZstdError, EOFError, NotImplementedError, RuntimeError)


def read(file: Path, validate: Callable[[Any, str], None]) -> tuple[dict[str, Any], Columns]:
    """A .gdz file's outline, passed to ``validate(outline, source)`` before any column is read,
    and its columns, checked. InputError (one line, naming the file) when it is not a readable
    zip of them, or a column has the wrong type or shape, or values no step can have."""
    source = str(file)
    try:
        with zipfile.ZipFile(file) as archive:
            try:
                data = archive.read(OUTLINE)
            except KeyError:
                raise InputError(f"snapshot {file}: a zip without {OUTLINE}, not a gendiff snapshot") from None
            outline = json.loads(data.decode("utf-8"))
            validate(outline, source)
            layout = outline["columns"]
            found = {name: _column(archive, name, shape, source) for name, shape in _layout(layout).items()}
    except InputError:
        raise
    except _READ_ERRORS as exc:
        raise InputError(
            f"snapshot {file}: not a readable .gdz ({_first_line(exc)}); the file is corrupt or truncated"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(
            f"snapshot {file}: its {OUTLINE} is not valid JSON ({_first_line(exc)}); the file is corrupt"
        ) from None
    except OSError as exc:
        raise InputError(f"snapshot {file}: cannot read it ({exc.strerror or exc})") from None
    return outline, _columns(outline, found, source)


def read_outline(file: Path) -> Any:
    """Only the parsed snapshot.json of a zip (to recognise a .gdz); InputError as :func:`read`'s."""
    try:
        with zipfile.ZipFile(file) as archive:
            return json.loads(archive.read(OUTLINE).decode("utf-8"))
    except KeyError:
        raise InputError(f"snapshot {file}: a zip without {OUTLINE}, not a gendiff snapshot") from None
    except (*_READ_ERRORS, ValueError, OSError) as exc:
        raise InputError(f"snapshot {file}: not a readable .gdz ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


_IDS, _SCORES, _FLAGS, _COUNTS = "iq", "fd", "B", "BHIQ"
# the array types each column may have (the writer picks the narrowest exact one)
KINDS = {
    "token_id": _IDS,
    "logprob": _SCORES,
    "flags": _FLAGS,
    "top_count": _COUNTS,
    "raw_logprob": _SCORES,
    "raw_top_count": _COUNTS,
    **{
        f"{prefix}_{name}": kind
        for prefix in ("top", "raw_top")
        for name, kind in (("token_id", _IDS), ("logprob", _SCORES), ("logit", _SCORES), ("flags", _FLAGS))
    },
}


def _layout(layout: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Each column the layout calls for, with its shape (the raw ones only with ``raw_width``)."""
    rows, width, raw_width = layout["rows"], layout["width"], layout.get("raw_width")
    shapes = {name: (rows,) for name in STEP_COLUMNS}
    shapes.update({name: (rows, width) for name in candidate_columns("top")})
    if raw_width is not None:
        shapes.update({name: (rows,) for name in RAW_STEP_COLUMNS})
        shapes.update({name: (rows, raw_width) for name in candidate_columns("raw_top")})
    return shapes


def _column(archive: zipfile.ZipFile, name: str, shape: tuple[int, ...], source: str) -> Any:
    """One column, decompressed (never past the size its shape allows) and checked against ``shape``."""
    member = f"{name}{COLUMN_SUFFIX}"
    try:
        data = archive.read(member)
    except KeyError:
        raise InputError(f"snapshot {source}: column {member} is missing; the file is corrupt or truncated") from None
    most = 128 + math.prod(shape) * 8  # the header and the widest type
    size = zstandard.frame_content_size(data)
    if size < 0 or size > most:
        raise InputError(
            f"snapshot {source}: column {member} says it holds {size} bytes, more than its shape allows; the file is corrupt"
        )
    try:
        typecode, found, values = npy.read(zstandard.ZstdDecompressor().decompress(data, max_output_size=most))
    except ValueError as exc:
        raise InputError(f"snapshot {source}: column {member}: {exc}; the file is corrupt") from None
    kind = KINDS[name]
    if typecode not in kind or found != shape:
        raise InputError(
            f"snapshot {source}: column {member} is {npy.descr(typecode)} of shape {found}, not "
            f"{'/'.join(npy.descr(k) for k in kind)} of shape {shape}; the file is corrupt"
        )
    return values


def _columns(outline: dict[str, Any], found: dict[str, Any], source: str) -> Columns:
    layout = outline["columns"]
    rows, width, raw_width = layout["rows"], layout["width"], layout.get("raw_width")
    problem = _check_values(found, width, raw_width)
    if problem:
        raise InputError(f"snapshot {source}: {problem}; the file is corrupt")
    tokens = outline["tokens"]
    texts = dict(zip(tokens["ids"], tokens["texts"]))
    overrides = {(kind, index): text for kind, index, text in outline.get("text_overrides") or []}
    used = _used_ids(found, raw_width is not None)
    missing = used.difference(texts)
    if missing:
        raise InputError(
            f"snapshot {source}: token id {min(missing)} is used but has no text in the token table; the file is corrupt"
        )
    for p, prompt in enumerate(outline["prompts"]):
        for label, trace in prompt["traces"].items():
            start, stop = trace["rows"]
            if not start <= stop <= rows:
                raise InputError(
                    f"snapshot {source}: invalid at prompts/{p}/traces/{label}/rows: {start}:{stop} is outside "
                    f"the {rows} rows of the columns; the file is corrupt"
                )
    # the ids' range, known from the set just built (the vocabulary check needs no pass of its own)
    id_range = (min(used), max(used)) if used else None
    return Columns(found, width, raw_width or 0, texts, overrides, id_range)


def _check_values(found: dict[str, Any], width: int, raw_width: int | None) -> str | None:
    """What a typed array can still get wrong: counts over the width, unknown flag bits."""
    raw = raw_width is not None
    limits = [("top_count", width), ("flags", RAW_TOP | RAW_LOGPROB if raw else 0), ("top_flags", HAS_LOGIT)]
    if raw:
        limits += [("raw_top_count", raw_width), ("raw_top_flags", HAS_LOGIT)]
    for name, limit in limits:
        over = _over(found[name], limit)
        if over is not None:
            if name == "flags" and not raw:
                return "a step says it has raw scores, but the file has no raw columns"
            return f"column {name} holds {over}, over its limit {limit}"
    return None


def _over(values: Any, limit: int) -> int | None:
    """The largest value over ``limit``, or None (bytes: the values past the limit deleted, in C)."""
    if getattr(values, "format", getattr(values, "typecode", None)) == "B" and limit < 256:
        rest = bytes(values).translate(None, bytes(range(limit + 1)))
        return max(rest) if rest else None
    most = max(values, default=0)
    return most if most > limit else None


def _used_ids(found: dict[str, Any], raw: bool) -> set[int]:
    """Every token id in the id columns (padding slots hold the step's id), each to have a text."""
    used = set(found["token_id"])
    used.update(found["top_token_id"])
    if raw:
        used.update(found["raw_top_token_id"])
    return used

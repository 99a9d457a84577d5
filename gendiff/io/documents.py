"""What a path on the command line opens: a prompt file to edit and run, a snapshot to view, or
two snapshots side by side. Recognised by content (a zip is a .gdz snapshot; else parse, then
look at ``schema``), not by name.

A file that starts as gendiff writes snapshots (``{"schema":``), a ``.json`` file, or a file not
named ``.txt`` whose first non-space byte is ``{`` is a snapshot attempt unless its first line is
a prompt record (``{"prompt": …}``, a JSON-lines prompt file): a truncated, schema-less,
byte-flipped one or one with trailing garbage is "not a gendiff snapshot (corrupt: …)", never a
prompt file's complaint about its lines. A ``.txt`` prompt may start with a brace (code).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from gendiff.errors import GendiffError, InputError
from gendiff.io import columnar
from gendiff.io.compare import load_pair
from gendiff.io.prompts import PromptBook
from gendiff.io.snapshots import is_snapshot_data, load_columnar, read_head, snapshot_from_data
from gendiff.records.snapshot import Snapshot


@dataclass
class Document:
    """Either ``book`` (prompts to edit, saved to their file) or ``snapshot`` (read-only results);
    ``files``: the snapshot files it was read from (two for a comparison), which an export must
    not replace."""

    book: PromptBook | None = None
    snapshot: Snapshot | None = None
    files: tuple[Path, ...] = ()


def open_document(path: str | None, other: str | None = None) -> Document | None:
    """None when no path is given (the app then opens the user's own prompt list). Raises
    GendiffError naming the file: missing, unreadable, a malformed prompt file, a snapshot of an
    unknown schema version, two snapshots that can't be compared."""
    if path is None:
        return None
    if other is not None:
        return Document(snapshot=load_pair(path, other), files=(Path(path).expanduser(), Path(other).expanduser()))
    file = Path(path).expanduser()
    if not file.exists():
        raise GendiffError(f"{file}: no such file; give a prompt file (.txt/.jsonl) or a snapshot (.gdz/.json)")
    if file.is_dir():
        raise GendiffError(f"{file}: is a folder; give a prompt file (.txt/.jsonl) or a snapshot (.gdz/.json)")
    if columnar.is_columnar(read_head(file, "snapshot")):
        return Document(snapshot=load_columnar(file), files=(file,))
    data, problem = _parsed(file)
    if is_snapshot_data(data):
        return Document(snapshot=snapshot_from_data(data, str(file)), files=(file,))
    if isinstance(data, dict) and "prompts" in data and "schema" in data:
        raise GendiffError(
            f"{file}: schema {data['schema']!r} is not a gendiff snapshot; give a snapshot or a prompt file"
        )
    if _snapshot_attempt(file):
        if problem is None:
            problem = 'no "schema" field' if isinstance(data, dict) else f"a JSON {_kind(data)}, not an object"
        raise InputError(
            f"{file}: not a gendiff snapshot (corrupt: {problem}); give a gendiff snapshot (.gdz/.json) or a prompt file (.txt/.jsonl)"
        )
    return Document(book=PromptBook.load(file))


def _parsed(file: Path) -> tuple[object, str | None]:
    """The file parsed as one JSON document and None, or None and why it is not one."""
    try:
        raw = file.read_bytes()
    except OSError as exc:
        return None, f"cannot read it ({exc.strerror})"
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text at byte {exc.start}"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":
            return None, f"more data after the JSON document at line {exc.lineno} column {exc.colno}"
        return None, f"not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
    except RecursionError:
        return None, "values nested deeper than gendiff reads"


def _snapshot_attempt(file: Path) -> bool:
    """A ``.json`` file, or one starting with ``{``, that is not a JSON-lines prompt file."""
    try:
        with file.open("rb") as handle:
            head = handle.read(64 * 1024)
    except OSError:
        return False
    head = head.removeprefix(b"\xef\xbb\xbf")
    stripped = head.lstrip()
    if not stripped:
        return False  # an empty file: a new prompt list
    if re.match(rb'\{\s*"schema"\s*:', stripped):
        return True  # how gendiff writes them, under any name
    suffix = file.suffix.lower()
    # a .txt prompt may well start with a brace (code); anything else starting with one is JSON
    if suffix == ".txt" or (suffix != ".json" and not stripped.startswith(b"{")):
        return False
    first = stripped.split(b"\n", 1)[0].strip()
    try:
        record = json.loads(first)
    except (ValueError, RecursionError):
        return not re.match(rb'\{\s*"(prompt|messages)"\s*:', first)  # a prompt file with a broken first line
    # a prompt line is {"prompt": …} or a chat prompt {"messages": […]}
    return not (isinstance(record, dict) and ("prompt" in record or "messages" in record) and "schema" not in record)


def _kind(data: object) -> str:
    return {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(data), "number")

"""What a path on the command line opens: a prompt file to edit and run, a snapshot to view, or
two snapshots side by side. Recognised by content (a zip is a .gdz snapshot; else parse, then
look at ``schema``), not by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from gendiff.errors import GendiffError
from gendiff.io import columnar
from gendiff.io.compare import load_pair
from gendiff.io.prompts import PromptBook
from gendiff.io.snapshots import is_snapshot_data, load_columnar, read_head, snapshot_from_data
from gendiff.records.snapshot import Snapshot


@dataclass
class Document:
    """Either ``book`` (prompts to edit, saved to their file) or ``snapshot`` (read-only results)."""

    book: PromptBook | None = None
    snapshot: Snapshot | None = None


def open_document(path: str | None, other: str | None = None) -> Document | None:
    """None when no path is given (the app then opens the user's own prompt list). Raises
    GendiffError naming the file: missing, unreadable, a malformed prompt file, a snapshot of an
    unknown schema version, two snapshots that can't be compared."""
    if path is None:
        return None
    if other is not None:
        return Document(snapshot=load_pair(path, other))
    file = Path(path).expanduser()
    if not file.exists():
        raise GendiffError(f"{file}: no such file; give a prompt file (.txt/.jsonl) or a snapshot (.gdz/.json)")
    if file.is_dir():
        raise GendiffError(f"{file}: is a folder; give a prompt file (.txt/.jsonl) or a snapshot (.gdz/.json)")
    if columnar.is_columnar(read_head(file, "snapshot")):
        return Document(snapshot=load_columnar(file))
    data = _json_or_none(file)
    if is_snapshot_data(data):
        return Document(snapshot=snapshot_from_data(data, str(file)))
    if isinstance(data, dict) and "prompts" in data and "schema" in data:
        raise GendiffError(
            f"{file}: schema {data['schema']!r} is not a gendiff snapshot; give a snapshot or a prompt file"
        )
    return Document(book=PromptBook.load(file))


def _json_or_none(file: Path) -> object:
    """The file parsed as one JSON document, or None (a .txt or .jsonl prompt file is not)."""
    try:
        return json.loads(file.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None

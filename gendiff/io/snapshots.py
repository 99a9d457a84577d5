"""Snapshot files: write (atomically), read, upgrade old versions, validate against the schema
and the consistency rules a schema can't state. The records are :mod:`gendiff.records.snapshot`.

Two formats, told apart by content when read: JSON (``gendiff.snapshot/2``, /1 upgraded), and the
``.gdz`` container (``gendiff.snapshot/3``, :mod:`gendiff.io.columnar`: the same snapshot with its
steps in compressed typed columns). A write picks the format by the file name: ``.gdz`` or JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gendiff.errors import GendiffError
from gendiff.io import columnar, columnar_read
from gendiff.io.fileio import atomic_write, atomic_write_text
from gendiff.io.validation import SCHEMA_FAMILY, validate, validate_outline
from gendiff.records.columns import StepColumns
from gendiff.records.consistency import verify_snapshot
from gendiff.records.snapshot import SCHEMA_ID, Snapshot

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


def load_snapshot(path: str | Path, recompute: bool = True) -> Snapshot:
    """Read and validate a snapshot of either format (/1 files are upgraded); GendiffError names
    the file and the problem (an InputError for a corrupt or truncated .gdz). ``recompute=False``:
    the divergence records are checked but kept as stored (for ``gendiff compare``, which drops
    them: :func:`gendiff.records.consistency.verify_snapshot`)."""
    file = Path(path).expanduser()
    if columnar.is_columnar(read_head(file, "snapshot")):
        return load_columnar(file, recompute)
    return snapshot_from_data(read_json(file, "snapshot"), str(file), recompute)


def load_columnar(file: Path, recompute: bool = True) -> Snapshot:
    """A .gdz snapshot: its outline validated, its columns checked and kept as arrays (each trace's
    ``steps`` a StepColumns over them), then checked against itself as a JSON one is."""
    outline, columns = columnar_read.read(file, validate_outline)
    for prompt in outline["prompts"]:
        for trace in prompt["traces"].values():
            trace["steps"] = StepColumns(columns, *trace.pop("rows"))
    return verify_snapshot(Snapshot.from_dict(outline), str(file), recompute)  # believed no more than a JSON one


def snapshot_from_data(data: Any, source: str, recompute: bool = True) -> Snapshot:
    """A parsed snapshot file: upgraded from /1 if needed, validated, loaded, and checked
    against itself (:func:`gendiff.records.consistency.verify_snapshot`: every divergence
    recomputed from the traces, token ids within the vocabulary). The one way in for every
    snapshot the app, ``compare`` and ``load_snapshot`` open."""
    if isinstance(data, dict) and data.get("schema") == "gendiff.snapshot/1":
        data = upgrade_v1(data)
    validate(data, source)
    return verify_snapshot(Snapshot.from_dict(data), source, recompute)


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
            return is_snapshot_data(columnar_read.read_outline(file))
        return is_snapshot_data(json.loads(file.read_text(encoding="utf-8")))
    except (GendiffError, OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return False

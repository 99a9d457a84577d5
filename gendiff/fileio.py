"""Atomic file writes: a reader (or a crash) never sees half a file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from gendiff.errors import GendiffError


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` via a temp file in the same folder and a rename.

    Raises GendiffError naming the path when it cannot be written.
    """
    target = Path(path).expanduser()
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise GendiffError(f"cannot write {target}: folder {folder} does not exist; create it or pick another path")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise GendiffError(f"cannot write {target}: {exc.strerror}; pick a writable path") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise GendiffError(f"cannot write {target}: {exc.strerror}; pick a writable path") from None
    return target


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Fail early (before any model work) if ``path`` cannot be created or replaced."""
    target = Path(path).expanduser()
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise GendiffError(f"cannot write {target}: it is a folder; give a file name")
    if not folder.is_dir():
        raise GendiffError(f"cannot write {target}: folder {folder} does not exist; create it or pick another path")
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise GendiffError(f"cannot write {target}: permission denied; pick a writable path")
    return target

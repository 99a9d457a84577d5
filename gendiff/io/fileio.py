"""Atomic file writes: a reader (or a crash) never sees half a file, and the user's file keeps
its mode and links.

A write goes to ``.NAME.PID.XXXX.tmp`` in the target's folder, is fsynced, gets the target's
mode (a new file: what ``open`` would give under the umask) and is renamed over the target.
A symlink is written through (its target is replaced, the link is kept). A file with more than
one hard link is refused: a rename would split the link and an in-place write is not atomic.
Temp files are removed on every exit path that runs Python code (errors, ctrl+c, SIGTERM via
the CLI's handler); a ``kill -9`` can still leave one, so each write first removes stale temp
files of the same target whose process is gone.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from gendiff.errors import InputError

# a temp file of a previous version had no pid in its name: removed once it is this old
_LEGACY_TEMP_AGE_S = 3600


def resolve_target(path: str | os.PathLike[str]) -> Path:
    """The file a write to ``path`` must replace: symlinks followed (even a dangling one)."""
    target = Path(path).expanduser()
    if target.is_symlink():
        return Path(os.path.realpath(target))
    return target


def check_writable(path: str | os.PathLike[str], what: str = "") -> Path:
    """Fail early (before any model work) if ``path`` cannot be written atomically; returns the
    file a write will replace. ``what`` names the option in messages (e.g. ``--json``)."""
    name = f"{what} {path}" if what else str(path)
    if not str(path).strip():
        raise InputError(f"{what or 'output path'} is empty; give a file name (e.g. run.json)")
    if str(path).endswith(("/", os.sep)):
        raise InputError(f"cannot write {name}: it names a folder; give a file name (e.g. {path}run.json)")
    target = resolve_target(path)
    folder = target.parent
    if target.is_dir():
        raise InputError(f"cannot write {name}: it is a folder; give a file name (e.g. {target / 'run.json'})")
    if not folder.is_dir():
        kind = "is not a folder" if folder.exists() else "does not exist"
        raise InputError(f"cannot write {name}: {folder} {kind}; create the folder or pick another path")
    if target.exists():
        info = target.stat()
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"cannot write {name}: it is not a regular file (a device, pipe or socket); pick a file")
        if info.st_nlink > 1:
            raise InputError(
                f"cannot write {name}: it has {info.st_nlink} hard links, and replacing it atomically would "
                "split them; write to another path, or remove the other links first"
            )
    if not os.access(folder, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise InputError(f"cannot write {name}: permission denied; pick a writable path")
    return target


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name the same existing file (through links), or the same path."""
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    try:
        return os.path.samefile(pa, pb)
    except OSError:
        return os.path.realpath(pa) == os.path.realpath(pb)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` (UTF-8) via a temp file and a rename; returns ``path`` as given.

    Raises InputError naming the path when it cannot be written (see the module docstring)."""
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(handle)`` on a binary temp file beside ``path``, then rename it over ``path``;
    returns ``path`` as given. The file keeps the target's mode and links (see the module docstring).

    Raises InputError naming the path when it cannot be written; whatever ``write`` raises
    propagates, and the temp file is removed."""
    given = Path(path).expanduser()
    target = check_writable(path)
    folder = target.parent
    remove_stale_temps(target)
    mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o666 & ~_umask()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise InputError(f"cannot write {given}: {exc.strerror}; pick a writable path") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise InputError(f"cannot write {given}: {exc.strerror}; pick a writable path") from None
    except BaseException:  # ctrl+c, SIGTERM turned into an exception, a failing writer: no temp file left
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(folder)
    return given


def remove_stale_temps(target: Path) -> list[Path]:
    """Remove the temp files of earlier writes to ``target`` whose writer is gone (``kill -9``)."""
    removed = []
    pattern = re.compile(r"^\." + re.escape(target.name) + r"\.(?:(\d+)\.)?[^.]+\.tmp$")
    try:
        candidates = list(target.parent.glob(f".{glob_escape(target.name)}.*.tmp"))
    except OSError:
        return removed
    for file in candidates:
        match = pattern.match(file.name)
        if match is None:
            continue
        pid = match.group(1)
        try:
            if pid is not None and int(pid) != os.getpid() and not _alive(int(pid)):
                file.unlink()
            elif pid is None and time.time() - file.stat().st_mtime > _LEGACY_TEMP_AGE_S:
                file.unlink()
            else:
                continue
        except OSError:
            continue
        removed.append(file)
    return removed


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process (or an absurd pid): leave its file alone
    return True


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask is process-wide)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    # the rename itself is durable only once the folder is synced
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

"""Keep what engines and libraries print off the terminal while a full-screen app draws on it.

vLLM's C++ code (``utils.cpp:68] Warning: NUMA binding…``), torch and transformers write to
file descriptors 1 and 2 directly, and engine processes inherit them, so redirecting
``sys.stdout`` is not enough: ``captured_output`` points fds 1 and 2 at a log file with
``os.dup2``. Textual's Linux driver draws on ``sys.__stderr__`` and sizes the screen from
``sys.__stdout__`` (``shutil.get_terminal_size``), so those two are re-pointed at duplicates of
the real terminal for the duration. On exit everything is put back.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

LOG_NAME = "engine-output.log"
_active: list[Path] = []  # the log of the capture in progress (innermost last)


def active_log() -> Path | None:
    """The log the running ``captured_output`` writes to, or None outside one."""
    return _active[-1] if _active else None


def output_log_path() -> Path:
    """Where the app's captured output goes: ``$GENDIFF_STATE_DIR`` or the user state folder."""
    folder = os.environ.get("GENDIFF_STATE_DIR")
    if not folder:
        from platformdirs import user_state_dir

        folder = user_state_dir("gendiff")
    return Path(folder) / LOG_NAME


def logged_anything(path: Path) -> bool:
    """Whether anything beyond the header line reached the log."""
    try:
        with path.open("rb") as log:
            log.readline()
            return bool(log.read(1))
    except OSError:
        return False


def _open_log(path: Path) -> tuple[int, Path]:
    """Open (truncate) the log; a folder we can't write to falls back to a temporary file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, flags, 0o600), path
    except OSError:
        fd, name = tempfile.mkstemp(prefix="gendiff-", suffix=".log")
        return fd, Path(name)


def _terminal_stream(fd: int, like: TextIO | None) -> TextIO:
    """A text stream on ``fd`` (a duplicate of the terminal) with ``like``'s encoding."""
    encoding = getattr(like, "encoding", None) or "utf-8"
    errors = getattr(like, "errors", None) or "strict"
    return open(fd, "w", encoding=encoding, errors=errors, closefd=True)  # noqa: SIM115 — closed on exit


@contextmanager
def captured_output(log_path: Path | None = None) -> Iterator[Path]:
    """Inside the block, fds 1 and 2 (and so every library, C extension and child process)
    write to ``log_path`` (default ``output_log_path()``, truncated), while ``sys.__stdout__`` and
    ``sys.__stderr__`` write to the real terminal. Yields the log's path (a temporary file when
    the wanted folder is not writable)."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    log_fd, path = _open_log(log_path or output_log_path())
    os.write(log_fd, f"gendiff: engine and library output, {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
    saved_out, saved_err = os.dup(1), os.dup(2)
    original_out, original_err = sys.__stdout__, sys.__stderr__
    terminal_out = _terminal_stream(saved_out, original_out)
    terminal_err = _terminal_stream(saved_err, original_err)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    sys.__stdout__, sys.__stderr__ = terminal_out, terminal_err  # type: ignore[misc]
    _active.append(path)
    try:
        yield path
    finally:
        _active.pop()
        for stream in (sys.stdout, sys.stderr, terminal_out, terminal_err):
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):
                pass  # a closed or broken stream must not stop the terminal coming back
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        sys.__stdout__, sys.__stderr__ = original_out, original_err  # type: ignore[misc]
        terminal_out.close()
        terminal_err.close()

"""Keys typed while the app starts: between the command and the app's first frame (a second or
more of imports) the terminal is still in its line mode and would echo each key over the
screen, and ctrl+s would be taken as flow control (XOFF) and never reach the app.
:func:`keys_held_quietly` turns the echo and that flow control off at once (stdlib only, before
any heavy import) and keeps the line buffering, so the keys wait unseen for the app, which reads them when
it takes the terminal; the terminal's own settings come back however the process ends (return,
exception, or :func:`restore_now` before an ``os._exit``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_saved: list[tuple[int, Any]] = []  # (fd, the attributes before), while held


@contextmanager
def keys_held_quietly() -> Iterator[None]:
    """No echo on a terminal stdin while the block runs; nothing happens when stdin is not a terminal."""
    try:
        import termios

        fd = sys.stdin.fileno()
        before = termios.tcgetattr(fd) if sys.stdin.isatty() else None
    except (ImportError, OSError, ValueError, AttributeError):  # no termios (Windows), a closed or fake stdin
        before = None
    if before is None:
        yield
        return
    quiet = list(before)
    quiet[0] &= ~termios.IXON  # iflags: ctrl+s / ctrl+q are keys for the app, not the terminal's flow control
    quiet[3] &= ~(termios.ECHO | termios.ECHONL)  # lflags: no echo; ICANON kept, keys stay queued
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    _saved.append((fd, before))
    try:
        yield
    finally:
        restore_now()


def restore_now() -> None:
    """Give the terminal back its settings from before (also called just before ``os._exit``)."""
    while _saved:
        fd, before = _saved.pop()
        try:
            import termios

            termios.tcsetattr(fd, termios.TCSANOW, before)
        except (ImportError, OSError):  # the terminal went away: nothing to restore
            pass

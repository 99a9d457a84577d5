"""Printing to stdout/stderr so that a closed pipe (``gendiff run | head``) never costs the run."""

from __future__ import annotations

import os
import sys
from typing import Any


def stream_write(stream: Any, text: str) -> None:
    """Print a line; a closed pipe (``| head``) silences that stream instead of raising, so the
    rest of the command (the snapshot, the exit code) is unaffected."""
    try:
        stream.write(text + "\n")
        stream.flush()
    except BrokenPipeError:
        _silence(stream)
    except ValueError:  # the stream was closed
        pass


def _silence(stream: Any) -> None:
    # later writes and the interpreter's final flush go to /dev/null instead of raising again
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def out(text: str) -> None:
    stream_write(sys.stdout, text)


def err(text: str) -> None:
    stream_write(sys.stderr, text)

"""Printing to stdout/stderr so that a closed pipe (``gendiff run | head``) never costs the run,
and so that nothing printed can act on the terminal or show a credential: every line the CLI
prints passes :func:`gendiff.display.inert` and :func:`gendiff.display.without_userinfo` here,
whatever it quotes (prompts, token texts, file names, server and library messages)."""

from __future__ import annotations

import os
import sys
from typing import Any

from gendiff.display import inert, one_line, without_userinfo


def shown(text: str) -> str:
    """What may reach the terminal of ``text``: escape sequences, bells, C1 controls and bidi
    overrides made visible (newlines and tabs kept), credentials in URLs hidden."""
    return inert(without_userinfo(text))


def stream_write(stream: Any, text: str) -> None:
    """Print ``text`` made :func:`shown`; a closed pipe (``| head``) silences that stream instead
    of raising, so the rest of the command (the snapshot, the exit code) is unaffected."""
    try:
        stream.write(shown(text) + "\n")
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


def error_line(message: str) -> None:
    """The one ``gendiff: error:`` line: ``message`` (often quoting a file, a prompt or a server)
    on one line, inert, credentials hidden."""
    err("gendiff: error: " + one_line(message))

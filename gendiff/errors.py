"""The exceptions users see: a one-line message naming the input and what to do, and an exit code.

``GendiffError`` is the base (``except GendiffError`` catches them all); raise a subclass:
:class:`InputError` (exit 2) for bad input found before or during a run, :class:`EngineError`
(exit 3) when an engine fails at run time on good input, :class:`Cancelled` (exit 130).
"""

EXIT_DIVERGED = 1
EXIT_INPUT = 2
EXIT_ENGINE = 3
EXIT_CANCELLED = 130


class GendiffError(Exception):
    """``str(error)`` is the whole user-facing message. A bare GendiffError counts as bad input."""

    exit_code = EXIT_INPUT


class InputError(GendiffError):
    """Bad input: a model folder, prompt file, option, engine spec, snapshot or output path."""

    exit_code = EXIT_INPUT


class EngineError(GendiffError):
    """An engine failed on input that passed every check (a runtime fault, not the user's input)."""

    exit_code = EXIT_ENGINE


class Cancelled(GendiffError):
    """The user cancelled (ctrl+c, SIGTERM)."""

    exit_code = EXIT_CANCELLED


def describe(exc: BaseException) -> str:
    """The one-line text of a failure to record or show: a GendiffError's own message, else the
    exception's type and message (``RuntimeError: …``)."""
    return str(exc) if isinstance(exc, GendiffError) else f"{type(exc).__name__}: {exc}"


def exit_code(engine_failed: bool, diverged: object) -> int:
    """3 if an engine failed, else 1 if it diverged (with --fail-on-divergence), else 0."""
    if engine_failed:
        return EXIT_ENGINE
    return EXIT_DIVERGED if diverged else 0

"""The ``gendiff`` command: dispatch to the headless commands or open the TUI; errors become one
``gendiff: error:`` line and an exit code (see :mod:`gendiff.errors`); SIGTERM unwinds like ctrl+c.

Exit codes (see docs/headless.md): 0 success; 1 a divergence with --fail-on-divergence; 2 bad
input; 3 an engine failed; 130 cancelled (ctrl+c, SIGTERM).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from typing import Any

from gendiff.cli.args import (
    compare_parser,
    determinism_parser,
    export_parser,
    given_options,
    merge_parser,
    run_parser,
    score_parser,
    tui_parser,
)
from gendiff.cli.console import error_line, stream_write
from gendiff.cli.terminal import keys_held_quietly
from gendiff.errors import EXIT_CANCELLED, GendiffError


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (errors are one ``gendiff: error:`` line on stderr)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    headless = argv[:1] in (["run"], ["compare"], ["score"], ["export"], ["merge"], ["determinism"])
    previous = _terminate_as_interrupt() if headless else None
    try:
        if headless:
            from gendiff.cli.headless import cmd_compare, cmd_export, cmd_merge, cmd_run, cmd_score  # not for --help
        if argv[:1] == ["run"]:
            return cmd_run(run_parser().parse_args(argv[1:]))
        if argv[:1] == ["determinism"]:
            from gendiff.cli.determinism import cmd_determinism  # not for --help or the app

            return cmd_determinism(determinism_parser().parse_args(argv[1:]))
        if argv[:1] == ["score"]:
            return cmd_score(score_parser().parse_args(argv[1:]))
        if argv[:1] == ["compare"]:
            return cmd_compare(compare_parser().parse_args(argv[1:]))
        if argv[:1] == ["export"]:
            return cmd_export(export_parser().parse_args(argv[1:]))
        if argv[:1] == ["merge"]:
            return cmd_merge(merge_parser().parse_args(argv[1:]))
        args = tui_parser().parse_args(argv)
        args.given = given_options(tui_parser(), argv)
        with keys_held_quietly():  # from here to the first frame, keys typed are not echoed
            from gendiff.cli.launch import cmd_tui  # Textual and the core load only when the app opens

            return cmd_tui(args)
    except GendiffError as exc:
        error_line(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        stream_write(sys.stderr, "gendiff: cancelled")
        return EXIT_CANCELLED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _terminate_as_interrupt() -> Any:
    """SIGTERM unwinds like ctrl+c (temp files removed, exit 130); returns the handler it replaced."""
    if not _in_main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    raise SystemExit(main())

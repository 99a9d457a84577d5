"""``gendiff [PROMPTS|SNAPSHOT [B]]``: check the options and the file, then open the app with the
engines' and libraries' output captured off the screen."""

from __future__ import annotations

import argparse
import sys

from gendiff.cli.console import err
from gendiff.cli.run_options import options_from_args
from gendiff.errors import GendiffError
from gendiff.io.capture import captured_output, logged_anything
from gendiff.io.documents import open_document
from gendiff.tui.app import GendiffApp, LaunchOptions


def cmd_tui(args: argparse.Namespace) -> int:
    # checked before the app starts: bad options or files are one error line, not a crash in the UI
    run = options_from_args(args)
    if not run.engines:
        raise GendiffError(f"--engines {args.engines!r}: names no engine; e.g. --engines hf-single,hf-left")
    run.config()
    document = open_document(args.path, args.other)
    # engines and libraries print to fds 1/2 (vLLM's C++ warnings); keep them off the screen
    with captured_output() as log:
        given = getattr(args, "given", frozenset())
        app = GendiffApp(LaunchOptions(run=run, document=document, theme=args.theme, given=given))
        app.error_console.file = sys.__stderr__  # a crash report still reaches the terminal
        app.run()
    if logged_anything(log):
        err(f"gendiff: engines and libraries printed to {log}")
    return 0

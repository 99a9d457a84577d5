"""``gendiff [PROMPTS|SNAPSHOT [B]]``: check the options and the file, then open the app with the
engines' and libraries' output captured off the screen."""

from __future__ import annotations

import argparse
import os
import sys
import threading

from gendiff.cli.console import err
from gendiff.cli.run_options import options_from_args
from gendiff.cli.terminal import restore_now
from gendiff.engines.loading import model_folder
from gendiff.engines.vllm_worker import stop_all
from gendiff.errors import GendiffError
from gendiff.io.capture import captured_output, logged_anything
from gendiff.io.documents import open_document
from gendiff.tui.app import GendiffApp, LaunchOptions
from gendiff.tui.workers import WORK_THREAD_PREFIX


def cmd_tui(args: argparse.Namespace) -> int:
    # checked before the app starts: bad options or files are one error line, not a crash in the UI
    run = options_from_args(args)
    if not run.engines:
        raise GendiffError(f"--engines {args.engines!r}: names no engine; e.g. --engines hf-single,hf-left")
    run.config()
    document = open_document(args.path, args.other)
    if document is None or document.snapshot is None:
        model_folder(run.model)  # a missing folder is one line here, as in gendiff run, not a note in the app
    # engines and libraries print to fds 1/2 (vLLM's C++ warnings); keep them off the screen
    with captured_output() as log:
        given = getattr(args, "given", frozenset())
        app = GendiffApp(LaunchOptions(run=run, document=document, theme=args.theme, given=given))
        app.error_console.file = sys.__stderr__  # a crash report still reaches the terminal
        app.run()
    if logged_anything(log):
        err(f"gendiff: engines and libraries printed to {log}")
    end_work_now()
    return 0


def end_work_now() -> None:
    """After the app quit: stop a vLLM worker without waiting for its shutdown, and if a worker
    thread is still inside an engine (torch can't be interrupted mid-step), end the process now:
    letting the interpreter finalise under a running torch op aborts it (``terminate called
    without an active exception``, exit 134). The terminal is already restored."""
    stop_all(now=True)
    if any(t.is_alive() and t.name.startswith(WORK_THREAD_PREFIX) for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        restore_now()  # os._exit skips every finally: the echo comes back first
        os._exit(0)

"""``gendiff determinism PROTOCOL``: the trials of a nondeterminism protocol, then per engine the
table of :class:`gendiff.records.determinism.Spread` (and, with ``--bisect``, where in the
network the most common split starts)."""

from __future__ import annotations

import argparse

from gendiff.cli.console import err, out
from gendiff.cli.headless import progress_line
from gendiff.cli.run_options import options_from_args
from gendiff.demo import demo_prompts_path
from gendiff.display import one_line
from gendiff.errors import EXIT_ENGINE, InputError
from gendiff.io.fileio import atomic_write_text
from gendiff.io.outputs import check_output
from gendiff.io.prompts import PromptBook
from gendiff.records.determinism import Determinism
from gendiff.records.events import EngineFinished
from gendiff.run.determinism import run_protocol
from gendiff.state.determinism import json_text, table_lines


def cmd_determinism(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    book = PromptBook.load(demo_prompts_path() if args.prompts is None else args.prompts)
    prompt = args.prompt if args.prompt is not None else (book.prompts[0] if book.prompts else "")
    if not prompt.strip():
        raise InputError("--prompt is empty (or --prompts has no prompt); give the text to watch")
    if args.json is not None:
        check_output(args.json, inputs={"the prompts file": book.path}, model=options.model)

    def progress(event: object) -> None:
        if not args.quiet and not isinstance(event, EngineFinished):
            line = progress_line(event, 1)
            if line is not None and not line.endswith("…"):
                err(line)

    result = run_protocol(
        options,
        args.protocol,
        prompt,
        list(book.prompts),
        args.trials,
        args.seed,
        args.max_batch,
        diagnose=args.bisect,
        tolerance=args.tolerance,
        on_event=progress,
    )
    if args.json is not None:
        err(f"written to {atomic_write_text(args.json, json_text(result))}")
    out(determinism_table(result))
    for label, error in result.errors.items():
        err(f"gendiff: error: {label} failed: {one_line(error)}")
    return EXIT_ENGINE if result.errors else 0


def determinism_table(result: Determinism) -> str:
    """The per-engine table (:func:`gendiff.state.determinism.table_lines`, what the app shows too)."""
    return "\n".join(table_lines(result))

"""``gendiff determinism PROTOCOL``: the trials of a nondeterminism protocol, then per engine the
table of :class:`gendiff.records.determinism.Spread` (and, with ``--bisect``, where in the
network the most common split starts)."""

from __future__ import annotations

import argparse
import json

from gendiff.cli.console import err, out
from gendiff.cli.headless import check_output, progress_line
from gendiff.cli.run_options import options_from_args
from gendiff.demo import demo_prompts_path
from gendiff.display import one_line, visible
from gendiff.errors import EXIT_ENGINE, InputError
from gendiff.io.fileio import atomic_write_text
from gendiff.io.prompts import PromptBook
from gendiff.records.determinism import Determinism, Spread
from gendiff.records.events import EngineFinished
from gendiff.run.determinism import run_protocol


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
        err(f"written to {atomic_write_text(args.json, json.dumps(result.to_dict(), indent=1))}")
    out(determinism_table(result))
    for label, error in result.errors.items():
        err(f"gendiff: error: {label} failed: {one_line(error)}")
    return EXIT_ENGINE if result.errors else 0


def determinism_table(result: Determinism) -> str:
    """The per-engine table: unique of N, the most common's count, TARr@N, the split histogram,
    the token pairs at the splits with counts and margin class, the bisection."""
    sizes = sorted({len(t.prompts) for t in result.trials})
    lines = [
        f"{result.protocol}: {len(result.trials)} trials (seed {result.seed}, batch sizes {sizes[0]}..{sizes[-1]}) "
        f'of "{one_line(result.pool[0])[:60]}"'
    ]
    width = max((len(label) for label in result.spreads), default=6)
    lines.append(f"  {'engine':<{width}}  completions         most common  TARr@N  first split at (step: trials)")
    for label, s in result.spreads.items():
        identical = f"{s.trials} of {s.trials} identical" if s.unique == 1 else f"{s.unique} unique of {s.trials}"
        histogram = ", ".join(f"{step}: {n}" for step, n in sorted(s.split_histogram.items())) or "none"
        lines.append(f"  {label:<{width}}  {identical:<18}  {s.most_common:>11}  {s.agreement:.4f}  {histogram}")
        lines.extend(f"  {'':<{width}}    {line}" for line in split_lines(s))
        bisection = result.bisections.get(label)
        if bisection is not None:
            lines.extend(f"  {'':<{width}}    bisection: {line}" for line in bisection.summary_lines())
    return "\n".join(lines)


def split_lines(s: Spread) -> list[str]:
    """``step 5: "␣the" ×6 vs "␣a" ×2 (near-tie)``, the most common split first."""
    out_lines = []
    for split in s.splits:
        common = "(end)" if split.common is None else f'"{visible(split.common_text)}"'
        other = "(end)" if split.other is None else f'"{visible(split.other_text)}"'
        common_count = s.trials - sum(x.count for x in s.splits if x.step <= split.step)  # still the most common's
        kind = f" ({split.margin_class})" if split.margin_class else ""
        out_lines.append(f"step {split.step}: {common} {common_count} vs {other} {split.count}{kind}")
    return out_lines

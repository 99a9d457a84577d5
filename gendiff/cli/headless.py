"""The headless commands: ``gendiff run`` (with --sweep, --bisect/--reconverge, --recheck/--repeat/--stats),
``gendiff compare``, ``gendiff export`` and ``gendiff score``. Each takes parsed arguments and returns
the exit code."""

from __future__ import annotations

import argparse
import time
from typing import Any

from gendiff.cli.console import err, error_line, out
from gendiff.cli.kld_score import cmd_score_base
from gendiff.cli.run_options import build_config, engine_list, options_from_args
from gendiff.cli.summary import checked, repeats_table, statistics_table, summary_table
from gendiff.demo import demo_prompts_path
from gendiff.display import one_line
from gendiff.errors import InputError, exit_code
from gendiff.io.columnar import SUFFIX
from gendiff.io.compare import load_pair
from gendiff.io.fileio import atomic_write_text
from gendiff.io.merge import merge_snapshots
from gendiff.io.outputs import check_output
from gendiff.io.prompts import PromptBook, validate_prompt
from gendiff.io.snapshots import format_for, load_snapshot, save_snapshot
from gendiff.records.events import (
    EngineChecked,
    EngineFailed,
    EngineFinished,
    EngineLoaded,
    EngineStarted,
    StageProgress,
    StageStarted,
)
from gendiff.records.shard import select_shard
from gendiff.run.pipeline import Diagnoses, run_pipeline
from gendiff.run.score import load_texts, score
from gendiff.run.session import Session
from gendiff.run.statistics import check_forced
from gendiff.run.sweep import parse_sweep, run_sweep, sweep_json, sweep_table


def cmd_run(args: argparse.Namespace) -> int:

    config = build_config(args)
    book = PromptBook.load(demo_prompts_path() if args.prompts is None else args.prompts)
    if not book.prompts:
        raise InputError(f"prompts {book.path}: no prompts in the file; add one per line")
    prompts, prompt_ids, shard = shard_prompts(args, book.prompts, book.path)
    if args.sweep and args.save is not None:
        raise InputError("--save with --sweep: a sweep writes a JSON table of variants; use --json OUT")
    output = snapshot_output(args)
    if output is not None:
        check_output(output[0], inputs={"the prompts file": book.path}, model=config.model_path, option=output[1])

    diagnoses = Diagnoses(args.reconverge, args.bisect, args.tolerance, args.recheck, args.repeat, args.stats)
    diagnoses.check()
    if args.sweep:
        if args.recheck or args.stats or args.repeat:
            raise InputError("--sweep with --recheck/--stats/--repeat: run the sweep first, then one variant")
        return cmd_sweep(args, config, book.prompts)

    if args.shards is not None:
        from gendiff.run.ray_shards import run_on_ray  # Ray is imported only for --ray

        started = time.perf_counter()
        outcome = run_on_ray(args.ray, args.shards, options_from_args(args), book.prompts, diagnoses, err)
        return finish_run(args, outcome, output, started)
    session = Session(config, prompts, prompt_ids)
    if args.stats and not session.engines[config.reference].can_replay:
        raise InputError(
            f"--stats: the reference {config.reference} can't be teacher-forced; pick an hf-* or packed engine "
            "as --reference"
        )
    if args.stats:  # llama.cpp's server has no prompt logprobs: said before any model work
        check_forced(list(session.engines.items()))
    for note in session.notes:
        err(f"gendiff: note: {one_line(note)}")
    started = time.perf_counter()

    def progress(event: object) -> None:
        if not args.quiet:
            line = progress_line(event, len(prompts))
            if line is not None:
                err(line)

    outcome = run_pipeline(session, diagnoses, progress)
    outcome.snapshot.shard = shard
    return finish_run(args, outcome, output, started)


def shard_prompts(args: argparse.Namespace, prompts: list[str], path: object) -> tuple[list[str], list[int], Any]:
    """The prompts this run runs, their ids (positions in the file) and the shard record (None:
    every prompt); --shard/--shards/--ray combinations refused before any model work."""
    if args.ray is not None and args.shards is None:
        raise InputError(f"--ray {args.ray}: runs the shards of --shards N; add --shards N (e.g. --shards 2)")
    if args.shards is not None and args.ray is None:
        raise InputError(
            f"--shards {args.shards}: needs --ray ADDRESS (a cluster, or local), or run --shard I/N per machine"
        )
    if (args.shard or args.shards) and (args.sweep or args.stats):
        raise InputError(
            "--shard/--shards with --sweep or --stats: their totals are over one run's prompts; run them unsharded"
        )
    for position, text in enumerate(prompts):  # by file position, the same refusal in every shard
        validate_prompt(text, position)
    if args.shard is None:
        return prompts, list(range(len(prompts))), None
    index, count = args.shard
    positions, shard = select_shard(prompts, index, count)
    if not positions:
        raise InputError(
            f"--shard {index}/{count}: no prompt of {path} falls in shard {index} ({len(prompts)} prompts); "
            "use fewer shards"
        )
    return [prompts[i] for i in positions], positions, shard


def finish_run(args: argparse.Namespace, outcome: Any, output: tuple[str, str, str] | None, started: float) -> int:
    """Save the run's snapshot, print its tables and notes; the exit code."""
    snapshot = outcome.snapshot
    # the snapshot first: a closed stdout (| head) or a failing print must never lose it
    if output is not None:
        err(f"snapshot written to {save_snapshot(snapshot, output[0], format=output[2])}")
    failed = [engine for engine in snapshot.engines if engine.get("error")]
    # an engine that ran but failed some prompts (a server error, an unusable answer) failed too
    failures = [_failure(e["label"], e["error"]) for e in failed] + prompt_failures(snapshot)
    code = exit_code(bool(failures) or outcome.error is not None, args.fail_on_divergence and snapshot.divergences())
    out(summary_table(snapshot))
    if snapshot.statistics:
        title = f"distribution statistics, every engine teacher-forced on {snapshot.reference}'s tokens (KL in nats):"
        out(statistics_table(snapshot.statistics, snapshot.engine_labels, title))
    if any(prompt.repeats for prompt in snapshot.prompts):
        out(repeats_table(snapshot))
    for note in outcome.notes:
        err(f"gendiff: note: {one_line(note)}")
    if not args.quiet:
        err(f"total {time.perf_counter() - started:.2f}s")
    if outcome.error is not None:
        error_line(f"diagnosis failed: {outcome.error}")
    elif failures:
        error_line("; ".join(failures))
    return code


def progress_line(event: object, prompts: int) -> str | None:
    """The stderr line of a run or stage event (None: the event says nothing worth a line)."""
    if isinstance(event, EngineChecked):
        return f"{event.engine}: {checked(event.verdict)}"
    if isinstance(event, EngineStarted):
        return f"{event.engine}: loading…"
    if isinstance(event, EngineLoaded):
        return f"{event.engine}: loaded in {event.seconds:.1f}s; generating {event_prompts(prompts)}…"
    if isinstance(event, EngineFinished):
        tokens = sum(len(t.steps) for t in event.traces)
        return f"{event.engine}: {tokens} tokens in {event.seconds:.2f}s"
    if isinstance(event, EngineFailed):
        return f"{event.engine}: FAILED: {one_line(str(event.error))}"
    if isinstance(event, StageStarted):
        return f"stage {event.number}/{event.total}: {event.what}…"
    if isinstance(event, StageProgress):
        count = f" {event.done + 1}/{event.total}" if event.total else ""
        return f"{event.stage}{count}: {one_line(event.item)}…"
    return None


def event_prompts(count: int) -> str:
    return f"{count} prompt{'s' if count != 1 else ''}"


def cmd_sweep(args: argparse.Namespace, config: Any, prompts: list[str]) -> int:
    import json

    if args.bisect or args.reconverge:
        raise InputError("--sweep with --bisect/--reconverge: run the sweep first, then bisect one variant")
    axes = parse_sweep(args.sweep, config.engines)
    started = time.perf_counter()

    def on_variant(number: int, total: int, settings: dict[str, str]) -> None:
        if not args.quiet:
            shown = " ".join(f"{k}={v}" for k, v in settings.items())
            err(f"variant {number + 1}/{total}: {shown}")

    variants = run_sweep(config, prompts, axes, on_variant)
    labels = [spec.label for spec in config.engines]
    if args.json is not None:
        data = sweep_json(variants, axes, config, len(prompts))
        err(f"sweep written to {atomic_write_text(args.json, json.dumps(data, indent=1) + chr(10))}")
    failed = any(v.errors for v in variants)
    code = exit_code(failed, args.fail_on_divergence and any(any(d) for v in variants for d in v.diverged.values()))
    out(sweep_table(variants, axes, labels, config.reference, len(prompts)))
    if not args.quiet:
        err(f"total {time.perf_counter() - started:.2f}s")
    if failed:
        first = next(v for v in variants if v.errors)
        label, message = next(iter(first.errors.items()))
        error_line(f"engine {label} failed in at least one variant: {message}")
    return code


def cmd_compare(args: argparse.Namespace) -> int:

    output = snapshot_output(args)
    if output is not None:
        check_output(output[0], inputs={"snapshot A": args.a, "snapshot B": args.b}, option=output[1])
    engines = engine_list(args.engines) or None
    compared = load_pair(args.a, args.b, engines)
    if output is not None:
        err(f"comparison written to {save_snapshot(compared, output[0], format=output[2])}")
    for source in compared.sources:
        env = source.get("environment") or {}
        out(
            f"{source['tag']} = {source['path']}  ({source['created']}; torch {env.get('torch')}, "
            f"{env.get('gpu') or env.get('cpu') or env.get('device')})"
        )
    for note in compared.notes:
        out(f"note: {note}")
    out(summary_table(compared))
    return exit_code(False, args.fail_on_divergence and compared.divergences())


def cmd_export(args: argparse.Namespace) -> int:
    """``gendiff export FILE OUT``: the snapshot in FILE (either format) written to OUT as JSON
    (``--json``), as .gdz (``--gdz``), or as OUT's name says; OUT ``-``: JSON on stdout."""
    import json

    chosen = "json" if args.json else "gdz" if args.gdz else None
    if args.out == "-":
        if chosen == "gdz":
            raise InputError("OUT -: the .gdz format is binary; write it to a file, or use --json for stdout")
        snapshot = load_snapshot(args.file)
        out(json.dumps(snapshot.to_dict(), ensure_ascii=False, separators=(",", ":")))
        return 0
    check_output(args.out, inputs={"the snapshot it reads": args.file}, option="OUT")
    snapshot = load_snapshot(args.file)
    err(f"snapshot written to {save_snapshot(snapshot, args.out, format=chosen or format_for(args.out))}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    """``gendiff merge A B … -o OUT``: the shard snapshots joined, written to OUT (.gdz, else JSON)."""
    check_output(args.output, inputs={f"snapshot {name}": name for name in args.files}, option="-o")
    merged = merge_snapshots([(name, load_snapshot(name)) for name in args.files])
    err(f"merged snapshot written to {save_snapshot(merged, args.output, format=format_for(args.output))}")
    shard = merged.shard
    if shard is not None:
        out(f"shards {shard.label}: {len(merged.prompts)} of {shard.total} prompts")
    out(summary_table(merged))
    return 0


def snapshot_output(args: argparse.Namespace) -> tuple[str, str, str] | None:
    """(path, option, format) of ``--save OUT`` (format by the name) or ``--json OUT`` (JSON); None without either."""
    if getattr(args, "save", None) is not None:
        return args.save, "--save", format_for(args.save)
    if args.json is None:
        return None
    if format_for(args.json) == "gdz":
        raise InputError(
            f"--json {args.json}: a {SUFFIX} name for a JSON file; use --save {args.json} for the {SUFFIX} "
            "format, or a .json name"
        )
    return args.json, "--json", "json"


def cmd_score(args: argparse.Namespace) -> int:
    import json

    if args.kl_divergence_base is not None or args.kl_divergence_base_out is not None:
        return cmd_score_base(args)
    if args.ctx_size is not None:
        raise InputError("--ctx-size: only with --kl-divergence-base-out (llama-perplexity's chunks)")
    if args.json is not None:
        check_output(args.json, inputs={"the texts file": args.file}, model=args.model)
    texts = load_texts(args.file)
    config = build_config(args)

    def forcing(label: str) -> None:
        if not args.quiet:
            err(f"{label}: teacher-forced on the texts…")

    result = score(config, texts, forcing)
    for note in result.notes:
        err(f"gendiff: note: {one_line(note)}")
    title = (
        f"{len(texts)} texts, every engine fed the continuations; distributions against {result.reference}'s "
        "(KL in nats, loss: mean -log p of the continuation's tokens):"
    )
    if args.json is not None:  # written first: a closed stdout must not lose it
        written = atomic_write_text(args.json, json.dumps(result.to_dict(), indent=1, ensure_ascii=False) + "\n")
        err(f"scores written to {written}")
    out(statistics_table(result.statistics, result.engines, title, loss=True))
    return 3 if any("failed" in note for note in result.notes) else 0


def prompt_failures(snapshot: Any) -> list[str]:
    """``engine X failed on 2 of 16 prompts (prompt 3: …)`` for every engine that ran but whose
    traces of some prompts failed (engines that failed as a whole are reported apart)."""
    whole = {e["label"] for e in snapshot.engines if e.get("error")}
    lines = []
    for label in snapshot.engine_labels:
        rows = [
            (number, trace.error)
            for number, prompt in zip(snapshot.prompt_numbers(), snapshot.prompts, strict=True)
            if label not in whole and (trace := prompt.traces.get(label)) is not None and trace.finish_reason == "error"
        ]
        if rows:
            number, error = rows[0]
            lines.append(
                f"engine {label} failed on {len(rows)} of {len(snapshot.prompts)} prompts (prompt {number}: {error})"
            )
    return lines


def _failure(label: str, error: str) -> str:
    """``engine X failed: …``, without repeating the label when the engine's own message starts with it."""
    return f"engine {label} failed: {error.removeprefix(f'engine {label}: ')}"

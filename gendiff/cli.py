"""Command line: ``gendiff [PROMPTS|SNAPSHOT]`` opens the TUI; ``gendiff run …`` is headless.

Exit codes (see README, "Errors and exit codes"): 0 success; 1 a divergence with
--fail-on-divergence; 2 bad input; 3 an engine failed; 130 cancelled (ctrl+c, SIGTERM).
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from gendiff import __version__
from gendiff import options as defaults
from gendiff.errors import EXIT_CANCELLED, EXIT_DIVERGED, EXIT_ENGINE, GendiffError, InputError


class Parser(argparse.ArgumentParser):
    """argparse with the project's one-line error (``gendiff: error: …``, exit 2) instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        raise InputError(f"{message} (see {self.prog} --help)")


def number_option(minimum: float, inclusive: bool) -> Any:
    """An argparse type: a finite float at or above (or strictly above) ``minimum``; NaN and inf refused."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            bound = f"{'at least' if inclusive else 'above'} {minimum:g}"
            raise argparse.ArgumentTypeError(f"must be a finite number {bound}, not {text}")
        return value

    return parse


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``gendiff`` (TUI) and ``gendiff run``."""
    from gendiff.engines.base import ATTN_IMPLEMENTATIONS, DTYPES

    parser.add_argument(
        "--model", metavar="DIR", help="local Hugging Face causal-LM folder (default: the embedded demo model)"
    )
    parser.add_argument(
        "--engines",
        metavar="A,B,…",
        help=f"engines to run, each NAME[:key=value,…] (default: {','.join(defaults.DEFAULT_ENGINES)}); "
        "e.g. hf-single,hf-single:dtype=bfloat16",
    )
    parser.add_argument("--reference", metavar="NAME", help="engine the others are compared with (default: the first)")
    parser.add_argument(
        "--dtype", choices=DTYPES, default=defaults.DTYPE, help=f"weights and compute dtype (default: {defaults.DTYPE})"
    )
    parser.add_argument(
        "--attn",
        choices=ATTN_IMPLEMENTATIONS,
        default=defaults.ATTN,
        help=f"attention implementation (default: {defaults.ATTN})",
    )
    parser.add_argument("--device", default=defaults.DEVICE, help=f"cpu, cuda or cuda:N (default: {defaults.DEVICE})")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=defaults.BATCH_SIZE,
        help=f"rows per batch for hf-left/hf-right (default: {defaults.BATCH_SIZE})",
    )
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=defaults.MAX_NEW_TOKENS,
        help=f"tokens to generate per prompt (default: {defaults.MAX_NEW_TOKENS})",
    )
    parser.add_argument(
        "--top-k", type=int, default=defaults.TOP_K, help=f"candidates recorded per step (default: {defaults.TOP_K})"
    )
    parser.add_argument("--no-stop-at-eos", action="store_true", help="keep generating after the end-of-sequence token")
    parser.add_argument(
        "--fragile-threshold",
        type=number_option(0.0, inclusive=True),
        default=defaults.FRAGILE_THRESHOLD,
        help=f"reference margin below which an agreeing step counts as fragile (default: {defaults.FRAGILE_THRESHOLD})",
    )
    penalties = parser.add_argument_group(
        "penalties",
        "applied by every engine with its own implementation (see README, Penalties); one engine only: "
        "hf-single:repetition_penalty=1.2",
    )
    penalties.add_argument(
        "--repetition-penalty", type=float, metavar="X", help="multiplicative, prompt+output tokens (1 = off)"
    )
    penalties.add_argument(
        "--frequency-penalty", type=float, metavar="X", help="additive per occurrence, output tokens (0 = off)"
    )
    penalties.add_argument("--presence-penalty", type=float, metavar="X", help="additive once, output tokens (0 = off)")
    penalties.add_argument(
        "--no-repeat-ngram-size", type=int, metavar="N", help="ban repeated N-grams (HF engines only; 0 = off)"
    )
    penalties.add_argument(
        "--model-defaults",
        action="store_true",
        help="each engine applies the model's generation_config.json as it does by default "
        "(else greedy is the argmax of the raw logits)",
    )


def decoding_from_args(args: argparse.Namespace) -> Any:
    """The run-wide penalties of the command line (a :class:`gendiff.decoding.Decoding`)."""
    from gendiff.decoding import Decoding

    decoding = Decoding()
    for key in ("repetition_penalty", "frequency_penalty", "presence_penalty", "no_repeat_ngram_size"):
        value = getattr(args, key, None)
        if value is not None:
            decoding = decoding.with_values({key: value}, "--" + key.replace("_", "-"))
    return decoding.with_values({"model_defaults": bool(getattr(args, "model_defaults", False))}, "--model-defaults")


def build_config(args: argparse.Namespace) -> Any:
    from gendiff.options import RunOptions

    return RunOptions.from_args(args).config()


def engine_list(text: str | None) -> list[str]:
    """The engine specs of ``--engines`` (empty when not given); an empty value is an error."""
    from gendiff.engines.base import split_engine_list

    if text is None:
        return []
    specs = split_engine_list(text)
    if not specs:
        raise InputError(f"--engines {text!r}: no engine named; e.g. --engines hf-single,hf-left (or leave it out)")
    return specs


def run_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="gendiff run",
        description="Run every prompt through each engine greedily and report where they first differ.",
    )
    parser.add_argument(
        "--prompts",
        metavar="FILE",
        help='.txt (one prompt per line, \\n escapes) or .jsonl ({"prompt": …}); default: the demo prompts',
    )
    add_run_options(parser)
    parser.add_argument("--json", metavar="OUT", help="write the snapshot JSON here")
    parser.add_argument(
        "--bisect",
        action="store_true",
        help="for each token divergence, replay both engines to that step and name the first module "
        "(layer, norm, attention, MLP, residual) whose output differs",
    )
    parser.add_argument(
        "--reconverge",
        action="store_true",
        help="for each token divergence, feed the other engine the reference's tokens: transient flip or lasting fork?",
    )
    parser.add_argument(
        "--tolerance",
        type=number_option(0.0, inclusive=False),
        default=1e-3,
        help="relative difference that counts as a real split in --bisect (default: 1e-3)",
    )
    parser.add_argument(
        "--recheck",
        choices=("float32",),
        help="re-run the diverging pairs of a lower-precision run in float32 (same engines and batches): "
        "'agrees' means rounding noise, 'diverges' means something else",
    )
    parser.add_argument(
        "--stats",
        action="store_true",
        help="teacher-force every engine on the reference's tokens and report llama.cpp's distribution "
        "statistics (KL divergence, same top-1, Δp) per prompt and engine",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        metavar="N",
        help="run every engine N times, each prompt at another row beside other prompts each time; "
        "report how many distinct completions each gives",
    )
    parser.add_argument(
        "--sweep",
        nargs="+",
        metavar="KEY=V1,V2",
        help="run every combination of these settings (dtype, attn, batch_size, device, a penalty like "
        "repetition_penalty, or an engine option like cache, positions, order) and print divergence counts per variant",
    )
    parser.add_argument(
        "--fail-on-divergence", action="store_true", help="exit 1 if any engine diverges from the reference"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser


def tui_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="gendiff",
        description="Side-by-side greedy generation across inference engines, with the first divergence explained. "
        "Subcommands: 'gendiff run --help' for headless runs, 'gendiff compare --help' for two snapshots.",
    )
    parser.add_argument(
        "path", nargs="?", help="a prompt file (.txt/.jsonl) to edit and run, or a snapshot .json to view"
    )
    parser.add_argument(
        "other", nargs="?", metavar="B.json", help="a second snapshot: view each engine of it against the first's"
    )
    add_run_options(parser)
    parser.add_argument(
        "--theme", help="colour theme (gendiff-dark, gendiff-light, gendiff-contrast, or any Textual theme)"
    )
    parser.add_argument("--version", action="version", version=f"gendiff {__version__}")
    return parser


def compare_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="gendiff compare",
        description="Line up the same engines across two snapshots (two machines, two versions) and "
        "report where B first differs from A. Refuses if the prompts or the model differ.",
    )
    parser.add_argument("a", metavar="A.json", help="the baseline snapshot")
    parser.add_argument("b", metavar="B.json", help="the snapshot compared with it")
    parser.add_argument("--engines", metavar="A,B,…", help="only these engines (default: every engine in both)")
    parser.add_argument("--json", metavar="OUT", help="write the comparison as a snapshot JSON (gendiff OUT views it)")
    parser.add_argument("--fail-on-divergence", action="store_true", help="exit 1 if any engine differs")
    return parser


def score_parser() -> argparse.ArgumentParser:
    from gendiff.engines.base import ATTN_IMPLEMENTATIONS, DTYPES

    parser = Parser(
        prog="gendiff score",
        description="Feed every engine the same fixed text (prompt, then continuation, token by token) and "
        "report how far apart their next-token distributions are (KL divergence, same top-1, Δp) and each "
        "engine's mean loss on the continuation. No generation.",
    )
    parser.add_argument("file", metavar="FILE", help='JSONL, one {"prompt": …, "continuation": …} per line')
    parser.add_argument(
        "--model", metavar="DIR", help="local Hugging Face causal-LM folder (default: the embedded demo model)"
    )
    parser.add_argument(
        "--engines",
        metavar="A,B,…",
        default="hf-single:attn=eager,hf-single:attn=sdpa",
        help="engines to compare (default: hf-single:attn=eager,hf-single:attn=sdpa)",
    )
    parser.add_argument("--reference", metavar="NAME", help="engine the others are compared with (default: the first)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="weights and compute dtype")
    parser.add_argument("--attn", choices=ATTN_IMPLEMENTATIONS, default="sdpa", help="attention implementation")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--batch-size", type=int, default=16, help="rows per batch for hf-left/hf-right")
    parser.add_argument("--json", metavar="OUT", help="write the statistics per text and engine here")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.set_defaults(
        max_new_tokens=1, top_k=defaults.TOP_K, no_stop_at_eos=True, fragile_threshold=defaults.FRAGILE_THRESHOLD
    )
    return parser


def cmd_score(args: argparse.Namespace) -> int:
    import json

    from gendiff.fileio import atomic_write_text
    from gendiff.score import load_texts, score

    if args.json is not None:
        check_output(args.json, inputs={"the texts file": args.file}, model=args.model)
    texts = load_texts(args.file)
    config = build_config(args)

    def forcing(label: str) -> None:
        if not args.quiet:
            print(f"{label}: teacher-forced on the texts…", file=sys.stderr, flush=True)

    result = score(config, texts, forcing)
    for note in result.notes:
        print(f"gendiff: note: {note}", file=sys.stderr)
    title = (
        f"{len(texts)} texts, every engine fed the continuations; distributions against {result.reference}'s "
        "(KL in nats, loss: mean -log p of the continuation's tokens):"
    )
    if args.json is not None:  # written first: a closed stdout must not lose it
        written = atomic_write_text(args.json, json.dumps(result.to_dict(), indent=1, ensure_ascii=False) + "\n")
        err(f"scores written to {written}")
    out(statistics_table(result.statistics, result.engines, title, loss=True))
    return 3 if any("failed" in note for note in result.notes) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (errors are one ``gendiff: error:`` line on stderr)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    headless = argv[:1] in (["run"], ["compare"], ["score"])
    previous = _terminate_as_interrupt() if headless else None
    try:
        if argv[:1] == ["run"]:
            return cmd_run(run_parser().parse_args(argv[1:]))
        if argv[:1] == ["score"]:
            return cmd_score(score_parser().parse_args(argv[1:]))
        if argv[:1] == ["compare"]:
            return cmd_compare(compare_parser().parse_args(argv[1:]))
        return cmd_tui(tui_parser().parse_args(argv))
    except GendiffError as exc:
        stream_write(sys.stderr, f"gendiff: error: {exc}")
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


def cmd_tui(args: argparse.Namespace) -> int:
    from gendiff.documents import open_document
    from gendiff.options import RunOptions
    from gendiff.tui.app import GendiffApp, LaunchOptions

    # checked before the app starts: bad options or files are one error line, not a crash in the UI
    run = RunOptions.from_args(args)
    if not run.engines:
        raise GendiffError(f"--engines {args.engines!r}: names no engine; e.g. --engines hf-single,hf-left")
    run.config()
    document = open_document(args.path, args.other)
    GendiffApp(LaunchOptions(run=run, document=document, theme=args.theme)).run()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from gendiff.prompts import PromptBook, demo_prompts_path

    config = build_config(args)
    book = PromptBook.load(demo_prompts_path() if args.prompts is None else args.prompts)
    if not book.prompts:
        raise InputError(f"prompts {book.path}: no prompts in the file; add one per line")
    if args.json is not None:
        check_output(args.json, inputs={"the prompts file": book.path}, model=config.model_path)

    if args.repeat is not None and args.repeat < 2:
        raise InputError(f"--repeat {args.repeat}: must be at least 2 (the run itself counts as the first)")
    if args.sweep:
        if args.recheck or args.stats or args.repeat:
            raise InputError("--sweep with --recheck/--stats/--repeat: run the sweep first, then one variant")
        return cmd_sweep(args, config, book.prompts)

    from gendiff.session import EngineFailed, EngineFinished, EngineLoaded, EngineStarted, Session

    session = Session(config, book.prompts)
    for note in session.notes:
        err(f"gendiff: note: {note}")
    started = time.perf_counter()

    def progress(event: object) -> None:
        if args.quiet:
            return
        if isinstance(event, EngineStarted):
            err(f"{event.engine}: loading…")
        elif isinstance(event, EngineLoaded):
            err(f"{event.engine}: loaded in {event.seconds:.1f}s; generating {len(book.prompts)} prompts…")
        elif isinstance(event, EngineFinished):
            tokens = sum(len(t.steps) for t in event.traces)
            err(f"{event.engine}: {tokens} tokens in {event.seconds:.2f}s")
        elif isinstance(event, EngineFailed):
            err(f"{event.engine}: FAILED: {event.error}")

    snapshot = session.run(progress)
    diagnosis_error = None
    if args.bisect or args.reconverge:

        def diagnosing(done: int, total: int, d: Any) -> None:
            if not args.quiet:
                err(f"diagnosing {done + 1}/{total}: prompt {d.prompt_index + 1} {d.engine}…")

        try:
            session.diagnose(snapshot, args.bisect, args.reconverge, args.tolerance, diagnosing)
        except Exception as exc:  # a replay failing at run time is an engine failure; the run is kept
            diagnosis_error = str(exc) if isinstance(exc, GendiffError) else f"{type(exc).__name__}: {exc}"
        skipped = sorted(
            {
                d.engine
                for d in snapshot.divergences()
                if d.reason == "token" and d.bisection is None and d.reconvergence is None
            }
        )
        for label in skipped if diagnosis_error is None else []:
            err(
                f"gendiff: note: {label}: can't be replayed with forced tokens, so its divergences are not "
                "diagnosed (hf-single, hf-left, hf-right and packed can)"
            )
    notes: list[str] = []
    if diagnosis_error is None:
        try:
            notes = explain_run(args, session, snapshot, progress)
        except InputError:
            raise
        except Exception as exc:  # --recheck/--repeat/--stats failing at run time: the run is kept
            message = str(exc) if isinstance(exc, GendiffError) else f"{type(exc).__name__}: {exc}"
            diagnosis_error = f"--recheck/--repeat/--stats: {message}"
    # the snapshot first: a closed stdout (| head) or a failing print must never lose it
    if args.json is not None:
        err(f"snapshot written to {snapshot.save(args.json)}")
    failed = [engine for engine in snapshot.engines if engine.get("error")]
    code = exit_code(bool(failed) or diagnosis_error is not None, args.fail_on_divergence and snapshot.divergences())
    out(summary_table(snapshot))
    if snapshot.statistics:
        title = f"distribution statistics, every engine teacher-forced on {snapshot.reference}'s tokens (KL in nats):"
        out(statistics_table(snapshot.statistics, snapshot.engine_labels, title))
    if any(prompt.repeats for prompt in snapshot.prompts):
        out(repeats_table(snapshot))
    for note in notes:
        err(f"gendiff: note: {note}")
    if not args.quiet:
        err(f"total {time.perf_counter() - started:.2f}s")
    if diagnosis_error is not None:
        err(f"gendiff: error: diagnosis failed: {diagnosis_error}")
    elif failed:
        err("gendiff: error: " + "; ".join(f"engine {e['label']} failed: {e['error']}" for e in failed))
    return code


def exit_code(engine_failed: bool, diverged: Any) -> int:
    """3 if an engine failed, else 1 if it diverged (with --fail-on-divergence), else 0."""
    if engine_failed:
        return EXIT_ENGINE
    return EXIT_DIVERGED if diverged else 0


def check_output(path: str, inputs: dict[str, Any], model: str | None = None) -> None:
    """Refuse (before any work) an output path that can't be written, or that names one of the
    command's own inputs (a snapshot written there would replace it) or a file of the model."""
    from gendiff.engines.loading import demo_model_path
    from gendiff.fileio import check_writable, resolve_target, same_file

    target = check_writable(path, "--json")
    for what, source in inputs.items():
        if source is not None and same_file(target, source):
            raise InputError(f"--json {path}: that is {what}; writing the snapshot there would replace it")
    folder = os.path.realpath(model if model is not None else demo_model_path())
    if os.path.realpath(resolve_target(path).parent) == folder:
        raise InputError(f"--json {path}: that is inside the model folder {folder}; write the snapshot elsewhere")


def explain_run(args: argparse.Namespace, session: Any, snapshot: Any, progress: Any) -> list[str]:
    """--recheck, --repeat and --stats on a finished run; returns notes for stderr."""
    notes: list[str] = []
    if args.recheck:
        from gendiff.recheck import recheck

        if not args.quiet:
            print(f"rechecking the diverging pairs in {args.recheck}…", file=sys.stderr, flush=True)
        notes += recheck(session, snapshot, args.recheck, progress)
    if args.repeat:
        from gendiff.repeat import attach_repeats

        if not args.quiet:
            print(f"repeating the run {args.repeat - 1} more times, prompts reordered…", file=sys.stderr, flush=True)
        notes += attach_repeats(session, snapshot, args.repeat, progress)
    if args.stats:
        from gendiff.statistics import attach_statistics

        def forcing(label: str) -> None:
            if not args.quiet:
                print(f"{label}: teacher-forced pass for --stats…", file=sys.stderr, flush=True)

        notes += attach_statistics(session, snapshot, forcing)
    return notes


def cmd_sweep(args: argparse.Namespace, config: Any, prompts: list[str]) -> int:
    import json

    from gendiff.fileio import atomic_write_text
    from gendiff.sweep import parse_sweep, run_sweep, sweep_json, sweep_table

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
        err(f"gendiff: error: engine {label} failed in at least one variant: {message}")
    return code


def cmd_compare(args: argparse.Namespace) -> int:
    from gendiff.compare import load_pair

    if args.json is not None:
        check_output(args.json, inputs={"snapshot A": args.a, "snapshot B": args.b})
    engines = engine_list(args.engines) or None
    compared = load_pair(args.a, args.b, engines)
    if args.json is not None:
        err(f"comparison written to {compared.save(args.json)}")
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


def summary_table(snapshot: Any) -> str:
    """One line per prompt × engine: identical, or where and how it diverged."""
    from gendiff.display import number, shorten, visible

    if snapshot.sources:
        lines = [f"reference: each engine@B against engine@A   model: {snapshot.model['name']}"]
    else:
        lines = [
            f"reference: {snapshot.reference}   model: {snapshot.model['name']}   dtype: {snapshot.model.get('dtype')}"
        ]
    compared = {d.engine for p in snapshot.prompts for d in p.divergences}
    labels = [label for label in snapshot.engine_labels if label in compared]
    width = max((len(label) for label in labels), default=8)
    diverged = total = failed = 0
    for index, prompt in enumerate(snapshot.prompts, 1):
        lines.append(f"{index:>3} {shorten(prompt.text, 70)}")
        for label in labels:
            d = prompt.divergence_for(label)
            if d is None:
                continue
            total += 1
            if not d.diverged:
                lines.append(f"      {label:<{width}}  identical ({d.agreeing_steps} tokens)")
                continue
            if d.reason == "error":  # a failed engine is not a divergence: say so
                failed += 1
                lines.append(f"      {label:<{width}}  FAILED: {d.detail}")
                continue
            diverged += 1
            pad = " " * (width + 8)
            if d.reason == "token":
                lines.append(
                    f"      {label:<{width}}  DIVERGED at step {d.step} [{d.classification}]: "
                    f"{visible(d.reference_step.text)!s} vs {visible(d.other_step.text)!s}  "
                    f"margin ref {number(d.reference_margin)} / {label} {number(d.other_margin)}  "
                    f"flip gap {number(d.flip_gap)}  drift before {number(d.max_drift_before)}  "
                    f"cross-top-k {'yes' if d.cross_top_k else 'no'}"
                )
                if d.decoding_note:
                    lines.append(f"{pad}penalties differ: {d.decoding_note}")
                if d.bisection is not None:
                    head, *notes = d.bisection.summary_lines()
                    lines.append(f"{pad}bisection: {head}")
                    lines.extend(f"{pad}  {note}" for note in notes)
                    if d.bisection.modules:
                        lines.append(f"{pad}  per layer: {layer_chart(d.bisection)}")
                    if d.bisection.key_values:
                        lines.append(f"{pad}  earlier positions' keys/values: {key_value_chart(d.bisection)}")
                if d.reconvergence is not None:
                    lines.append(f"{pad}re-convergence: {d.reconvergence.summary()}")
            else:
                where = "" if d.step is None else f" at step {d.step}"
                lines.append(f"      {label:<{width}}  DIVERGED{where} ({d.reason}): {d.detail}")
                if d.decoding_note:
                    lines.append(f"{pad}penalties differ: {d.decoding_note}")
            if d.recheck is not None:
                lines.append(f"{pad}recheck: {d.recheck.summary()}")
    against = "its @A side" if snapshot.sources else snapshot.reference
    lines.append(
        f"{diverged} of {total} prompt×engine pairs diverged from {against}{classification_counts(snapshot)}"
        + (f"; {failed} not compared because an engine failed" if failed else "")
    )
    return "\n".join(lines)


def statistics_table(statistics: dict[str, Any], labels: list[str], title: str, loss: bool = False) -> str:
    """One line per engine: llama.cpp's --kl-divergence set over all prompts (KL in nats)."""
    from gendiff.display import number

    labels = [label for label in labels if label in statistics]
    width = max([len(label) for label in labels] + [6])
    lines = [
        title,
        f"  {'engine':<{width}}  {'positions':>9}  {'KLD mean':>9}  {'median':>9}  {'p99':>9}  {'max':>9}  "
        f"{'at':>7}  {'same top1':>9}  {'Δp mean':>9}  {'Δp rms':>9}" + (f"  {'loss':>9}" if loss else ""),
    ]
    for label in labels:
        st = statistics[label]
        at = "—" if st.kld_max_prompt is None else f"{st.kld_max_prompt + 1}/{st.kld_max_position}"
        same = "—" if st.same_top1 is None else f"{100 * st.same_top1:.2f}%"
        lines.append(
            f"  {label:<{width}}  {st.positions:>9}  {number(st.kld_mean, 6):>9}  {number(st.kld_median, 6):>9}  "
            f"{number(st.kld_p99, 6):>9}  {number(st.kld_max, 6):>9}  {at:>7}  {same:>9}  "
            f"{number(st.dp_mean, 6):>9}  {number(st.dp_rms, 6):>9}" + (f"  {number(st.loss, 6):>9}" if loss else "")
        )
    what = "prompt/step" if not loss else "text/token"
    lines.append(f"  (at: {what} of the largest KLD; Δp: change of the reference token's probability)")
    return "\n".join(lines)


def repeats_table(snapshot: Any) -> str:
    """Per engine: how many prompts gave one completion in every run, and the ones that did not."""
    labels = [label for label in snapshot.engine_labels if any(label in p.repeats for p in snapshot.prompts)]
    runs = next(r.runs for p in snapshot.prompts for r in p.repeats.values())
    lines = [f"repeats: {runs} runs, each prompt at another row beside other prompts each time"]
    width = max(len(label) for label in labels)
    for label in labels:
        found = [(i, p.repeats[label]) for i, p in enumerate(snapshot.prompts, 1) if label in p.repeats]
        stable = sum(r.deterministic for _, r in found)
        lines.append(f"  {label:<{width}}  {stable} of {len(found)} prompts: 1 unique of {runs}")
        for index, r in found:
            if not r.deterministic:
                lines.append(f"  {'':<{width}}    prompt {index}: {r.summary()}")
    return "\n".join(lines)


def classification_counts(snapshot: Any) -> str:
    """``: 3 exact-tie, 1 wide-flip`` over the snapshot's divergences (empty when none)."""
    from collections import Counter

    from gendiff.classify import CLASSIFICATIONS

    # failed engines are counted apart ("not compared"), not as a kind of divergence
    counts = Counter(d.classification for d in snapshot.divergences() if d.reason != "error")
    shown = [f"{counts[kind]} {kind}" for kind in CLASSIFICATIONS if counts[kind]]
    return f": {', '.join(shown)}" if shown else ""


def layer_chart(bisection: Any) -> str:
    """The relative difference of the residual stream after each layer, as ``L1 ▅ 1.2e-03 …``
    (bars on a log axis from 1e-7 to 1; ``·`` is bitwise equal)."""
    from gendiff.display import bar

    return "  ".join(f"L{m.layer} {bar(m.rel_diff)} {m.rel_diff:.1e}" for m in bisection.layer_outputs())


def key_value_chart(bisection: Any) -> str:
    """Per layer, the positions before the divergent one whose key or value differs:
    ``L0 none · L1 3 of 12 (pos 0, 1, 2; max rel 4.1e-03)``."""
    compared = {}
    for kv in bisection.key_values:
        compared[kv.layer] = max(compared.get(kv.layer, 0), kv.positions)
    earlier = bisection.earlier_positions()
    parts = []
    for layer in sorted(compared):
        found = earlier.get(layer, [])
        total = compared[layer] - 1 if bisection.position is not None else compared[layer]
        if not found:
            parts.append(f"L{layer} none of {total}")
            continue
        shown = ", ".join(str(p.position) for p in found[:6]) + (", …" if len(found) > 6 else "")
        worst = max(p.rel_diff for p in found)
        parts.append(f"L{layer} {len(found)} of {total} (pos {shown}; max rel {worst:.1e})")
    return " · ".join(parts)


if __name__ == "__main__":
    raise SystemExit(main())

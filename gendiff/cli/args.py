"""The command line's grammar: the argument parsers and option types of ``gendiff``,
``gendiff run``, ``compare``, ``export`` and ``score``. Only the defaults are imported, so ``gendiff --help``
stays fast; :mod:`gendiff.cli.run_options` turns parsed arguments into the checked RunOptions."""

from __future__ import annotations

import argparse
import math
from typing import Any, NoReturn

from gendiff import __version__, defaults
from gendiff.errors import InputError


class Parser(argparse.ArgumentParser):
    """argparse with the project's one-line error (``gendiff: error: …``, exit 2) instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        raise InputError(f"{message} (see {self.prog} --help)")


def count_option(text: str) -> int:
    """An argparse type: a whole number of at least 1 (batch size, tokens, top-k)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def shard_option(text: str) -> tuple[int, int]:
    """An argparse type: ``I/N``, shard I of N, numbered from 1 (1 <= I <= N)."""
    index, slash, count = text.partition("/")
    try:
        value = (int(index), int(count))
    except ValueError:
        value = None
    if not slash or value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N (shard I of N, e.g. 1/4)")
    if value[1] < 1 or not 1 <= value[0] <= value[1]:
        raise argparse.ArgumentTypeError(
            f"{text}: shards are numbered 1 to N (N at least 1), e.g. 1/{max(value[1], 2)}"
        )
    return value


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


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """How every engine runs unless its spec says otherwise: dtype, attention, device, batch size."""
    parser.add_argument(
        "--dtype",
        choices=defaults.DTYPES,
        default=defaults.DTYPE,
        help=f"weights and compute dtype (default: {defaults.DTYPE})",
    )
    parser.add_argument(
        "--attn",
        choices=defaults.ATTN_IMPLEMENTATIONS,
        default=defaults.ATTN,
        help=f"attention implementation (default: {defaults.ATTN})",
    )
    parser.add_argument("--device", default=defaults.DEVICE, help=f"cpu, cuda or cuda:N (default: {defaults.DEVICE})")
    parser.add_argument(
        "--batch-size",
        type=count_option,
        default=defaults.BATCH_SIZE,
        help=f"rows per batch for hf-left/hf-right (default: {defaults.BATCH_SIZE})",
    )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``gendiff`` (TUI) and ``gendiff run``."""
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
    add_engine_options(parser)
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
        "applied by every engine with its own implementation (see docs/penalties.md); one engine only: "
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


def add_save_options(parser: argparse.ArgumentParser, what: str) -> None:
    """``--save OUT`` (the format by the name: .gdz, else JSON) or ``--json OUT`` (always JSON)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--save",
        metavar="OUT",
        help=f"write {what} here: a .gdz name gives the compact format (fast to open), any other JSON",
    )
    group.add_argument("--json", metavar="OUT", help=f"write {what} here as JSON")


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
    add_save_options(parser, "the snapshot")
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
        default=defaults.TOLERANCE,
        help=f"relative difference that counts as a real split in --bisect (default: {defaults.TOLERANCE:g})",
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
    shards = parser.add_argument_group(
        "shards", "split the prompts by a hash of each prompt's text (docs/headless.md); gendiff merge joins them"
    )
    chosen = shards.add_mutually_exclusive_group()
    chosen.add_argument(
        "--shard",
        type=shard_option,
        metavar="I/N",
        help="run only the prompts of shard I of N (1 <= I <= N): those whose sha256(text) mod N is I-1",
    )
    chosen.add_argument(
        "--shards", type=count_option, metavar="N", help="run all N shards as Ray tasks (needs --ray), then merge them"
    )
    shards.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="with --shards: the Ray cluster (ray://host:10001, auto) or local (a Ray instance started here)",
    )
    return parser


def merge_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="gendiff merge",
        description="Join the snapshots of the shards of one run (gendiff run --shard I/N) into one snapshot, "
        "its prompts in the prompt file's order. Refuses snapshots that differ in model, engines, settings, "
        "environment or prompt file, or that hold the same shard or prompt twice.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="the shard snapshots (.gdz or .json)")
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="where to write the merged snapshot: .gdz, else JSON"
    )
    return parser


def tui_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="gendiff",
        description="Side-by-side greedy generation across inference engines, with the first divergence explained. "
        "Subcommands: 'gendiff run --help' for headless runs, 'gendiff compare --help' for two snapshots, "
        "'gendiff export --help' to turn a snapshot into JSON or .gdz, 'gendiff merge --help' to join shards, "
        "'gendiff determinism --help' for the nondeterminism protocols.",
    )
    parser.add_argument(
        "path", nargs="?", help="a prompt file (.txt/.jsonl) to edit and run, or a snapshot (.gdz/.json) to view"
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
    add_save_options(parser, "the comparison (a snapshot: gendiff OUT views it)")
    parser.add_argument("--fail-on-divergence", action="store_true", help="exit 1 if any engine differs")
    return parser


def export_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="gendiff export",
        description="Write a snapshot (.gdz or JSON, any version) in another format: --json gives the JSON "
        "view (schema gendiff.snapshot/2, for people, jq and other tools), --gdz the compact .gdz; without "
        "either, the format follows OUT's name (.gdz, else JSON).",
    )
    parser.add_argument("file", metavar="FILE", help="the snapshot to read (.gdz or .json)")
    parser.add_argument("out", metavar="OUT", help="where to write it; - for stdout (JSON only)")
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument("--json", action="store_true", help="write JSON, whatever OUT's name")
    chosen.add_argument("--gdz", action="store_true", help="write the .gdz format, whatever OUT's name")
    return parser


def score_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="gendiff score",
        description="Feed every engine the same fixed text (prompt, then continuation, token by token) and "
        "report how far apart their next-token distributions are (KL divergence, same top-1, Δp) and each "
        "engine's mean loss on the continuation. No generation.",
    )
    parser.add_argument(
        "file",
        metavar="FILE",
        help='JSONL, one {"prompt": …, "continuation": …} per line; with --kl-divergence-base[-out], plain text',
    )
    parser.add_argument(
        "--model", metavar="DIR", help="local Hugging Face causal-LM folder (default: the embedded demo model)"
    )
    score_engines = ",".join(defaults.SCORE_ENGINES)
    parser.add_argument(
        "--engines", metavar="A,B,…", default=score_engines, help=f"engines to compare (default: {score_engines})"
    )
    parser.add_argument("--reference", metavar="NAME", help="engine the others are compared with (default: the first)")
    add_engine_options(parser)
    parser.add_argument("--json", metavar="OUT", help="write the statistics per text and engine here")
    base = parser.add_mutually_exclusive_group()
    base.add_argument(
        "--kl-divergence-base",
        metavar="BASE",
        help="score every engine against llama.cpp's base file BASE, as llama-perplexity --kl-divergence "
        "--kl-divergence-base BASE does; FILE is then the text BASE was made from (llama-perplexity -f FILE)",
    )
    base.add_argument(
        "--kl-divergence-base-out",
        metavar="BASE",
        help="write the reference's logprobs on FILE (plain text, cut as llama-perplexity -f FILE -c N cuts it) "
        "as a llama.cpp base file BASE, for llama-perplexity --kl-divergence --kl-divergence-base BASE",
    )
    parser.add_argument(
        "-c",
        "--ctx-size",
        type=count_option,
        metavar="N",
        help=f"tokens per chunk with --kl-divergence-base-out (default: {defaults.KLD_CTX}, llama-perplexity's); "
        "a base says its own",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.set_defaults(
        max_new_tokens=1, top_k=defaults.TOP_K, no_stop_at_eos=True, fragile_threshold=defaults.FRAGILE_THRESHOLD
    )
    return parser


def determinism_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="gendiff determinism",
        description="Run one prompt N times under a nondeterminism protocol and report, per engine, unique "
        "completions, the most common's count, TARr@N, the first split positions and the token pairs there. "
        "needle: alone, then beside random fillers at a random row and batch size; repeat: N times alone; "
        "single: batch sizes 1..N of the prompt; mixed: beside short and long prompts; prefix: beside its own "
        "prefixes (vllm:enable_prefix_caching=true for a warm cache).",
    )
    parser.add_argument("protocol", choices=("needle", "repeat", "single", "mixed", "prefix"))
    parser.add_argument("--prompt", metavar="TEXT", help="the watched prompt (default: the first of --prompts)")
    parser.add_argument(
        "--prompts", metavar="FILE", help="fillers (and the default prompt): .txt or .jsonl; default: the demo prompts"
    )
    add_run_options(parser)
    parser.add_argument(
        "--trials",
        type=count_option,
        default=defaults.DETERMINISM_TRIALS,
        help=f"completions of the prompt, the first alone for needle/mixed/prefix (default: {defaults.DETERMINISM_TRIALS})",
    )
    parser.add_argument(
        "--seed", type=int, default=defaults.DETERMINISM_SEED, help="seed of the random layout (recorded; default: 0)"
    )
    parser.add_argument(
        "--max-batch",
        type=count_option,
        default=defaults.DETERMINISM_MAX_BATCH,
        help=f"largest random batch of needle/mixed/prefix (default: {defaults.DETERMINISM_MAX_BATCH})",
    )
    parser.add_argument(
        "--bisect",
        action="store_true",
        help="bisect each engine's most common split (the two trials' batches replayed)",
    )
    parser.add_argument(
        "--tolerance",
        type=number_option(0.0, inclusive=False),
        default=defaults.TOLERANCE,
        help=f"relative difference that counts as a real split in --bisect (default: {defaults.TOLERANCE:g})",
    )
    parser.add_argument("--json", metavar="OUT", help="write the layout, completions and statistics here")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser


def given_options(parser: argparse.ArgumentParser, argv: list[str]) -> frozenset[str]:
    """The dests of the options ``argv`` gives (not those left at their defaults)."""
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return frozenset(vars(parser.parse_known_args(argv)[0]))

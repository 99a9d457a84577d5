"""``gendiff score TEXT --kl-divergence-base BASE`` / ``--kl-divergence-base-out BASE``: the
llama.cpp base file, read (every engine scored against it) or written (the reference's)."""

from __future__ import annotations

import argparse
import json

from gendiff.cli.console import err, out
from gendiff.cli.run_options import build_config
from gendiff.cli.summary import statistics_table
from gendiff.defaults import KLD_CTX
from gendiff.display import one_line
from gendiff.errors import InputError
from gendiff.io.fileio import atomic_write_text, check_writable, same_file
from gendiff.run.kld_score import score_against_base, write_base


def cmd_score_base(args: argparse.Namespace) -> int:
    reading = args.kl_divergence_base is not None
    if reading and args.ctx_size is not None:
        raise InputError("--ctx-size with --kl-divergence-base: the base says its own n_ctx; leave --ctx-size out")
    if args.json is not None:
        check_writable(args.json, "--json")
    if not reading:
        check_writable(args.kl_divergence_base_out, "--kl-divergence-base-out")
        for what, path in (("the text file", args.file), ("--json", args.json)):
            if path is not None and same_file(args.kl_divergence_base_out, path):
                raise InputError(
                    f"--kl-divergence-base-out {args.kl_divergence_base_out}: that is {what}; pick another path"
                )
    config = build_config(args)

    def forcing(label: str) -> None:
        if not args.quiet:
            err(f"{label}: teacher-forced on the text's chunks…")

    if reading:
        result = score_against_base(config, args.file, args.kl_divergence_base, forcing)
    else:
        result = write_base(config, args.file, args.kl_divergence_base_out, args.ctx_size or KLD_CTX, forcing)
    base = result.base or {}
    path = one_line(base.get("path", ""))
    if not reading:
        err(
            f"{config.reference}'s logprobs written to {path} (llama.cpp base: n_ctx {base['n_ctx']}, n_vocab {base['n_vocab']}, {base['n_chunk']} chunks)"
        )
    for note in result.notes:
        err(f"gendiff: note: {one_line(note)}")
    layout = (
        f"{base['n_chunk']} chunks of {base['n_ctx']} tokens, positions {base['n_ctx'] // 2}…{base['n_ctx'] - 2} "
        "of each scored (llama-perplexity's layout)"
    )
    against = f"the base {path}" if reading else f"{result.reference}'s"
    title = f"{layout}; distributions against {against} (KL in nats, loss: mean -log p of the scored tokens):"
    if args.json is not None:
        written = atomic_write_text(args.json, json.dumps(result.to_dict(), indent=1, ensure_ascii=False) + "\n")
        err(f"scores written to {written}")
    out(
        statistics_table(result.statistics, result.engines, title, loss=True, base=path if reading else "the reference")
    )
    return 3 if any("failed" in note for note in result.notes) else 0

"""Parsed ``gendiff``/``gendiff run``/``score`` arguments -> the checked RunOptions and RunConfig
(the engine list, the run-wide penalties); every check is the one the app's settings use."""

from __future__ import annotations

import argparse

from gendiff import defaults
from gendiff.engines.settings import split_engine_list
from gendiff.errors import InputError
from gendiff.records.decoding import Decoding
from gendiff.run.config import RunConfig
from gendiff.run.options import RunOptions


def decoding_from_args(args: argparse.Namespace) -> Decoding:
    """The run-wide penalties of the command line ."""
    decoding = Decoding()
    for key in ("repetition_penalty", "frequency_penalty", "presence_penalty", "no_repeat_ngram_size"):
        value = getattr(args, key, None)
        if value is not None:
            decoding = decoding.with_values({key: value}, "--" + key.replace("_", "-"))
    return decoding.with_values({"model_defaults": bool(getattr(args, "model_defaults", False))}, "--model-defaults")


def build_config(args: argparse.Namespace) -> RunConfig:
    """The checked RunConfig of ``gendiff run``/``score`` arguments."""
    return options_from_args(args).config()


def engine_list(text: str | None) -> list[str]:
    """The engine specs of ``--engines`` (empty when not given); an empty value is an error."""
    if text is None:
        return []
    specs = split_engine_list(text)
    if not specs:
        raise InputError(f"--engines {text!r}: no engine named; e.g. --engines hf-single,hf-left (or leave it out)")
    return specs


def options_from_args(args: argparse.Namespace) -> RunOptions:
    """From ``gendiff``/``gendiff run`` arguments (see cli.add_run_options)."""
    engines = tuple(engine_list(args.engines)) or defaults.DEFAULT_ENGINES
    if args.reference is not None and not args.reference.strip():
        raise InputError("--reference is empty; name one of the engines (or leave it out for the first)")
    return RunOptions(
        model=args.model,
        engines=engines,
        reference=args.reference,
        dtype=args.dtype,
        attn=args.attn,
        device=args.device,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        top_k=args.top_k,
        stop_at_eos=not args.no_stop_at_eos,
        fragile_threshold=args.fragile_threshold,
        decoding=decoding_from_args(args),
    )

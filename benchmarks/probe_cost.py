"""The conformance probe's cost (issue 23): the first check of every engine that declares one
(hf-left, hf-right, packed), cold (empty verdict cache), against a 16-prompt run of the default
engines with the verdicts already known, in one process. Target: under 5% of that run, once per
model (the second time the verdict is read from the cache: milliseconds).

Run: python benchmarks/probe_cost.py [--model DIR | --random-100m] [--device cuda] [--dtype bfloat16]
     [--threads N] [--repeats N]

``--random-100m`` builds a ~100M-parameter random-weight Llama (hidden 768, 12 layers, the demo
tokenizer) from a config into a temporary folder. The model is loaded once before anything is
timed, so neither side pays for the load. Probe and run are timed interleaved, best of
``--repeats`` each. Prints the ratio and the raw seconds.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

TARGET = 0.05


def build_random_100m(root: Path) -> Path:
    """A random Llama of ~99M parameters with the demo tokenizer, saved to ``root / "random-100m"``."""
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from gendiff.demo import demo_model_path

    folder = root / "random-100m"
    config = LlamaConfig(
        vocab_size=2807,
        hidden_size=768,
        intermediate_size=2560,
        num_hidden_layers=12,
        num_attention_heads=12,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=1,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(demo_model_path() / name, folder / name)
    print(f"built {folder.name}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--model", help="model folder (default: the demo model)")
    group.add_argument("--random-100m", action="store_true", help="a ~100M random-weight Llama built here")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", help="the run's dtype (the probe is always float32)")
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per prompt in the run")
    parser.add_argument("--threads", type=int, help="torch threads (on shared cores 1 is steadier)")
    parser.add_argument("--repeats", type=int, default=3, help="best of N, each side (shared machines are noisy)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    scratch = tempfile.TemporaryDirectory()
    os.environ["XDG_CACHE_HOME"] = str(Path(scratch.name) / "cache")  # a cold verdict cache

    from gendiff.defaults import DEFAULT_ENGINES
    from gendiff.demo import demo_prompts_path
    from gendiff.engines.conformance import clear_memo, verify
    from gendiff.engines.loading import load_model
    from gendiff.engines.settings import EngineSpec, GenerationSettings
    from gendiff.io.prompts import PromptBook
    from gendiff.run.config import RunConfig
    from gendiff.run.session import Session

    model = str(build_random_100m(Path(scratch.name))) if args.random_100m else args.model
    prompts = PromptBook.load(demo_prompts_path()).prompts[:16]
    specs = tuple(EngineSpec(name, dtype=args.dtype, device=args.device) for name in DEFAULT_ENGINES)
    settings = GenerationSettings(max_new_tokens=args.tokens, stop_at_eos=False)
    session = Session(RunConfig(model, specs, specs[0].label, settings), prompts)
    checked = [label for label in session.run_order() if session.engines[label].conformance]

    started = time.perf_counter()
    load_model(session.model_dir, "float32", specs[0].attn, args.device)  # the probe's copy
    load_model(session.model_dir, args.dtype, specs[0].attn, args.device)  # the run's
    loading = time.perf_counter() - started

    import shutil

    from gendiff.engines.conformance import cache_dir

    probe = run = float("inf")
    for _ in range(args.repeats):  # interleaved, best of N each: the machine's noise hits both
        clear_memo()
        shutil.rmtree(cache_dir(), ignore_errors=True)
        for label in checked:
            session.engines[label].verdict = None
        started = time.perf_counter()
        session.verify_engines(session.run_order())  # cold: every check probes
        probe = min(probe, time.perf_counter() - started)
        verdicts = {label: session.engines[label].verdict for label in checked}
        started = time.perf_counter()
        session.run()
        run = min(run, time.perf_counter() - started)

    clear_memo()  # as a new process would: only the disk cache is left
    started = time.perf_counter()
    for label in checked:
        verify(session.engines[label])
    cached = time.perf_counter() - started

    ratio = probe / run
    print(
        f"{'PASS' if ratio < TARGET else 'MISS'}  probe / 16-prompt run  {ratio:.3f}  (target < {TARGET})  "
        f"model {Path(session.model_dir).name}, {args.device}, run {args.dtype} x {args.tokens} tokens, "
        f"engines {', '.join(label for label, _ in session.engines.items())}"
    )
    print(
        f"      probe {probe:.2f} s cold ({', '.join(f'{k} {v.status} {v.seconds:.2f} s' for k, v in verdicts.items())}); "
        f"run {run:.2f} s; cached verdicts {cached * 1000:.1f} ms; model loads (not counted) {loading:.2f} s"
    )
    scratch.cleanup()


if __name__ == "__main__":
    main()

"""``gendiff run --stats`` cost: each engine's teacher-forced pass (with the distribution
statistics computed inside it) against the same engine's plain greedy run, measured in one
process, one run. Target (issue 17): at most 1.3x. Run: python benchmarks/stats_cost.py [--model DIR]

Prints one line per engine and the total: the ratio, then the raw seconds (best of 3 each).
"""

from __future__ import annotations

import argparse
import time

TARGET = 1.3
REPEATS = 3  # best of, each way (--repeats)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="model folder (default: the demo model)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=REPEATS, help="best of N, each way")
    args = parser.parse_args()

    from gendiff.demo import demo_prompts_path
    from gendiff.engines import create_engine, parse_engine_spec
    from gendiff.engines.loading import load_tokenizer, resolve_model_path
    from gendiff.engines.settings import GenerationSettings
    from gendiff.io.prompts import PromptBook
    from gendiff.run.statistics import DistributionComparer

    path = str(resolve_model_path(args.model))
    prompts = PromptBook.load(demo_prompts_path()).prompts
    ids = [load_tokenizer(path).encode(p) for p in prompts]
    settings = GenerationSettings(max_new_tokens=args.tokens, top_k=5, stop_at_eos=False)
    reference = None
    total_plain = total_forced = 0.0
    for name in ("hf-single", "hf-left", "hf-right", "packed"):
        engine = create_engine(parse_engine_spec(f"{name}:dtype={args.dtype}"), path)
        engine.load()
        engine.generate(ids[:2], settings)  # warm-up
        plain, traces = [], None
        for _ in range(args.repeats):
            started = time.perf_counter()
            traces = engine.generate(ids, settings)
            plain.append(time.perf_counter() - started)
        if reference is None:
            targets = {row: list(t.token_ids) for row, t in enumerate(traces)}
        forced = []
        for _ in range(args.repeats):
            comparer = DistributionComparer(targets, reference)
            started = time.perf_counter()
            engine.replay(ids, settings, targets, observer=comparer)
            forced.append(time.perf_counter() - started)
        if reference is None:
            reference = comparer
        best_plain, best_forced = min(plain), min(forced)
        total_plain += best_plain
        total_forced += best_forced
        ratio = best_forced / best_plain
        print(
            f"{'PASS' if ratio <= TARGET else 'MISS'}  --stats pass / plain run, {name:<10} {ratio:6.3f}  "
            f"(target {TARGET})  {best_forced:.3f} s vs {best_plain:.3f} s, {len(ids)} prompts x {args.tokens} tokens",
            flush=True,
        )
    ratio = total_forced / total_plain
    print(
        f"{'PASS' if ratio <= TARGET else 'MISS'}  --stats passes / plain run, all four engines {ratio:6.3f}  "
        f"(target {TARGET})  {total_forced:.3f} s vs {total_plain:.3f} s"
    )


if __name__ == "__main__":
    main()

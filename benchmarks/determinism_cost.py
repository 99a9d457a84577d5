"""``gendiff determinism`` cost: each protocol's run (run_protocol: one Session call per trial,
the events, the statistics) against the plain runs it is made of (the same engines loaded once,
``generate`` on each trial's batch), measured in one process. Target: at most 1.3x.
Run: python benchmarks/determinism_cost.py [--trials N --tokens T] [--json-line]

Prints one line per protocol: the ratio, then the raw seconds (best of --repeats each).
"""

from __future__ import annotations

import argparse
import json
import time

TARGET = 1.3
ENGINES = ("hf-single", "hf-right")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="best of N, each way")
    parser.add_argument("--json-line", action="store_true", help="end with one JSON line of the figures")
    args = parser.parse_args()

    from gendiff.demo import demo_model_path, demo_prompts_path
    from gendiff.engines import create_engine, parse_engine_spec
    from gendiff.engines.loading import load_tokenizer
    from gendiff.engines.settings import GenerationSettings
    from gendiff.io.prompts import PromptBook
    from gendiff.records.determinism import PROTOCOLS, layout
    from gendiff.run.determinism import prompt_pool, run_protocol
    from gendiff.run.options import RunOptions

    path = str(demo_model_path())
    prompts = PromptBook.load(demo_prompts_path()).prompts
    tokenizer = load_tokenizer(path)
    settings = GenerationSettings(max_new_tokens=args.tokens, top_k=5, stop_at_eos=False)
    options = RunOptions(engines=ENGINES, max_new_tokens=args.tokens, stop_at_eos=False, batch_size=args.max_batch)
    figures = {}
    for protocol in PROTOCOLS:
        pool = prompt_pool(protocol, prompts[0], prompts)
        ids = [tokenizer.encode(text) for text in pool]
        plan = layout(protocol, args.trials, 0, len(pool) - 1, args.max_batch)
        largest = max(len(t.prompts) for t in plan)
        plain = whole = float("inf")
        for _ in range(args.repeats):
            started = time.perf_counter()
            for name in ENGINES:
                engine = create_engine(parse_engine_spec(f"{name}:batch_size={max(largest, 16)}"), path)
                engine.load()
                for trial in plan:
                    engine.generate([ids[i] for i in trial.prompts], settings)
            plain = min(plain, time.perf_counter() - started)
            started = time.perf_counter()
            run_protocol(options, protocol, prompts[0], prompts, args.trials, 0, args.max_batch)
            whole = min(whole, time.perf_counter() - started)
        figures[protocol] = {"protocol_s": whole, "plain_s": plain, "ratio": whole / plain}
        ratio = whole / plain
        verdict = "PASS" if ratio <= TARGET else "MISS"
        print(
            f"{verdict}  determinism {protocol:<7} / its plain runs  {ratio:6.3f}  (target <= {TARGET})  "
            f"{whole:.2f}s vs {plain:.2f}s, {args.trials} trials x {args.tokens} tokens, {','.join(ENGINES)}",
            flush=True,
        )
    if args.json_line:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()

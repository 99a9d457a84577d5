"""``r`` on one prompt of a 16-prompt call (the demo model, the demo prompts): what the engines
cost when every engine runs the whole call (before: what ``r`` did) against the run with the kept
prompt (after: an engine that isolates prompts, hf-single, runs only that row; the batching
engines still run the whole call). Per engine: EngineStarted -> EngineFinished wall time (the
model loaded before the pairs); the run's wall and process CPU time. Interleaved pairs on a shared
machine: compare within a pair.

    python benchmarks/replay_one.py [--pairs 3] [--tokens 32] [--engines hf-single] [--row 5] [--json-line]
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle torch threads don't spin beside other work

from gendiff.demo import demo_prompts_path  # noqa: E402
from gendiff.io.prompts import PromptBook  # noqa: E402
from gendiff.records.events import EngineFinished, EngineStarted  # noqa: E402
from gendiff.run.options import RunOptions  # noqa: E402
from gendiff.run.session import Session  # noqa: E402


def timed(session: Session, keep: list[int] | None) -> dict[str, float]:
    began: dict[str, float] = {}
    took: dict[str, float] = {}

    def on_event(event: object) -> None:
        if isinstance(event, EngineStarted):
            began[event.engine] = time.perf_counter()
        elif isinstance(event, EngineFinished):
            took[event.engine] = time.perf_counter() - began[event.engine]

    wall, cpu = time.perf_counter(), time.process_time()
    session.run(on_event, keep=keep)
    return {**took, "wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--engines", default="hf-single")
    parser.add_argument("--row", type=int, default=5, help="the kept prompt's row (from 0)")
    parser.add_argument("--json-line", action="store_true")
    args = parser.parse_args()
    prompts = PromptBook.load(demo_prompts_path()).prompts[:16]
    options = RunOptions(engines=tuple(args.engines.split(",")), max_new_tokens=args.tokens, stop_at_eos=False)
    session = Session(options.config(), prompts)
    for label in session.engines:
        session.engines[label].load()  # loads are not what r saves
    timed(session, [args.row])  # warm-up
    pairs = [(timed(session, None), timed(session, [args.row])) for _ in range(args.pairs)]
    with open("/proc/loadavg") as file:
        load = file.read().split()[:3]
    if args.json_line:
        print(json.dumps({"load": load, "prompts": len(prompts), "pairs": pairs}))
        return
    print(f"r on row {args.row + 1} of {len(prompts)} prompts × {args.tokens} tokens, load average {' '.join(load)}")
    for n, (before, after) in enumerate(pairs, 1):
        parts = [f"{k} {before[k]:.2f}s → {after[k]:.2f}s" for k in before]
        print(f"pair {n}: " + " · ".join(parts))


if __name__ == "__main__":
    main()

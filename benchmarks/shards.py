"""Sharded and merged vs one run (issue 25): the demo prompts through the same engines once
unsharded, then as N shards (each its own Session, one after another in this process, as N
machines would run them) merged by gendiff merge's code, and with ``--ray`` as ``--shards N --ray
local`` (Ray tasks of one CPU each). Prints the ratios to the one run and checks that the merged
snapshot holds the same traces and divergences (wall times left out).

    python benchmarks/shards.py [--shards 2] [--tokens 8] [--pairs 3] [--ray] [--json-line]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from gendiff.demo import demo_prompts_path
from gendiff.io.merge import merge_snapshots
from gendiff.io.prompts import PromptBook
from gendiff.run.options import RunOptions
from gendiff.run.pipeline import Diagnoses
from gendiff.run.session import Session
from gendiff.run.shards import run_shard, shard_positions


def records(snapshot) -> list:
    out = []
    for prompt in snapshot.to_dict()["prompts"]:
        for trace in prompt["traces"].values():
            trace.pop("wall_time_s")
        prompt.pop("batches")
        out.append(prompt)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--engines", default="hf-single,hf-left")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--ray", action="store_true", help="also run the shards on a local Ray instance")
    parser.add_argument("--json-line", action="store_true")
    args = parser.parse_args()
    prompts = PromptBook.load(demo_prompts_path()).prompts
    options = RunOptions(engines=tuple(args.engines.split(",")), max_new_tokens=args.tokens, batch_size=1)
    Session(options.config(), prompts[:1]).run()  # warm: imports and first loads are not the one run's cost
    pairs = []
    for _ in range(args.pairs):  # interleaved (one run, sharded) pairs: on a shared machine compare within a pair
        wall, cpu = time.perf_counter(), time.process_time()
        whole = Session(options.config(), prompts).run()
        one = (time.perf_counter() - wall, time.process_time() - cpu)
        wall, cpu = time.perf_counter(), time.process_time()
        shards = [run_shard(options, prompts, i, args.shards).snapshot for i in shard_positions(prompts, args.shards)]
        merged = merge_snapshots([(f"shard {n}", s) for n, s in enumerate(shards, 1)])
        sharded = (time.perf_counter() - wall, time.process_time() - cpu)
        pairs.append({"one_s": one[0], "one_cpu_s": one[1], "sharded_s": sharded[0], "sharded_cpu_s": sharded[1]})
    result = {
        "prompts": len(prompts),
        "shards": args.shards,
        "pairs": pairs,
        "cpu_ratio": statistics.median(p["sharded_cpu_s"] / p["one_cpu_s"] for p in pairs),
        "wall_ratio": statistics.median(p["sharded_s"] / p["one_s"] for p in pairs),
        "same": records(merged) == records(whole),
        "load": os.getloadavg()[0],
    }
    if args.ray:
        import torch

        from gendiff.run.ray_shards import run_on_ray

        torch.set_num_threads(1)  # a Ray task's torch runs on one thread: compare with the same
        started = time.perf_counter()
        single = Session(options.config(), prompts).run()
        result["one_thread_s"] = time.perf_counter() - started
        started = time.perf_counter()
        on_ray = run_on_ray("local", args.shards, options, prompts, Diagnoses()).snapshot
        result["ray_s"] = time.perf_counter() - started
        result["ray_same"] = records(on_ray) == records(single)
    print(json.dumps(result) if args.json_line else json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

"""Snapshot files at evaluation-set size (issue 25): file size, open time, compare time and the
memory a loaded snapshot holds, for the JSON format and the .gdz container, as ratios to a bare
``json.load`` of the JSON file (the machine is shared: only ratios within one run mean anything).

Run: python benchmarks/snapshot_format.py [--prompts 1000 --tokens 256] [--no-json]
(--no-json skips the JSON file, and then gives times against the .gdz's own load)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import synthetic_snapshot  # noqa: E402

from gendiff.io.compare import load_pair  # noqa: E402
from gendiff.io.snapshots import load_snapshot, save_snapshot  # noqa: E402


def timed(action):  # noqa: ANN001, ANN201
    gc.collect()
    started = time.perf_counter()
    result = action()
    return result, time.perf_counter() - started


def figures(snapshot, folder: Path, suffix: str) -> dict[str, float]:  # noqa: ANN001
    """Size, save, load (and the memory the loaded snapshot holds), compare of two copies."""
    a, b = folder / f"a{suffix}", folder / f"b{suffix}"
    _, save_s = timed(lambda: save_snapshot(snapshot, a))
    save_snapshot(snapshot, b)
    _, open_cold_s = timed(lambda: load_snapshot(a))  # the first open pays the imports and the validator's build
    _, load_s = timed(lambda: load_snapshot(a))
    gc.collect()
    tracemalloc.start()
    loaded = load_snapshot(a)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del loaded
    _, compare_s = timed(lambda: load_pair(str(a), str(b)))
    return {
        "mb": os.path.getsize(a) / 1e6,
        "save_s": save_s,
        "open_cold_s": open_cold_s,
        "load_s": load_s,
        "compare_s": compare_s,
        "held_mb": held / 1e6,
    }


def bare_json_load(path: Path) -> float:
    def parse() -> object:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)

    return timed(parse)[1]


def report(name: str, f: dict[str, float], base: float, base_name: str) -> None:
    print(
        f"  {name}: {f['mb']:.1f} MB; save {f['save_s']:.2f}s; load {f['load_s']:.2f}s "
        f"({f['load_s'] / base:.3f}x {base_name}); compare {f['compare_s']:.2f}s "
        f"({f['compare_s'] / f['load_s']:.2f}x its load); memory held by the loaded snapshot "
        f"{f['held_mb']:.0f} MB ({f['held_mb'] / f['mb']:.2f}x the file)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--engines", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--no-json", action="store_true", help="skip the JSON format (slow and big at 1000 x 256)")
    parser.add_argument("--json-line", action="store_true", help="end with the figures as one JSON line")
    args = parser.parse_args()
    snapshot, build_s = timed(lambda: synthetic_snapshot(args.prompts, args.engines, args.tokens, args.top_k))
    print(f"{args.prompts} x {args.engines} x {args.tokens}, top-{args.top_k} (built in {build_s:.1f}s)", flush=True)
    result: dict[str, object] = {"shape": [args.prompts, args.engines, args.tokens, args.top_k]}
    with tempfile.TemporaryDirectory() as folder:
        result["gdz"] = gdz = figures(snapshot, Path(folder), ".gdz")
        if args.no_json:
            report("gdz", gdz, gdz["load_s"], "its own load")
        else:
            del snapshot  # the JSON figures need the memory
            gc.collect()
            snapshot = load_snapshot(Path(folder) / "a.gdz")
            result["json"] = json_f = figures(snapshot, Path(folder), ".json")
            del snapshot
            result["json_load_s"] = base = bare_json_load(Path(folder) / "a.json")
            print(f"  json.load of the JSON file: {base:.2f}s")
            report("json", json_f, base, "json.load")
            report("gdz", gdz, base, "json.load")
            print(f"  gdz / json: size {gdz['mb'] / json_f['mb']:.3f}, load {gdz['load_s'] / json_f['load_s']:.3f}")
    if args.json_line:
        print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Snapshot files at evaluation-set size (issue 25): file size, open time and compare time of
the JSON format, as ratios to a bare ``json.load`` of the same file (the machine is shared: only
ratios within one run mean anything).

Run: python benchmarks/snapshot_format.py [--prompts 100 --tokens 64] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
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


def json_figures(snapshot, folder: Path) -> dict[str, float]:  # noqa: ANN001
    a, b = folder / "a.json", folder / "b.json"
    _, save_s = timed(lambda: save_snapshot(snapshot, a))
    save_snapshot(snapshot, b)

    def bare() -> object:
        with open(a, encoding="utf-8") as handle:
            return json.load(handle)

    _, json_load_s = timed(bare)
    _, load_s = timed(lambda: load_snapshot(a))
    _, compare_s = timed(lambda: load_pair(str(a), str(b)))
    return {
        "mb": os.path.getsize(a) / 1e6,
        "save_s": save_s,
        "json_load_s": json_load_s,
        "load_s": load_s,
        "compare_s": compare_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--engines", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--top-k", type=int, default=5)
    args = parser.parse_args()
    snapshot, build_s = timed(lambda: synthetic_snapshot(args.prompts, args.engines, args.tokens, args.top_k))
    shape = f"{args.prompts} x {args.engines} x {args.tokens}, top-{args.top_k}"
    with tempfile.TemporaryDirectory() as folder:
        f = json_figures(snapshot, Path(folder))
    print(f"{shape} (built in {build_s:.1f}s)")
    print(
        f"  json: {f['mb']:.1f} MB; save {f['save_s']:.2f}s; json.load {f['json_load_s']:.2f}s; "
        f"load_snapshot {f['load_s']:.2f}s ({f['load_s'] / f['json_load_s']:.2f}x json.load); "
        f"compare {f['compare_s']:.2f}s ({f['compare_s'] / f['json_load_s']:.2f}x json.load)"
    )


if __name__ == "__main__":
    main()

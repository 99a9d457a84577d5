"""The app at scale (issue 25): a synthetic 1000 prompts x 5 engines x 256 tokens `.gdz`
(benchmarks/synthetic.py: engines fork at random steps, so n/p has thousands of stops).

- ``open_to_frame``: process start -> the app's first full frame with that file open, against a
  bare ``load_snapshot`` of the same file in another process (what opening costs beyond the load).
- ``frames``: key -> handler -> layout + paint (as Textual's refresh timer does it) for: moving
  down the prompt list, n/p over the divergences, scrolling one token column.

Run alone: python benchmarks/app_scale.py --prompts 1000 --tokens 256
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
_FILES: dict[tuple[int, int], Path] = {}


def big_file(prompts: int, tokens: int) -> Path:
    """The synthetic snapshot as a .gdz, built once per process and shape."""
    key = (prompts, tokens)
    if key not in _FILES:
        from synthetic import synthetic_snapshot

        from gendiff.io.snapshots import save_snapshot

        path = Path(tempfile.mkdtemp()) / f"big-{prompts}x5x{tokens}.gdz"
        save_snapshot(synthetic_snapshot(prompts, 5, tokens, 5), path)
        _FILES[key] = path
    return _FILES[key]


OPEN_CODE = r"""
import asyncio, json, os, sys, time
t0 = time.perf_counter()
from gendiff.io.documents import open_document
from gendiff.tui.app import GendiffApp, LaunchOptions
def rss():  # resident set size now, bytes
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
async def main():
    before = rss()  # the app's code imported, no document yet
    app = GendiffApp(LaunchOptions(document=open_document(sys.argv[1]), preload=False))
    async with app.run_test(size=(160, 50)) as pilot:
        heading = app.main.query_one("#prompt-text")
        while not str(heading.content).startswith("prompt 1:"):
            await asyncio.sleep(0.001)
        app.screen._on_timer_update()  # the full frame, painted
        frame = time.perf_counter() - t0
        for key in ["down"] * 20 + ["n"] * 20:  # prompts and divergences visited, as a user would
            await pilot.press(key)
        await pilot.pause(0.2)
        held = rss() - before
        app.exit()
    return frame, held
frame, held = asyncio.run(main())
print(json.dumps({"frame": frame, "held": held, "torch": "torch" in sys.modules}))
"""

LOAD_CODE = r"""
import json, sys, time
t0 = time.perf_counter()
from gendiff.io.snapshots import load_snapshot
load_snapshot(sys.argv[1])
print(json.dumps({"load": time.perf_counter() - t0}))
"""


def _child(code: str, path: Path) -> dict:
    env = {**os.environ, "GENDIFF_CONFIG_DIR": tempfile.mkdtemp()}
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def open_to_frame(path: Path, repeats: int = 2) -> dict[str, float]:
    """Best of ``repeats``: process start -> first full frame, and -> the snapshot loaded; ``held``:
    the app process's resident memory after 20 prompts and 20 divergences were visited, less
    what it held before the document was opened (Textual's own set-up counts against the file)."""
    opened = [_child(OPEN_CODE, path) for _ in range(repeats)]
    load = min(_child(LOAD_CODE, path)["load"] for _ in range(repeats))
    return {"frame": min(o["frame"] for o in opened), "load": load, "held": max(o["held"] for o in opened)}


async def _until(condition, seconds: float, what: str) -> None:  # noqa: ANN001
    deadline = time.perf_counter() + seconds
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"the app did not get to {what} within {seconds:.0f}s")
        await asyncio.sleep(0.001)


def frames(path: Path, presses: int = 40) -> dict[str, list[float]]:
    """Per-frame times (s) for prompt changes (down), n/p jumps and column scrolls."""
    os.environ.setdefault("GENDIFF_CONFIG_DIR", tempfile.mkdtemp())
    from textual import events

    from gendiff.io.documents import open_document
    from gendiff.tui.app import GendiffApp, LaunchOptions

    async def main() -> dict[str, list[float]]:
        app = GendiffApp(LaunchOptions(document=open_document(str(path)), preload=False))
        out: dict[str, list[float]] = {"down": [], "n/p": [], "scroll": []}
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.pause(0.5)
            bench = app.main.workbench
            heading = app.main.query_one("#prompt-text")
            for _ in range(presses):
                wanted = f"prompt {bench.current_number + 1}:"
                t = time.perf_counter()
                app.post_message(events.Key("down", None))
                await _until(lambda wanted=wanted: str(heading.content).startswith(wanted), 10, wanted)
                app.screen._on_timer_update()
                out["down"].append(time.perf_counter() - t)
                await pilot.pause(0.02)
            for i in range(presses):
                before = (bench.current_number, bench.selected_engine)
                t = time.perf_counter()
                app.post_message(events.Key("n" if i % 4 != 3 else "p", None))
                await _until(lambda before=before: (bench.current_number, bench.selected_engine) != before, 10, "n/p")
                app.screen._on_timer_update()
                out["n/p"].append(time.perf_counter() - t)
                await pilot.pause(0.02)
            column = bench.columns.in_order()[0]
            for i in range(presses):
                t = time.perf_counter()
                column.scroll_to(y=(i % 20) * 3, animate=False, immediate=True)
                app.screen._on_timer_update()
                out["scroll"].append(time.perf_counter() - t)
                await pilot.pause(0.02)
        return out

    return asyncio.run(main())


def frames_apart(path: Path, presses: int = 40) -> dict[str, list[float]]:
    """:func:`frames` in a process of its own, as a user's app runs (the process that built the
    synthetic snapshot holds millions of its objects, which slows every collection and cache)."""
    command = [sys.executable, __file__, "--file", str(path), "--frames-only", "--presses", str(presses), "--json"]
    env = {**os.environ, "GENDIFF_CONFIG_DIR": tempfile.mkdtemp()}
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def summary(times: list[float]) -> str:
    return f"median {statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms over {len(times)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--file", help="a .gdz made before (skips building one)")
    parser.add_argument("--frames-only", action="store_true", help="skip the open-to-frame measure")
    parser.add_argument("--presses", type=int, default=40, help="key presses per kind of key")
    parser.add_argument("--json", action="store_true", help="print the frame times as one JSON line")
    args = parser.parse_args()
    if args.json:
        print(json.dumps(frames(Path(args.file), args.presses)))
        return
    t = time.perf_counter()
    path = Path(args.file) if args.file else big_file(args.prompts, args.tokens)
    print(f"built and saved {path.name} ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t:.1f}s")
    if not args.frames_only:
        opened = open_to_frame(path)
        print(
            f"open -> first full frame {opened['frame']:.2f}s; load_snapshot alone {opened['load']:.2f}s; app memory held {opened['held'] / 1e6:.0f} MB ({opened['held'] / path.stat().st_size:.2f}x the file)"
        )
    for name, times in frames(path, args.presses).items():
        print(f"{name}: {summary(times)}")


if __name__ == "__main__":
    main()

"""gendiff's performance targets, as ratios measured in one run (these machines are noisy:
compare within a run, never against an absolute time). Run: python benchmarks/run_benchmarks.py

Each line prints the ratio, the target and the raw numbers it came from. ``--quick`` runs every
part on small inputs (what CI runs: it checks that the benchmarks run, not the figures; the exit
status is 1 when a part crashed, whatever PASS/MISS say). ``--only NAME`` runs one part.
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
import traceback
from pathlib import Path

PY = sys.executable
HERE = Path(__file__).parent
QUICK = False  # --quick: small inputs


def line(name: str, ratio: float, target: str, ok: bool, detail: str) -> None:
    print(f"{'PASS' if ok else 'MISS'}  {name:<58} {ratio:7.3f}  (target {target})  {detail}", flush=True)


def subprocess_json(code: str) -> dict:
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def engines_timing() -> None:
    """hf-left vs hf-single, hf-right/packed vs hf-left: 16 prompts x 48 tokens, float32."""
    prompts, tokens, repeats = (4, 8, 1) if QUICK else (16, 48, 3)
    code = r"""
import json, time
from gendiff.engines import create_engine, engine_names, parse_engine_spec
from gendiff.engines.settings import GenerationSettings
from gendiff.demo import demo_model_path
from gendiff.engines.loading import load_tokenizer
from gendiff.io.prompts import PromptBook
from gendiff.demo import demo_prompts_path
path = str(demo_model_path())
ids = [load_tokenizer(path).encode(p) for p in PromptBook.load(demo_prompts_path()).prompts]
s = GenerationSettings(max_new_tokens=TOKENS, top_k=5, stop_at_eos=False)
out = {}
ids = ids[:PROMPTS]
for name in ["hf-single", "hf-left", "hf-right", "packed"]:
    e = create_engine(parse_engine_spec(name, {}, engine_names()), path); e.load()
    e.generate(ids[:2], GenerationSettings(max_new_tokens=2))  # warm-up
    best = float("inf")
    for _ in range(REPEATS):
        t = time.perf_counter(); e.generate(ids, s); best = min(best, time.perf_counter() - t)
    out[name] = best
print(json.dumps(out))
"""
    t = subprocess_json(
        code.replace("TOKENS", str(tokens)).replace("REPEATS", str(repeats)).replace("PROMPTS", str(prompts))
    )
    detail = ", ".join(f"{k} {v:.2f}s" for k, v in t.items())
    r = t["hf-left"] / t["hf-single"]
    line(f"hf-left time / hf-single time ({prompts} prompts x {tokens} tokens)", r, "<= 0.33", r <= 0.33, detail)
    for name in ("hf-right", "packed"):
        r = t[name] / t["hf-left"]
        line(f"{name} time / hf-left time", r, "<= 2.0", r <= 2.0, "")


def run_overhead() -> None:
    """gendiff run wall time (model load excluded) / the engines' own generate time."""
    code = r"""
import json, time
from gendiff.cli.args import run_parser
from gendiff.cli.run_options import build_config
from gendiff.io.prompts import PromptBook
from gendiff.demo import demo_prompts_path
from gendiff.records.events import EngineFinished, EngineLoaded
from gendiff.run.session import Session
from gendiff.cli.summary import summary_table
from gendiff.io.snapshots import save_snapshot
args = run_parser().parse_args(["--quiet", "--max-new-tokens", "TOKENS"])
config = build_config(args)
book = PromptBook.load(demo_prompts_path())
session = Session(config, book.prompts)
for e in session.engines.values(): e.load()        # model load reported separately
gen = []; loads = []
def on_event(ev):
    if isinstance(ev, EngineFinished): gen.append(ev.seconds)
    if isinstance(ev, EngineLoaded): loads.append(ev.seconds)
t = time.perf_counter()
snap = session.run(on_event)
text = summary_table(snap)
import tempfile, os
save_snapshot(snap, os.path.join(tempfile.mkdtemp(), "s.gdz"))
wall = time.perf_counter() - t
print(json.dumps({"wall": wall, "generate": sum(gen), "load": sum(loads)}))
"""
    t = subprocess_json(code.replace("TOKENS", "8" if QUICK else "32"))
    r = t["wall"] / t["generate"]
    line(
        "gendiff run wall / engines' generate time",
        r,
        "<= 1.05",
        r <= 1.05,
        f"wall {t['wall']:.2f}s, generate {t['generate']:.2f}s, (load, cached) {t['load']:.3f}s",
    )


def memory() -> None:
    code = r"""
import json, resource, sys
from gendiff.engines import create_engine, engine_names, parse_engine_spec
from gendiff.engines.settings import GenerationSettings
from gendiff.demo import demo_model_path
from gendiff.engines.loading import load_tokenizer
path = str(demo_model_path())
ids = [load_tokenizer(path).encode("Once upon a time, there was a")] * 4
for name in sys.argv[1].split(","):
    e = create_engine(parse_engine_spec(name, {}, engine_names()), path); e.load()
    e.generate(ids, GenerationSettings(max_new_tokens=16))
print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
    rss = {}
    for engines in ("hf-single", "hf-single,hf-left,hf-right,packed"):
        out = subprocess.run([PY, "-c", code, engines], capture_output=True, text=True, check=True)
        rss[engines] = json.loads(out.stdout.strip().splitlines()[-1])["rss_mb"]
    a, b = rss["hf-single"], rss["hf-single,hf-left,hf-right,packed"]
    line("peak RSS, 4 HF engines / hf-single alone", b / a, "<= 1.2", b / a <= 1.2, f"{b:.0f} MB vs {a:.0f} MB")


def first_frame() -> None:
    """Time to the first painted frame vs `python -c 'import textual'`; torch must not be loaded yet."""
    textual = []
    repeats = 1 if QUICK else 3
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([PY, "-c", "import textual.app"], check=True)
        textual.append(time.perf_counter() - t)
    code = r"""
import json, os, sys, time, asyncio
t0 = time.perf_counter()
from gendiff.tui.app import GendiffApp, LaunchOptions
from gendiff.io.snapshots import save_snapshot
async def main():
    app = GendiffApp(LaunchOptions())
    result = {}
    async with app.run_test(size=(120, 40)) as pilot:
        result["frame"] = time.perf_counter() - t0
        result["torch_loaded"] = "torch" in sys.modules
        app.exit()
    return result
r = asyncio.run(main())
print(json.dumps(r))
"""
    frames = []
    torch_loaded = False
    for _ in range(repeats):
        t = time.perf_counter()
        r = subprocess_json(code)
        frames.append(time.perf_counter() - t)
        torch_loaded |= r["torch_loaded"]
    ratio = min(frames) / min(textual)
    line(
        "start to first frame / import textual",
        ratio,
        "<= 3",
        ratio <= 3 and not torch_loaded,
        f"{min(frames):.2f}s vs {min(textual):.2f}s; torch loaded at first frame: {torch_loaded}",
    )


async def _until(condition, seconds: float, what: str) -> None:  # noqa: ANN001
    """Wait for ``condition()``; a clear error (not a hang) when the app never gets there."""
    deadline = time.perf_counter() + seconds
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"the app did not get to {what} within {seconds:.0f}s")
        await asyncio.sleep(0.001)


def key_latency() -> None:
    """Median time from a key press to the screen update while all engines run (Pilot)."""
    os.environ["GENDIFF_CONFIG_DIR"] = tempfile.mkdtemp()
    from textual import events

    from gendiff.demo import demo_prompts_path
    from gendiff.io.documents import open_document
    from gendiff.io.prompts import PromptBook
    from gendiff.run.options import RunOptions
    from gendiff.tui.app import GendiffApp, LaunchOptions

    tokens, presses, count = (24, 4, 40) if QUICK else (256, 30, 1000)
    # a prompt list of ``count`` prompts (the demo prompts, numbered), so the list is as long as issue 25's
    demo = PromptBook.load(demo_prompts_path()).prompts
    prompts = Path(tempfile.mkdtemp()) / "prompts.txt"
    prompts.write_text("".join(f"{demo[i % len(demo)]} ({i + 1})\n" for i in range(count)))

    async def main() -> list[float]:
        app = GendiffApp(
            LaunchOptions(
                run=RunOptions(max_new_tokens=tokens, stop_at_eos=False),
                document=open_document(str(prompts)),
                preload=False,
            )
        )
        times = []
        async with app.run_test(size=(120, 40)) as pilot:
            screen = app.main
            await pilot.press("R")
            await _until(lambda: screen.ws.running, 60, "a running state after R")
            await asyncio.sleep(0.5)  # the engines load, then stream
            for i in range(presses):
                if not screen.ws.running:
                    break
                # pilot.press waits for the message queue to drain, which never happens while
                # tokens stream in; measure key -> handler done -> next frame instead
                target = 1 if i % 2 == 0 else 0
                t = time.perf_counter()
                app.post_message(events.Key("down" if target else "up", None))
                await _until(
                    lambda target=target: (screen.workbench.current_number - 1) == target,
                    10,
                    f"prompt {target + 1} after a key",
                )
                app.screen._on_timer_update()  # layout + paint the frame now, as the refresh timer would
                times.append(time.perf_counter() - t)
                await asyncio.sleep(0.05)
            await pilot.press("escape")
            await _until(lambda: not screen.ws.running, 60, "the end of the run after escape")
        return times

    times = asyncio.run(main())
    if not times:
        raise RuntimeError("the run ended before a key could be measured")
    worst = max(times) * 1000
    line(
        f"key -> frame while engines run, {count} prompts x {tokens} tokens (max ms)",
        worst,
        "<= 50",
        worst <= 50,
        f"{len(times)} presses, median {statistics.median(times) * 1000:.1f} ms",
    )


def big_snapshot(prompts: int, tokens: int = 256):  # noqa: ANN201
    """``prompts`` x 5 engines x ``tokens`` steps, every engine the same (divergences computed)."""
    from gendiff.records.divergence import compare
    from gendiff.records.snapshot import Batch, PromptResult, Snapshot
    from gendiff.records.trace import TokenStep, TopToken, Trace

    engines = ["hf-single", "hf-left", "hf-right", "packed", "vllm"]
    top = tuple(TopToken(i, f" w{i}", -0.1 * i, None) for i in range(5))
    steps = tuple(TokenStep(i % 5, f" w{i % 5}", -0.1 * (i % 5), top) for i in range(tokens))
    results = []
    for p in range(prompts):
        traces = {e: Trace(e, p, (1, 2), steps, "length") for e in engines}
        result = PromptResult(f"prompt {p}", [1, 2], traces, id=p, batches={e: 0 for e in engines})
        result.divergences = [compare(traces["hf-single"], traces[e]) for e in engines[1:]]
        results.append(result)
    return Snapshot(
        model={"name": "m", "path": "/m"},
        decoding={"max_new_tokens": tokens, "top_k": 5},
        reference="hf-single",
        engines=[{"label": e, "name": e, "settings": {}} for e in engines],
        prompts=results,
        environment={"python": "", "torch": "", "transformers": "", "device": "cpu"},
        batches=[Batch(0, tuple(engines), tuple(range(prompts)), tuple(r.text for r in results), ((1, 2),) * prompts)],
    )


def render_big() -> None:
    """200 prompts x 5 engines x 256 tokens, opened from a .gdz: time per frame while moving through the prompts."""
    from gendiff.io.documents import open_document
    from gendiff.io.snapshots import save_snapshot
    from gendiff.tui.app import GendiffApp, LaunchOptions

    prompts, changes_n, scrolls_n = (12, 6, 6) if QUICK else (200, 60, 60)
    path = save_snapshot(big_snapshot(prompts), os.path.join(tempfile.mkdtemp(), "big.gdz"))

    async def main() -> tuple[list[float], list[float]]:
        from textual import events

        app = GendiffApp(LaunchOptions(document=open_document(str(path)), preload=False))
        changes, scrolls = [], []
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.pause(0.5)
            screen = app.main
            heading = screen.query_one("#prompt-text")
            # key -> handler -> columns updated -> layout + frame composed (as the refresh timer
            # would do it)
            for _ in range(changes_n):
                wanted = f"prompt {(screen.workbench.current_number - 1) + 2}:"
                t = time.perf_counter()
                app.post_message(events.Key("down", None))
                await _until(lambda wanted=wanted: str(heading.content).startswith(wanted), 10, wanted)
                app.screen._on_timer_update()
                changes.append(time.perf_counter() - t)
                await pilot.pause(0.02)
            # scrolling the token columns a few lines at a time, down then up
            scroll = screen.workbench.columns.in_order()[0]  # one engine's column (each scrolls its tokens)
            for i in range(scrolls_n):
                y = (i % 30) * 3 if (i // 30) % 2 == 0 else (30 - i % 30) * 3
                t = time.perf_counter()
                scroll.scroll_to(y=y, animate=False, immediate=True)
                app.screen._on_timer_update()
                scrolls.append(time.perf_counter() - t)
                await pilot.pause(0.02)
        return changes, scrolls

    changes, scrolls = asyncio.run(main())
    if os.environ.get("GENDIFF_BENCH_DEBUG"):
        print(
            "slowest prompt changes (index, ms):",
            sorted(((round(t * 1000), i) for i, t in enumerate(changes)), reverse=True)[:6],
        )
    for name, times in (("prompt change", changes), ("scroll step", scrolls)):
        median = statistics.median(times) * 1000
        worst = max(times) * 1000
        line(
            f"render {prompts}x5x256: {name}, median ms per frame",
            median,
            "<= 50, max <= 100",
            median <= 50 and worst <= 100,
            f"max {worst:.0f} ms over {len(times)} frames",
        )


def app_scale() -> None:
    """1000 x 5 x 256 (synthetic, engines forking at random steps) as a .gdz: open -> first full
    frame against load_snapshot alone, and key -> frame for down, n/p and scrolling (benchmarks/app_scale.py)."""
    import app_scale as scale

    prompts, tokens, presses = (20, 32, 6) if QUICK else (1000, 256, 40)
    path = scale.big_file(prompts, tokens)
    opened = scale.open_to_frame(path, 1 if QUICK else 2)
    shape = f"{prompts}x5x{tokens}"
    line(
        f"{shape} .gdz open -> first full frame / load_snapshot",
        opened["frame"] / opened["load"],
        "frame <= 3 s on a quiet 2-core machine",
        opened["frame"] <= 3,
        f"{opened['frame']:.2f}s vs {opened['load']:.2f}s",
    )
    size = path.stat().st_size
    bare = scale.open_to_frame(scale.big_file(2, 4), 1)["held"]  # the app's own set-up, on a 2-prompt file
    line(
        f"{shape}: app memory held for the file / .gdz size",
        (opened["held"] - bare) / size,
        "<= 3",
        opened["held"] - bare <= 3 * size,
        f"{opened['held'] / 1e6:.0f} MB held, less {bare / 1e6:.0f} MB with a 2-prompt file, vs {size / 1e6:.1f} MB; "
        "after 20 prompts and 20 divergences visited",
    )
    for name, times in scale.frames_apart(path, presses).items():
        worst = max(times) * 1000
        line(
            f"{shape}: {name}, key -> frame (max ms)",
            worst,
            "<= 50",
            worst <= 50,
            f"median {statistics.median(times) * 1000:.1f} ms over {len(times)}",
        )


def help_cpu() -> None:
    """CPU time (user + sys, best of N) of `gendiff --help` against a bare `python -c pass`."""
    import resource

    def cpu(command: list[str]) -> float:
        best = float("inf")
        for _ in range(3 if QUICK else 10):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            best = min(best, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        return best

    bare = cpu([PY, "-c", "pass"])
    help_time = cpu([PY, "-m", "gendiff.cli.main", "--help"])
    r = help_time / bare
    line(
        "gendiff --help CPU time / python -c pass",
        r,
        "<= 2",
        r <= 2,
        f"{help_time * 1000:.0f} ms vs {bare * 1000:.0f} ms",
    )


def snapshot_format() -> None:
    """The .gdz format at 1000 x 5 x 256 with top-5 (issue 25): size, open time against a bare
    json.load of the same snapshot as JSON, compare time against the open time, memory held."""
    shape = ["--prompts", "20", "--tokens", "32"] if QUICK else ["--prompts", "1000", "--tokens", "256"]
    out = subprocess.run(
        [PY, str(HERE / "snapshot_format.py"), *shape, "--json-line"], capture_output=True, text=True, check=True
    )
    f = json.loads(out.stdout.strip().splitlines()[-1])
    gdz, plain, base = f["gdz"], f["json"], f["json_load_s"]
    size = "x".join(map(str, f["shape"][:3]))
    line(f"{size} .gdz file size (MB)", gdz["mb"], "<= 100", gdz["mb"] <= 100, f"the JSON: {plain['mb']:.0f} MB")
    r = gdz["load_s"] / base
    line(
        f"{size} .gdz open / json.load of the JSON",
        r,
        "open <= 3 s on a quiet 2-core machine",
        gdz["load_s"] <= 3,
        f"{gdz['load_s']:.2f}s vs {base:.2f}s; gendiff's JSON load {plain['load_s']:.2f}s",
    )
    r = gdz["compare_s"] / gdz["load_s"]
    line(
        f"{size} compare of two .gdz / open of one",
        r,
        "<= 2",
        r <= 2,
        f"{gdz['compare_s']:.2f}s vs {gdz['load_s']:.2f}s (JSON: {plain['compare_s']:.2f}s)",
    )
    r = gdz["held_mb"] / gdz["mb"]
    line(
        f"{size} memory held by an opened .gdz / its size",
        r,
        "<= 3",
        r <= 3,
        f"{gdz['held_mb']:.0f} MB (JSON: {plain['held_mb']:.0f} MB)",
    )


def overlap() -> None:
    """A served engine (llama-server -t 1, benchmarks/overlap.py) overlapping the in-process engines:
    the overlapped run's wall time / the longest of (the in-process engines' sum, the served one alone)."""
    shape = ["--prompts", "4", "--tokens", "8", "--pairs", "1"] if QUICK else ["--pairs", "3"]
    out = subprocess.run(
        [PY, str(HERE / "overlap.py"), *shape, "--json-line"], capture_output=True, text=True, check=True
    )
    f = json.loads(out.stdout.strip().splitlines()[-1])
    if "skipped" in f:
        print(f"SKIP  overlap: {f['skipped']}", flush=True)
        return
    for name, result in f["sets"].items():
        pairs = result["pairs"]
        detail = "; ".join(
            f"{p['overlapped']:.2f}s vs sequential {p['sequential']:.2f}s, in-process {p['local_sum']:.2f}s, "
            f"served {max(p['remote'].values()):.2f}s"
            for p in pairs
        )
        sequential = statistics.median(p["sequential_ratio"] for p in pairs)
        line(
            f"overlap ({name} + llama-server -t 1): wall / longest part",
            result["ratio"],
            "<= 1.1",
            result["ratio"] <= 1.1,
            f"median of {len(pairs)} pair(s), sequential {sequential:.3f}; {detail}; load {f['load']:.1f}, "
            f"torch threads {f['torch_threads']}, OMP_WAIT_POLICY={f['omp_wait_policy']}",
        )


def shards() -> None:
    """Sharded-and-merged vs one run (benchmarks/shards.py): N shards one after another + the merge,
    and (not --quick, Ray installed) --shards N --ray local, each over the one run's wall time."""
    import importlib.util

    shape = ["--tokens", "4", "--pairs", "1"] if QUICK else ["--tokens", "16", "--pairs", "3"]
    with_ray = not QUICK and importlib.util.find_spec("ray") is not None
    out = subprocess.run(
        [PY, str(HERE / "shards.py"), *shape, *(["--ray"] if with_ray else []), "--json-line"],
        capture_output=True,
        text=True,
        check=True,
    )
    f = json.loads(out.stdout.strip().splitlines()[-1])
    detail = "; ".join(f"{p['sharded_cpu_s']:.2f}s vs {p['one_cpu_s']:.2f}s CPU" for p in f["pairs"])
    line(
        f"{f['shards']} shards one after another + merge / one run (CPU time)",
        f["cpu_ratio"],
        "same records",
        f["same"],
        f"median of {len(f['pairs'])} pair(s): {detail}; wall ratio {f['wall_ratio']:.3f}; {f['prompts']} prompts; "
        f"records equal: {f['same']}; load {f['load']:.1f}",
    )
    if "ray_s" in f:
        r = f["ray_s"] / f["one_thread_s"]
        line(
            f"--shards {f['shards']} --ray local / one run (one torch thread)",
            r,
            "same records",
            f["ray_same"],
            f"{f['ray_s']:.2f}s (Ray start included) vs {f['one_thread_s']:.2f}s; records equal: {f['ray_same']}",
        )


def determinism_cost() -> None:
    """Each ``gendiff determinism`` protocol / the plain generate calls it is made of (benchmarks/determinism_cost.py)."""
    shape = ["--trials", "3", "--tokens", "4", "--repeats", "1"] if QUICK else []
    out = subprocess.run(
        [PY, str(HERE / "determinism_cost.py"), *shape, "--json-line"], capture_output=True, text=True, check=True
    )
    for text in out.stdout.strip().splitlines()[:-1]:
        print(text, flush=True)


# (name, function, needs the app): the app's parts depend on the TUI's internals (app.main,
# #prompt-text, the workbench's columns and current_number, ws.running), which change with it
PARTS = [
    ("engines", engines_timing, False),
    ("run-overhead", run_overhead, False),
    ("memory", memory, False),
    ("snapshot-format", snapshot_format, False),
    ("overlap", overlap, False),
    ("shards", shards, False),
    ("determinism", determinism_cost, False),
    ("first-frame", first_frame, True),
    ("key-latency", key_latency, True),
    ("render-big", render_big, True),
    ("app-scale", app_scale, True),
    ("help-cpu", help_cpu, False),
]


def main() -> int:
    global QUICK
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small inputs: checks that every part runs")
    parser.add_argument("--only", choices=[name for name, _, _ in PARTS], action="append", help="run only this part")
    args = parser.parse_args()
    QUICK = args.quick
    os.environ.setdefault("GENDIFF_CONFIG_DIR", tempfile.mkdtemp())
    crashed = []
    for name, bench, app in PARTS:
        if args.only and name not in args.only:
            continue
        try:
            bench()
        except Exception as exc:  # noqa: BLE001 — one part's crash is reported, the others still run
            detail = (
                exc.stderr.strip().splitlines()[-1]
                if isinstance(exc, subprocess.CalledProcessError) and exc.stderr
                else f"{type(exc).__name__}: {exc}"
            )
            where = " (a part that drives the app: it follows the TUI's internals)" if app else ""
            print(f"FAIL  {name}{where}: {detail}", flush=True)
            if os.environ.get("GENDIFF_BENCH_DEBUG"):
                traceback.print_exc()
            crashed.append(name)
    if crashed:
        print(f"{len(crashed)} part(s) crashed: {', '.join(crashed)}", flush=True)
    return 1 if crashed else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Remote engines overlap local ones (issue 25): a real llama.cpp server limited to one thread
(``llama-server -t 1``, the demo model's float32 GGUF, built by scripts/build_llamacpp.py) beside
the in-process engines, the same Session run sequentially (``overlap=False``) and overlapped.

The bound is the longest of (the in-process engines' sum, each remote engine alone), both taken
from the sequential run of the same pair (each engine's EngineStarted -> EngineFinished, load
included: the models are loaded before, so that is the engines' checks and generation); the
ratio is the overlapped run's wall time over it (target <= 1.1). Runs are interleaved pairs
(sequential, overlapped) on a shared machine: compare within a pair.

The server has one thread and torch gets the cores it leaves (``--torch-threads``, default
cores - 1): on two cores torch's default two threads and the server's one would share two cores,
and the overlapped run would measure that contention (each engine slower than it was alone), not
whether gendiff runs them at once; ``--torch-threads 2`` measures that case.

OMP_WAIT_POLICY=PASSIVE is set (unless given): with torch's two OpenMP threads spinning while
another process holds one of two cores, the in-process engines' times varied 20x between pairs
(0.9-21 s for the same run); passive waiting changes no number, only how idle threads wait.

    python benchmarks/overlap.py [--prompts 16] [--tokens 48] [--pairs 3] [--json-line]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# (name, in-process engines): the demo engines, and two batched ones whose sum is near the server's time
SETS = [
    ("demo engines", ["hf-single", "hf-left", "hf-right", "packed"]),
    ("hf-left + packed", ["hf-left", "packed"]),
]
SERVER_FLAGS = ["-t", "1", "-tb", "1", "-np", "8", "-c", "4096", "-ctk", "f32", "-ctv", "f32", "-fa", "off"]


def built() -> dict[str, str] | None:
    """llama-server and the f32 GGUF, if scripts/build_llamacpp.py built them (None: not built)."""
    where = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_llamacpp.py"), "--where"], capture_output=True, text=True
    )
    if where.returncode != 0:
        return None
    paths = json.loads(where.stdout)
    return paths if all(Path(paths[k]).exists() for k in ("llama_server", "gguf_f32")) else None


class Server:
    """llama-server on a free port of 127.0.0.1, in its own process group."""

    def __init__(self, paths: dict[str, str], log: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        command = [paths["llama_server"], "-m", paths["gguf_f32"], "--host", "127.0.0.1", "--port", str(self.port)]
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [*command, "--alias", "demo", *SERVER_FLAGS],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def wait_ready(self, seconds: float = 60) -> None:
        import httpx

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama-server exited ({self.process.returncode}); see {self.log.name}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"llama-server not ready after {seconds} s; see {self.log.name}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        self.log.close()


def timed_run(session, overlap: bool) -> dict:  # noqa: ANN001
    """One Session.run: its wall time, each engine's time (EngineStarted -> its end), and how
    often consecutive token events came from different engines."""
    from gendiff.records.events import EngineFailed, EngineFinished, EngineStarted, StepGenerated

    began: dict[str, float] = {}
    took: dict[str, float] = {}
    streams: list[str] = []

    def on_event(event: object) -> None:
        now = time.perf_counter()
        if isinstance(event, EngineStarted):
            began[event.engine] = now
        elif isinstance(event, (EngineFinished, EngineFailed)):
            took[event.engine] = now - began[event.engine]
        elif isinstance(event, StepGenerated):
            streams.append(event.engine)

    started = time.perf_counter()
    snapshot = session.run(on_event, overlap=overlap)
    wall = time.perf_counter() - started
    failed = [e["label"] for e in snapshot.engines if e.get("error")]
    if failed:
        raise RuntimeError(f"engines failed: {failed}")
    switches = sum(a != b for a, b in zip(streams, streams[1:]))
    tokens = {label: [list(p.traces[label].token_ids) for p in snapshot.prompts] for label in snapshot.engine_labels}
    divergences = [(d.prompt_index, d.engine, d.reason, d.step) for d in snapshot.divergences()]
    return {"wall": wall, "engines": took, "switches": switches, "tokens": tokens, "divergences": divergences}


def measure(url: str, local: list[str], prompts: int, tokens: int, pairs: int) -> dict:
    from gendiff.demo import demo_prompts_path
    from gendiff.engines import engine_names, parse_engine_spec
    from gendiff.engines.settings import GenerationSettings
    from gendiff.io.prompts import PromptBook
    from gendiff.run.config import RunConfig
    from gendiff.run.session import Session

    served = f"openai:url={url},model=demo,concurrency=1"
    specs = tuple(parse_engine_spec(n, {"dtype": "float32"}, engine_names()) for n in [*local, served])
    settings = GenerationSettings(max_new_tokens=tokens, top_k=5, stop_at_eos=False)
    texts = (PromptBook.load(demo_prompts_path()).prompts * 8)[:prompts]
    session = Session(RunConfig(None, specs, local[0], settings), texts)
    remote = [label for label, engine in session.engines.items() if engine.lane() is not None]
    for engine in session.engines.values():
        engine.load()
    session.run(overlap=False)  # warm-up: conformance verdicts cached, first requests made
    results = []
    for _ in range(pairs):
        sequential, overlapped = timed_run(session, False), timed_run(session, True)
        if (sequential["tokens"], sequential["divergences"]) != (overlapped["tokens"], overlapped["divergences"]):
            raise RuntimeError("the overlapped run's tokens or divergences differ from the sequential run's")
        local_sum = sum(t for label, t in sequential["engines"].items() if label not in remote)
        bound = max(local_sum, *(sequential["engines"][label] for label in remote))
        results.append(
            {
                "sequential": sequential["wall"],
                "overlapped": overlapped["wall"],
                "local_sum": local_sum,
                "remote": {label: sequential["engines"][label] for label in remote},
                "bound": bound,
                "ratio": overlapped["wall"] / bound,
                "sequential_ratio": sequential["wall"] / bound,
                "switches": overlapped["switches"],
            }
        )
    return {"pairs": results, "ratio": statistics.median(r["ratio"] for r in results)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--set", choices=[name for name, _ in SETS], action="append", help="only this set of engines")
    parser.add_argument("--json-line", action="store_true", help="print one JSON line (run_benchmarks.py reads it)")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=max(1, (os.cpu_count() or 2) - 1),
        help="torch's threads for the in-process engines (default: the cores the server's one thread leaves)",
    )
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see the docstring)
    import torch

    torch.set_num_threads(args.torch_threads)
    paths = built()
    if paths is None:
        print(json.dumps({"skipped": "llama-server not built: run python scripts/build_llamacpp.py"}))
        return 0
    import tempfile

    server = Server(paths, Path(tempfile.mkdtemp()) / "llama-server.log")
    try:
        server.wait_ready()
        out = {
            "shape": [args.prompts, args.tokens],
            "load": os.getloadavg()[0],
            "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
            "torch_threads": args.torch_threads,
            "sets": {
                name: measure(server.url, local, args.prompts, args.tokens, args.pairs)
                for name, local in SETS
                if not args.set or name in args.set
            },
        }
    finally:
        server.stop()
    if args.json_line:
        print(json.dumps(out))
        return 0
    for name, result in out["sets"].items():
        for pair in result["pairs"]:
            print(
                f"{name}: overlapped {pair['overlapped']:.2f}s, sequential {pair['sequential']:.2f}s, "
                f"in-process sum {pair['local_sum']:.2f}s, served alone "
                + ", ".join(f"{t:.2f}s" for t in pair["remote"].values())
                + f": ratio {pair['ratio']:.3f} (sequential {pair['sequential_ratio']:.3f}); "
                f"{pair['switches']} switches between engines in the token stream"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What loading a big snapshot costs (issue 24: the divergences are recomputed from the traces on
load): ``python benchmarks/snapshot_load.py [PROMPTS] [REPEATS]``.

Builds a ~16 MB snapshot (48 prompts x 3 engines x 256 tokens, top-5, two engines diverging at
different steps), then times ``load_snapshot`` (best of REPEATS, one process) and, for the
share of it, the verification alone. Run it with two checkouts on PYTHONPATH to compare."""

from __future__ import annotations

import os
import sys
import tempfile
import time


def build(path: str, prompts: int = 48, tokens: int = 256) -> int:
    from gendiff.io.snapshots import save_snapshot
    from gendiff.records.divergence import compare
    from gendiff.records.snapshot import Batch, PromptResult, Snapshot
    from gendiff.records.trace import TokenStep, TopToken, Trace

    engines = ["hf-single", "hf-left", "hf-right"]

    def steps(offset: int, fork: int | None) -> tuple[TokenStep, ...]:
        out = []
        for i in range(tokens):
            chosen = (i * 7 + offset + (1 if fork is not None and i >= fork else 0)) % 2000 + 3
            top = tuple(TopToken(chosen + r, f" w{chosen + r}", -0.25 * r - 0.01, 1.5 - r) for r in range(5))
            out.append(TokenStep(chosen, f" w{chosen}", -0.01, top))
        return tuple(out)

    results = []
    for p in range(prompts):
        ids = (1, 2, 3 + p)
        forks = {"hf-single": None, "hf-left": None if p % 3 else p % tokens, "hf-right": (p * 5) % tokens}
        traces = {e: Trace(e, p, ids, steps(p, forks[e]), "length", settings={"dtype": "float32"}) for e in engines}
        result = PromptResult(f"prompt {p}", list(ids), traces, id=p, batches=dict.fromkeys(engines, 0))
        result.divergences = [compare(traces["hf-single"], traces[e]) for e in engines[1:]]
        results.append(result)
    snap = Snapshot(
        model={"name": "m", "path": "/m", "vocab_size": 2807},
        decoding={"max_new_tokens": tokens, "top_k": 5},
        reference="hf-single",
        engines=[{"label": e, "name": e, "settings": {}} for e in engines],
        prompts=results,
        environment={"python": "", "torch": "", "transformers": "", "device": "cpu"},
        batches=[
            Batch(
                0,
                tuple(engines),
                tuple(range(prompts)),
                tuple(r.text for r in results),
                tuple(tuple(r.token_ids) for r in results),
            )
        ],
    )
    save_snapshot(snap, path)
    return os.path.getsize(path)


def main() -> None:
    prompts = int(sys.argv[1]) if len(sys.argv) > 1 else 48
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    from gendiff.io import snapshots

    path = os.path.join(tempfile.mkdtemp(), "big.json")
    size = build(path, prompts)
    snapshots.load_snapshot(path)  # imports and the schema, once
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        snapshot = snapshots.load_snapshot(path)
        times.append(time.perf_counter() - started)
    line = f"{size / 1e6:.1f} MB: load_snapshot best {min(times):.3f} s (of {repeats})"
    try:
        from gendiff.records.consistency import verify_snapshot
    except ImportError:
        print(line + "; no verification in this checkout")
        return
    checks = []
    for _ in range(repeats):
        started = time.perf_counter()
        verify_snapshot(snapshot, path)
        checks.append(time.perf_counter() - started)
    print(line + f"; verification alone best {min(checks):.3f} s")


if __name__ == "__main__":
    main()

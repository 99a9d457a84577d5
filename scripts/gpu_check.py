"""The Python half of scripts/gpu_check.sh: one line per check from a snapshot, and the vLLM
speculative-decoding comparison (not an option of gendiff's vllm engine).

    python scripts/gpu_check.py summary NAME SNAPSHOT.json [--against LABEL]
    python scripts/gpu_check.py spec-decode OUT.json [--ngram] [--dtype float32]
    python scripts/gpu_check.py same-tokens NAME A.json B.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the checkout's gendiff, whichever venv runs this


def _largest_difference(reference, other) -> float:
    """The largest |Δlogprob| over the steps (chosen token and the shared top-k) before the first
    differing token."""
    largest = 0.0
    for a, b in zip(reference.steps, other.steps):
        if a.token_id != b.token_id:
            break
        largest = max(largest, abs(a.logprob - b.logprob))
        theirs = {t.token_id: t.logprob for t in b.top}
        largest = max([largest] + [abs(t.logprob - theirs[t.token_id]) for t in a.top if t.token_id in theirs])
    return largest


def summary(name: str, path: str, against: str | None) -> None:
    from gendiff.io.snapshots import load_snapshot
    from gendiff.records.divergence import compare

    snapshot = load_snapshot(path)
    reference = against or snapshot.reference
    for label in snapshot.engine_labels:
        if label == reference:
            continue
        kinds: Counter[str] = Counter()
        identical = failed = 0
        largest = 0.0
        for prompt in snapshot.prompts:
            ref, other = prompt.traces.get(reference), prompt.traces.get(label)
            if ref is None or other is None:
                failed += 1
                continue
            found = compare(ref, other)
            if found.reason == "error":
                failed += 1
                continue
            identical += found.reason == "identical"
            if found.classification:
                kinds[found.classification] += 1
            largest = max(largest, _largest_difference(ref, other))
        where = [e for e in snapshot.engines if e["label"] == label]
        error = where[0].get("error") if where else None
        verdict = "FAILED" if error or failed == len(snapshot.prompts) else "ok"
        classes = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "none"
        line = (
            f"{name}: {verdict}: {label} vs {reference}: {identical}/{len(snapshot.prompts)} prompts identical, "
            f"divergences {classes}, failed {failed}, max |dlogprob| before them {largest:.1e}"
        )
        if error:
            line += f" ({' '.join(str(error).split())[:200]})"
        print(line)


def spec_decode(out: str, ngram: bool, dtype: str) -> None:
    """Greedy tokens (and chosen logprobs) of the demo prompts with vLLM, plain or with ngram
    speculative decoding, written as JSON."""
    from transformers import AutoTokenizer
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    from gendiff.demo import demo_model_path, demo_prompts_path
    from gendiff.io.prompts import PromptBook

    model = str(demo_model_path())
    tokenizer = AutoTokenizer.from_pretrained(model)
    prompts = [tokenizer(p)["input_ids"] for p in PromptBook.load(demo_prompts_path()).prompts]
    kwargs = {"model": model, "dtype": dtype, "gpu_memory_utilization": 0.1, "max_model_len": 512, "seed": 0}
    if ngram:
        kwargs["speculative_config"] = {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 3}
    llm = LLM(**kwargs)
    params = SamplingParams(temperature=0.0, max_tokens=32, logprobs=1)
    outputs = llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in prompts], params)
    result = []
    for output in outputs:
        completion = output.outputs[0]
        chosen = [
            step[token].logprob if step and token in step else None
            for token, step in zip(completion.token_ids, completion.logprobs or [])
        ]
        result.append({"tokens": list(completion.token_ids), "logprobs": chosen})
    Path(out).write_text(json.dumps(result))


def same_tokens(name: str, a_path: str, b_path: str) -> None:
    a, b = json.loads(Path(a_path).read_text()), json.loads(Path(b_path).read_text())
    identical = sum(x["tokens"] == y["tokens"] for x, y in zip(a, b))
    largest = 0.0
    for x, y in zip(a, b):
        for t, u, p, q in zip(x["tokens"], y["tokens"], x["logprobs"], y["logprobs"]):
            if t != u:
                break
            if p is not None and q is not None:
                largest = max(largest, abs(p - q))
    verdict = "ok" if identical == len(a) else "DIFFERS"
    print(f"{name}: {verdict}: {identical}/{len(a)} prompts identical tokens, max |dlogprob| of chosen {largest:.1e}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("summary")
    s.add_argument("name")
    s.add_argument("snapshot")
    s.add_argument("--against")
    d = sub.add_parser("spec-decode")
    d.add_argument("out")
    d.add_argument("--ngram", action="store_true")
    d.add_argument("--dtype", default="float32")
    t = sub.add_parser("same-tokens")
    t.add_argument("name")
    t.add_argument("a")
    t.add_argument("b")
    args = ap.parse_args()
    if args.command == "summary":
        summary(args.name, args.snapshot, args.against)
    elif args.command == "spec-decode":
        spec_decode(args.out, args.ngram, args.dtype)
    else:
        same_tokens(args.name, args.a, args.b)
    return 0


if __name__ == "__main__":
    sys.exit(main())

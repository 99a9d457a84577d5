"""A synthetic snapshot shaped like a real run, for the snapshot-format benchmarks.

``synthetic_snapshot(prompts, engines, tokens, top_k)``: every engine's trace of a prompt follows
the reference's tokens, with its own float32 logprobs (the reference's plus a little noise, as
two kernels give), until a random step where about half of the engines fork; after a fork the
tokens are the engine's own. Logprobs and logits are float32 values as the HF engines record
them, token texts come from one vocabulary, ids from a 32k vocabulary with a Zipf-like spread.
Deterministic for a seed.
"""

from __future__ import annotations

import math
import random
from array import array

from gendiff.records.divergence import compare
from gendiff.records.snapshot import Batch, PromptResult, Snapshot
from gendiff.records.trace import TokenStep, TopToken, Trace

VOCAB = 32_000
ENGINES = ("hf-single", "hf-left", "hf-right", "packed", "vllm")
ENVIRONMENT = {"python": "3.11", "torch": "2.13.0", "transformers": "5.19.0", "device": "cpu"}


def _f32(values: list[float]) -> list[float]:
    return array("f", values).tolist()


def _token_text(token_id: int) -> str:
    # sentencepiece-like pieces: a leading space on most, a few bytes tokens
    return f"<0x{token_id:02X}>" if token_id < 256 else f" w{token_id}"


def _step(rng: random.Random, chosen: int, top_k: int, texts: dict[int, str], noise: float) -> TokenStep:
    ids = [chosen]
    while len(ids) < top_k:
        candidate = min(int(rng.paretovariate(0.6)), VOCAB - 1)
        if candidate not in ids:
            ids.append(candidate)
    best = rng.uniform(8.0, 20.0)
    logits = _f32([best] + sorted((best - rng.expovariate(0.7) for _ in ids[1:]), reverse=True))
    logits = _f32([x + rng.gauss(0.0, noise) for x in logits])
    logits[1:] = sorted(min(x, logits[0]) for x in logits[1:])[::-1]
    lse = logits[0] + math.log1p(sum(math.exp(x - logits[0]) for x in logits[1:]) + rng.uniform(0.0, 0.5))
    logprobs = _f32([x - lse for x in logits])
    top = tuple(TopToken(i, texts.setdefault(i, _token_text(i)), lp, lg) for i, lp, lg in zip(ids, logprobs, logits))
    return TokenStep(chosen, top[0].text, logprobs[0], top)


def synthetic_snapshot(prompts: int, engines: int = 5, tokens: int = 64, top_k: int = 5, seed: int = 0) -> Snapshot:
    """A snapshot of ``prompts`` × ``engines`` × ``tokens`` steps with ``top_k`` candidates each."""
    rng = random.Random(seed)
    labels = list(ENGINES[:engines]) + [f"engine-{i}" for i in range(len(ENGINES), engines)]
    texts: dict[int, str] = {}
    results = []
    for p in range(prompts):
        prompt_ids = [rng.randrange(VOCAB) for _ in range(rng.randint(4, 40))]
        path = [min(int(rng.paretovariate(0.6)), VOCAB - 1) for _ in range(tokens)]
        traces = {}
        for e, label in enumerate(labels):
            fork = tokens if e == 0 or rng.random() < 0.5 else rng.randrange(tokens)
            own = path[:fork] + [min(int(rng.paretovariate(0.6)), VOCAB - 1) for _ in range(tokens - fork)]
            steps = tuple(_step(rng, t, top_k, texts, 0.0 if e == 0 else 1e-3) for t in own)
            traces[label] = Trace(label, p, tuple(prompt_ids), steps, "length", {"dtype": "float32"}, None, 0.5)
        result = PromptResult(
            f"prompt {p}: " + " ".join(texts.get(t, "?") for t in prompt_ids[:8]),
            prompt_ids,
            traces,
            [compare(traces[labels[0]], traces[label]) for label in labels[1:]],
            id=p,
            batches={label: e for e, label in enumerate(labels)},
        )
        results.append(result)
    batches = [
        Batch(
            e,
            (label,),
            tuple(r.id for r in results),
            tuple(r.text for r in results),
            tuple(tuple(r.token_ids) for r in results),
        )
        for e, label in enumerate(labels)
    ]
    return Snapshot(
        model={"name": "synthetic", "path": "/synthetic", "dtype": "float32", "attn": "sdpa"},
        decoding={"max_new_tokens": tokens, "top_k": top_k, "stop_at_eos": False},
        reference=labels[0],
        engines=[{"label": label, "name": label, "settings": {"dtype": "float32"}} for label in labels],
        prompts=results,
        environment=ENVIRONMENT,
        batches=batches,
    )

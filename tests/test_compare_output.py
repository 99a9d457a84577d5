"""``gendiff compare`` of two .gdz files, pinned against a plain loop written here: for every
engine, where B first leaves A, why, the drift before it, A's fragile steps, the margins and the
flip gaps, read from the steps as they were built (not from gendiff's comparison)."""

from __future__ import annotations

import math
import random

import numpy as np
from helpers import ENVIRONMENT

from gendiff.io.compare import load_pair
from gendiff.io.snapshots import save_snapshot
from gendiff.records.divergence import compare
from gendiff.records.snapshot import Batch, PromptResult, Snapshot
from gendiff.records.trace import TokenStep, TopToken, Trace

LABELS = ["ref", "same", "noisy", "fork", "short"]
THRESHOLD = 0.05


def f32(x: float) -> float:
    return float(np.float32(x))


def step(rng: random.Random, token: int, noise: float, close: bool) -> TokenStep:
    others = [i for i in rng.sample(range(40), 5) if i != token][:3]
    first = f32(-rng.uniform(0.01, 0.5) + noise)
    second = f32(first - (rng.uniform(0.001, 0.04) if close else rng.uniform(0.2, 2.0)))
    rest = [f32(second - 1.0 - i) for i in range(len(others) - 1)]
    top = tuple(TopToken(i, f"t{i}", lp, f32(lp + 7.0)) for i, lp in zip([token, *others], [first, second, *rest]))
    return TokenStep(token, f"t{token}", first, top)


def traces_of(rng: random.Random, p: int, base: list[int], closes: list[bool], side: str) -> dict[str, Trace]:
    """One prompt's traces; side B moves some engines: noise, a fork at a random step, fewer steps."""
    prompt = (1, 2, 3 + p)
    out = {}
    for e, label in enumerate(LABELS):
        ids, noise = list(base), 0.0
        if side == "B" and label == "noisy":
            noise = 1e-3 * (p + 1)
        if side == "B" and label == "fork" and p % 2 == 0:
            at = rng.randrange(len(ids))
            ids[at] = (ids[at] + 1 + ids[(at + 1) % len(ids)]) % 40  # one of A's candidates or not
        if side == "B" and label == "short":
            ids = ids[: len(ids) - 1 - p % 3]
        local = random.Random(p * 100 + e)  # the same candidates on both sides where the tokens agree
        steps = tuple(step(local, t, noise, c) for t, c in zip(ids, closes))
        finish = "eos" if len(ids) < len(base) else "length"
        out[label] = Trace(label, p, prompt, steps, finish, {"dtype": "float32"}, None, 0.1)
    if side == "B" and p == 3:
        out["same"] = Trace.failed("same", p, list(prompt), "engine same: out of memory", {})
    return out


def snapshot(side: str) -> Snapshot:
    rng = random.Random(7 if side == "A" else 8)
    shape = random.Random(1)
    prompts = []
    for p in range(6):
        base = [shape.randrange(40) for _ in range(12)]
        closes = [shape.random() < 0.3 for _ in base]
        traces = traces_of(rng, p, base, closes, side)
        divergences = [compare(traces["ref"], traces[label]) for label in LABELS[1:]]
        prompts.append(
            PromptResult(f"prompt {p}", [1, 2, 3 + p], traces, divergences, id=p, batches=dict.fromkeys(LABELS, 0))
        )
    return Snapshot(
        model={"name": "m", "path": "/m", "dtype": "float32", "attn": "sdpa", "vocab_size": 40},
        decoding={"max_new_tokens": 12, "top_k": 4, "fragile_threshold": THRESHOLD},
        reference="ref",
        engines=[{"label": label, "name": label, "settings": {}} for label in LABELS],
        prompts=prompts,
        environment=ENVIRONMENT,
        created="2026-12-01T00:00:00+00:00",
        batches=[
            Batch(
                0,
                tuple(LABELS),
                tuple(p.id for p in prompts),
                tuple(p.text for p in prompts),
                tuple(tuple(p.token_ids) for p in prompts),
            )
        ],
    )


def expected(a: Trace, b: Trace) -> dict:
    """The comparison of B's trace with A's, by hand."""
    a_ids, b_ids = [s.token_id for s in a.steps], [s.token_id for s in b.steps]
    step = next((i for i, (x, y) in enumerate(zip(a_ids, b_ids)) if x != y), None)
    if step is None and len(a_ids) != len(b_ids):
        step = min(len(a_ids), len(b_ids))
    agreeing = len(a_ids) if step is None else step
    drift = 0.0
    for i in range(agreeing):
        drift = max(drift, abs(a.steps[i].logprob - b.steps[i].logprob))
    fragile = [i for i in range(agreeing) if a.steps[i].top[0].logprob - a.steps[i].top[1].logprob < THRESHOLD]
    out = {"step": step, "agreeing": agreeing, "drift": drift, "fragile": fragile}
    if "error" in (a.finish_reason, b.finish_reason):
        return {**out, "step": None, "reason": "error"}
    if step is None:
        return {**out, "reason": "identical"}
    if step >= len(a_ids) or step >= len(b_ids):
        return {**out, "reason": "length"}
    sa, sb = a.steps[step], b.steps[step]
    on = {t.token_id: t.logprob for t in sb.top}
    back = {t.token_id: t.logprob for t in sa.top}
    return {
        **out,
        "reason": "token",
        "tokens": (sa.token_id, sb.token_id),
        "margins": (sa.top[0].logprob - sa.top[1].logprob, sb.top[0].logprob - sb.top[1].logprob),
        "flip_gap": sb.logprob - on[sa.token_id] if sa.token_id in on else None,
        "reference_gap": sa.logprob - back[sb.token_id] if sb.token_id in back else None,
    }


def test_compare_of_two_gdz_files_gives_the_comparison_worked_out_by_hand(tmp_path):
    a, b = snapshot("A"), snapshot("B")
    save_snapshot(a, tmp_path / "a.gdz")
    save_snapshot(b, tmp_path / "b.gdz")
    compared = load_pair(str(tmp_path / "a.gdz"), str(tmp_path / "b.gdz"))
    assert compared.engine_labels == [f"{label}@{tag}" for label in LABELS for tag in "AB"]
    reasons = set()
    for pa, pb, result in zip(a.prompts, b.prompts, compared.prompts):
        assert [(d.reference, d.engine) for d in result.divergences] == [(f"{x}@A", f"{x}@B") for x in LABELS]
        for label, d in zip(LABELS, result.divergences):
            want = expected(pa.traces[label], pb.traces[label])
            reasons.add(want["reason"])
            assert (d.reason, d.step, d.agreeing_steps) == (want["reason"], want["step"], want["agreeing"]), label
            assert math.isclose(d.max_drift_before, want["drift"], rel_tol=0, abs_tol=1e-12), label
            assert list(d.fragile_steps) == want["fragile"], label
            assert d.prompt_index == pa.traces[label].prompt_index
            if want["reason"] == "token":
                assert (d.reference_step.token_id, d.other_step.token_id) == want["tokens"]
                assert (d.reference_margin, d.other_margin) == want["margins"]
                assert (d.flip_gap, d.reference_gap) == (want["flip_gap"], want["reference_gap"])
                assert d.reference_step == pa.traces[label].steps[d.step]
                assert d.other_step == pb.traces[label].steps[d.step]
        for label in LABELS:  # both sides' traces, as they were
            assert tuple(result.traces[f"{label}@A"].steps) == tuple(pa.traces[label].steps)
            assert tuple(result.traces[f"{label}@B"].steps) == tuple(pb.traces[label].steps)
    assert reasons == {"identical", "token", "length", "error"}  # every kind of comparison was pinned

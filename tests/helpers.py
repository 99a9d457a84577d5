"""Hand-made traces for the pure-logic tests."""

from __future__ import annotations

from gendiff.records.trace import TokenStep, TopToken, Trace

# a hand-made snapshot's machine (what gendiff.io.environment records, written out)
ENVIRONMENT = {"python": "3.11", "torch": "2.13.0", "transformers": "5.19.0", "device": "cpu"}


def step(token_id: int, *candidates: tuple[int, float]) -> TokenStep:
    """A step choosing ``token_id``; ``candidates`` are (id, logprob), best first."""
    top = tuple(TopToken(i, f"t{i}", lp, lp + 10.0) for i, lp in candidates)
    chosen_lp = next(lp for i, lp in candidates if i == token_id)
    return TokenStep(token_id, f"t{token_id}", chosen_lp, top)


def trace(engine: str, steps: list[TokenStep], finish: str = "length", prompt: tuple[int, ...] = (1, 2, 3)) -> Trace:
    return Trace(engine=engine, prompt_index=0, prompt_token_ids=prompt, steps=tuple(steps), finish_reason=finish)


def two_engine_snapshot(other_token: int):
    """A one-prompt /2 snapshot: hf-single picks 5; hf-left picks ``other_token`` (5 or 6)."""
    from gendiff.records.divergence import compare
    from gendiff.records.snapshot import Batch, PromptResult, Snapshot

    ref = trace("hf-single", [step(5, (5, -0.69), (6, -0.70))])
    other = trace("hf-left", [step(other_token, (other_token, -0.69), (11 - other_token, -0.695))])
    result = PromptResult(
        "hello",
        [1, 2, 3],
        {"hf-single": ref, "hf-left": other},
        [compare(ref, other)],
        id=0,
        batches={"hf-single": 0, "hf-left": 0},
    )
    return Snapshot(
        model={"name": "m", "path": "/m", "dtype": "float32", "attn": "sdpa"},
        decoding={"max_new_tokens": 1, "top_k": 2},
        reference="hf-single",
        engines=[
            {"label": "hf-single", "name": "hf-single", "settings": {}},
            {"label": "hf-left", "name": "hf-left", "settings": {}},
        ],
        prompts=[result],
        environment=ENVIRONMENT,
        batches=[Batch(0, ("hf-single", "hf-left"), (0,), ("hello",), ((1, 2, 3),))],
    )


def plain_teacher_forced(snapshot_data: dict, engine: str = "hf-single") -> list:
    """Independent of gendiff's engines: per prompt of a snapshot's JSON, ``(tokens, logprobs)``
    with ``tokens`` ``engine``'s continuation and ``logprobs`` the float64 log_softmax of one plain
    float32 forward of the demo model over prompt + tokens, at the positions predicting them."""
    import torch
    from transformers import AutoModelForCausalLM

    from gendiff.demo import demo_model_path

    model = AutoModelForCausalLM.from_pretrained(str(demo_model_path()), dtype=torch.float32).eval()
    out = []
    for prompt in snapshot_data["prompts"]:
        ids, tokens = prompt["token_ids"], prompt["traces"][engine]["token_ids"]
        with torch.inference_mode():
            logits = model(torch.tensor([ids + tokens])).logits[0].double()
        out.append((tokens, torch.log_softmax(logits, -1)[len(ids) - 1 : -1]))
    return out


def llamacpp_built(*keys: str) -> dict[str, str]:
    """scripts/build_llamacpp.py's paths (its cached build and GGUFs); the calling test module is
    skipped when ``keys`` are not built yet, and under CI=true that is an error (.ci/run builds them)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import pytest

    script = Path(__file__).resolve().parent.parent / "scripts" / "build_llamacpp.py"
    where = subprocess.run([sys.executable, str(script), "--where"], capture_output=True, text=True, check=True)
    built = json.loads(where.stdout)
    missing = [key for key in keys if not Path(built[key]).exists()]
    if missing:
        if os.environ.get("CI") == "true":
            raise RuntimeError(f"CI: {', '.join(missing)} not built; .ci/run must run scripts/build_llamacpp.py first")
        pytest.skip(
            f"{', '.join(missing)} not built: run `python scripts/build_llamacpp.py` (about 10 minutes on 2 cores, cached)",
            allow_module_level=True,
        )
    return built

"""Hand-made traces for the pure-logic tests."""

from __future__ import annotations

from gendiff.trace import TokenStep, TopToken, Trace


def step(token_id: int, *candidates: tuple[int, float]) -> TokenStep:
    """A step choosing ``token_id``; ``candidates`` are (id, logprob), best first."""
    top = tuple(TopToken(i, f"t{i}", lp, lp + 10.0) for i, lp in candidates)
    chosen_lp = next(lp for i, lp in candidates if i == token_id)
    return TokenStep(token_id, f"t{token_id}", chosen_lp, top)


def trace(engine: str, steps: list[TokenStep], finish: str = "length", prompt: tuple[int, ...] = (1, 2, 3)) -> Trace:
    return Trace(engine=engine, prompt_index=0, prompt_token_ids=prompt, steps=tuple(steps), finish_reason=finish)

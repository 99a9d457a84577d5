"""What a server's answer must be before gendiff believes it: one check for every flavour.

A flavour (:mod:`gendiff.engines.flavours`) only finds the parts of its answer (:class:`Parsed`:
each step's token id, logprob and top candidates as the server sent them, with the names of the
fields they came from); :func:`check_answer` holds them to what was asked: as many logprobs as
tokens, at most the tokens asked for, integer ids inside the model's vocabulary, logprobs that
are numbers, finite or -inf, never above 0, a top-k of k distinct candidates (best first and
holding the chosen token where the flavour promises it), the chosen token's logprob equal to its
own entry in the top-k. A failure is :class:`BadAnswer`, naming the field and what was wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

Step = tuple[int, float, list[tuple[int, float]]]
"""One generated token: (id, its logprob, the top candidates as (id, logprob))."""

# llama.cpp writes probability 0 as -FLT_MAX (-3.4e38, JSON has no -inf); nothing real is below -1e38
ZERO_PROBABILITY = -1e38
SAME_LOGPROB = 1e-6  # the chosen token's logprob and its top-k entry: one number, printed twice


class BadAnswer(Exception):
    """The server answered, but with something gendiff must not believe; ``str()`` names the
    field and what was wrong (``choices[0].logprobs.token_logprobs[3] is NaN``)."""


@dataclass(frozen=True)
class Parsed:
    """A generation answer's parts as the server sent them (not yet checked).

    ``steps``: per token (id, logprob, top) with top a list of (id, logprob) pairs or None;
    ``columns``: the lengths of the parallel arrays that must agree (``{"tokens": 5, …}``);
    ``token``/``logprob``/``top``: each part's field name with ``{i}`` for the step."""

    steps: list[tuple[Any, Any, Any]]
    finish: Any
    token: str
    logprob: str
    top: str
    columns: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Expected:
    """What the request asked for, and what the flavour promises about its answers."""

    max_new_tokens: int
    top_k: int
    vocab_size: int | None
    chosen_in_top: bool = False  # the top-k always holds the chosen token (vLLM adds it)
    sorted_top: bool = False  # the top-k comes best first (llama.cpp, SGLang lists)


def check_answer(parsed: Parsed, expected: Expected) -> tuple[list[Step], str | None]:
    """The checked steps and finish reason of ``parsed``; raises BadAnswer."""
    lengths = set(parsed.columns.values())
    if len(lengths) > 1:
        shown = ", ".join(f"{name} {count}" for name, count in parsed.columns.items())
        raise BadAnswer(f"the answer's arrays differ in length ({shown}): one logprob per token is needed")
    if len(parsed.steps) > expected.max_new_tokens:
        raise BadAnswer(f"{len(parsed.steps)} tokens, but {expected.max_new_tokens} were asked for")
    steps = [_step(parsed, index, raw, expected) for index, raw in enumerate(parsed.steps)]
    finish = parsed.finish
    if finish is not None and not isinstance(finish, str):
        raise BadAnswer(f"the finish reason is {shown_value(finish)}, not text")
    return steps, finish


def check_token_ids(values: Any, where: str, vocab_size: int | None) -> list[int]:
    """A tokenization answer's ids (already unwrapped from the flavour's shape); raises BadAnswer."""
    if not isinstance(values, list):
        raise BadAnswer(f"{where} is {shown_value(values)}, not a list of token ids")
    return [token_id(value, f"{where}[{index}]", vocab_size) for index, value in enumerate(values)]


def token_id(value: Any, where: str, vocab_size: int | None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadAnswer(f"{where} is {shown_value(value)}, not a token id")
    if value < 0 or (vocab_size is not None and value >= vocab_size):
        bound = f"0 to {vocab_size - 1}" if vocab_size is not None else "0 or above"
        raise BadAnswer(f"{where} is token id {value}, outside the model's vocabulary ({bound})")
    return value


def logprob(value: Any, where: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise BadAnswer(f"{where} is {shown_value(value)}, not a logprob")
    number = float(value)
    if math.isnan(number):
        raise BadAnswer(f"{where} is NaN, not a logprob")
    if number > 0:
        raise BadAnswer(f"{where} is {number!r}: a logprob is never above 0")
    return -math.inf if number <= ZERO_PROBABILITY else number


def _step(parsed: Parsed, index: int, raw: tuple[Any, Any, Any], expected: Expected) -> Step:
    name_token, name_logprob, name_top = (n.format(i=index) for n in (parsed.token, parsed.logprob, parsed.top))
    raw_id, raw_logprob, raw_top = raw
    chosen = token_id(raw_id, name_token, expected.vocab_size)
    chosen_logprob = logprob(raw_logprob, name_logprob)
    if chosen_logprob == -math.inf:
        raise BadAnswer(f"{name_logprob}: the chosen token {chosen} has probability 0, which greedy never picks")
    if not isinstance(raw_top, list):
        raise BadAnswer(f"{name_top} is {shown_value(raw_top)}, not the top-{expected.top_k} candidates")
    candidates = []
    for rank, pair in enumerate(raw_top):
        candidate_id, candidate_logprob = pair
        where = f"{name_top}[{rank}]"
        candidates.append((token_id(candidate_id, where, expected.vocab_size), logprob(candidate_logprob, where)))
    ids = [i for i, _ in candidates]
    if len(set(ids)) != len(ids):
        repeated = next(i for i in ids if ids.count(i) > 1)
        raise BadAnswer(f"{name_top} lists token {repeated} twice")
    least = min(expected.top_k, expected.vocab_size or expected.top_k)
    if not least <= len(candidates) <= expected.top_k + 1:  # k, or k + 1 with the chosen one added
        raise BadAnswer(f"{name_top} holds {len(candidates)} candidates, {expected.top_k} were asked for")
    if expected.sorted_top and any(a[1] < b[1] for a, b in zip(candidates, candidates[1:])):
        raise BadAnswer(f"{name_top} is not ordered best first")
    own = dict(candidates).get(chosen)
    if own is None and expected.chosen_in_top:
        raise BadAnswer(f"{name_top} does not hold the chosen token {chosen}")
    if own is not None and abs(own - chosen_logprob) > SAME_LOGPROB * max(1.0, abs(chosen_logprob)):
        raise BadAnswer(f"{name_logprob} is {chosen_logprob!r} but {name_top} gives token {chosen} {own!r}")
    return chosen, chosen_logprob, candidates


def shown_value(value: Any) -> str:
    """A value from an answer, short, for a message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"

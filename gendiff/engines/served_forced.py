"""The ``openai`` engine's teacher-forced pass: each prompt + its tokens sent once, the server's
logprobs of every sent token read back (vLLM: ``echo`` + ``logprobs``, computed from its
``prompt_logprobs``; SGLang: ``logprob_start_len=0``, untested). The server's own cap on
logprobs (vLLM's ``--max-logprobs``, 20 by default) is read from its refusal and the request
sent again with that many: the result then says it covers only the top k."""

from __future__ import annotations

import asyncio
import math
import re
from typing import Any

from gendiff.engines.answers import BadAnswer
from gendiff.engines.flavour import ServedError
from gendiff.engines.http_plumbing import each_row
from gendiff.errors import EngineError
from gendiff.records.forced import ForcedPass, ForcedPosition

CAP = re.compile(r"max(?:imum)? allowed:? (\d+)")  # vLLM: "... which is greater than max allowed: 20"
LOGPROB_SLACK = 1e-4  # a float32 logprob a hair above 0 is rounding, not a probability above 1


def served_forced_pass(engine: Any, prompts: list[list[int]], targets: dict[int, list[int]], top_k: int) -> ForcedPass:
    """``engine`` (an OpenAIServer, loaded) asked once per row; an answer gendiff can't use, or a
    failed request, fails the whole pass (EngineError naming the prompt)."""
    if engine.flavour is None:
        engine.load()
    vocab = engine._vocab_size()
    asked = {"k": min(vocab, top_k)}
    reported: dict[int, list[ForcedPosition]] = {}

    async def run() -> None:
        import httpx

        limits = httpx.Limits(max_connections=len(targets) or 1)
        transport = httpx.AsyncHTTPTransport(retries=engine._retries(), limits=limits)
        async with httpx.AsyncClient(timeout=engine._timeout(), transport=transport) as client:

            async def ask(row: int) -> None:
                reported[row] = await _one(engine, client, prompts[row], targets[row], asked, row)

            first, *rest = sorted(targets)
            await ask(first)  # alone: a cap the server refuses is learnt once
            await each_row(rest, ask, len(rest) or 1, None)

    asyncio.run(run())
    k = asked["k"]
    how = f"its server ({engine.flavour.name} flavour), echo + logprobs={k}: prompt + tokens in one prefill, not its decode steps"
    return ForcedPass(reported, None if k >= vocab else k, how)


async def _one(
    engine: Any, client: Any, prompt: list[int], target: list[int], asked: dict[str, int], row: int
) -> list[ForcedPosition]:
    sequence = prompt + target
    where = f"engine {engine.spec.label}: prompt {row + 1}'s teacher-forced pass"
    for _ in range(2):  # again once, with the server's cap, if it refuses the count asked
        request = engine.flavour.forced(engine.model, sequence, asked["k"])
        answer = await engine._post(client, request.path, request.body)
        cap = CAP.search(answer) if isinstance(answer, str) else None
        if cap is None or int(cap.group(1)) >= asked["k"]:
            break
        asked["k"] = int(cap.group(1))
    if isinstance(answer, str):
        raise EngineError(f"{where}: {answer}")
    try:
        ids, chosen, tops = engine.flavour.parse_forced(answer)
    except (ServedError, BadAnswer) as exc:
        raise EngineError(f"{where}: {engine._unusable(BadAnswer(str(exc)))}") from None
    if ids[: len(sequence)] != sequence or len(tops) < len(sequence) or len(chosen) < len(sequence):
        raise EngineError(f"{where}: the server did not echo the {len(sequence)} tokens sent")
    positions = []
    for index in range(len(prompt), len(sequence)):
        top = dict(tops[index] or [])
        top.setdefault(sequence[index], chosen[index])
        values = [_logprob(value, where, index) for value in top.values()]
        positions.append(ForcedPosition(sequence[index], tuple(top), tuple(values)))
    return positions


def _logprob(value: Any, where: str, index: int) -> float:
    """A reported logprob as a float (≤ 0; vLLM's -9999.0 for -inf kept as is)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) or value > LOGPROB_SLACK:
        raise EngineError(f"{where}: position {index} has logprob {value!r}, not a number at most 0")
    return min(float(value), 0.0)

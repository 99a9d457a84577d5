"""A served engine's check of a chat prompt, before any generation: the server's own chat
template must render the messages to the ids gendiff rendered with the model's template
(vLLM: ``/tokenize`` with messages; llama.cpp: ``/apply-template`` then ``/tokenize``). When they
differ the prompt is not run by that engine, and its error line names the first differing
position and both tokens: a template or special-token difference, not numerics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from gendiff.display import visible
from gendiff.engines.answers import BadAnswer, check_token_ids
from gendiff.engines.flavour import Flavour
from gendiff.records.chat import ChatMessage

Post = Callable[[str, dict[str, Any]], Awaitable[Any]]  # (path, body) -> JSON answer or an error line


def first_difference(ours: list[int], theirs: list[int], piece: Callable[[int], str]) -> str | None:
    """Where two renderings of one prompt first part, in words (None: equal). ``piece`` decodes one id."""
    for position, (mine, served) in enumerate(zip(ours, theirs)):
        if mine != served:
            return (
                f"first difference at prompt token {position}: the model's template gives {mine} "
                f"{visible(piece(mine))!r}, the server's {served} {visible(piece(served))!r}"
            )
    if len(ours) == len(theirs):
        return None
    longer, extra = ("the model's", ours) if len(ours) > len(theirs) else ("the server's", theirs)
    token = extra[min(len(ours), len(theirs))]
    return (
        f"first difference at prompt token {min(len(ours), len(theirs))}: {longer} rendering goes on with "
        f"{token} {visible(piece(token))!r}, the other ends ({len(ours)} against {len(theirs)} tokens)"
    )


async def check_chat(
    post: Post,
    flavour: Flavour,
    model: str,
    messages: tuple[ChatMessage, ...],
    ours: list[int],
    piece: Callable[[int], str],
    vocab_size: int | None,
) -> str | None:
    """None when the server renders ``messages`` to ``ours``; else the prompt's error line.
    A server answer of the wrong shape raises ServedError (the engine's, not the prompt's, problem)."""
    if not flavour.chat_steps:
        return f"flavour {flavour.name}: gendiff can't ask this server how it renders chat messages, so it does not run them"
    data = [m.to_dict() for m in messages]
    rendered = None
    if "template" in flavour.chat_steps:
        request = flavour.chat_template(model, data)
        answer = await post(request.path, request.body)
        if isinstance(answer, str):
            return f"rendering its chat template ({request.path}): {answer}"
        rendered = flavour.parse_chat_template(answer)
    request = flavour.chat_tokenize(model, data, rendered)
    answer = await post(request.path, request.body)
    if isinstance(answer, str):
        return f"tokenizing the chat prompt ({request.path}): {answer}"
    try:
        values, where = flavour.parse_chat_tokens(answer)
        theirs = check_token_ids(values, where, vocab_size)
    except BadAnswer as exc:
        return f"tokenizing the chat prompt: {exc}"
    difference = first_difference(ours, theirs, piece)
    if difference is None:
        return None
    return (
        f"the server's chat template renders this prompt to other ids than the model's ({difference}): a template "
        "or special-token difference; not run here (start the server with the model's own chat template)"
    )

"""The served-flavour contract: how one kind of server is asked for greedy tokens with top-k
logprobs keyed by token id (:class:`Flavour`), what a request is, the error of an answer gendiff
can't use, and the helpers every flavour reads answers with. The flavours themselves are in
:mod:`gendiff.engines.flavours` (vLLM's OpenAI server, SGLang) and
:mod:`gendiff.engines.llamacpp` (llama.cpp's server)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gendiff.engines.answers import Parsed
from gendiff.engines.settings import GenerationSettings

# sampling knobs a server may default from the model's generation config: always sent neutral
NEUTRAL = {"temperature": 0.0, "top_p": 1.0, "top_k": -1, "min_p": 0.0, "repetition_penalty": 1.0}
NEUTRAL_OPENAI = {**NEUTRAL, "frequency_penalty": 0.0, "presence_penalty": 0.0, "seed": 0}

STRING_KEYED = (
    "the server returns logprobs keyed by token text, not token id: different tokens that decode to "
    "the same text would merge into one, so gendiff refuses it"
)


FLOAT_LOWEST = -3.4e38  # llama.cpp writes log(0) as float's lowest value (JSON has no -inf)
REPORTED_TEXT = 300  # characters of one reported text value kept in the record


SGLANG_RENORMALISED = (
    "the server returns logprobs renormalised after its sampler's top-k (0.0 for the chosen token, -inf "
    "for the others), not the model's: restart SGLang with SGLANG_RETURN_ORIGINAL_LOGPROB=1 in its environment"
)


class ServedError(Exception):
    """The server answered, but not in a way gendiff can use; ``str()`` says why."""


@dataclass(frozen=True)
class Request:
    path: str  # relative to the server root (the url without its trailing /v1)
    body: dict[str, Any]


class Flavour:
    """How one kind of server is asked and where its answer keeps each part. ``parse`` and
    ``parse_tokens`` only find the parts (BadAnswer when the shape is wrong); every value is
    checked by :func:`gendiff.engines.answers.check_answer` / ``check_token_ids``, the same for
    every flavour. ``chosen_in_top``/``sorted_top``: what the server promises about its top-k."""

    name: str
    tested: bool
    version_paths: tuple[str, ...] = ()
    report_paths: tuple[str, ...] = ()
    """GET endpoints (relative to the root) whose answers :meth:`reported` reads."""
    eos_is_a_bias: bool = False
    """True if the server's ``ignore_eos`` is a -inf bias on EOS (it changes the tokens): then the
    engine never sends it and continues past an EOS by resubmitting prompt + generated tokens."""
    chosen_in_top: bool = False
    sorted_top: bool = False
    forced_refusal: str | None = None
    """Why this server can't report logprobs on given tokens (``--stats``, ``gendiff score``), or None."""

    def generate(self, model: str, prompt: list[int], settings: GenerationSettings) -> Request:
        raise NotImplementedError

    def parse(self, data: Any) -> Parsed:
        """The answer's steps and finish reason, as sent (checked afterwards)."""
        raise NotImplementedError

    def tokenize(self, model: str, text: str) -> Request:
        raise NotImplementedError

    def forced(self, model: str, ids: list[int], top_k: int) -> Request:
        """Ask for the logprobs of every token of ``ids`` given the ones before (one generated token
        is allowed and ignored), the top ``top_k`` and the token itself at each position."""
        raise NotImplementedError

    def parse_forced(self, data: Any) -> tuple[list[Any], list[Any], list[Any]]:
        """The echoed sequence as sent: its token ids, each token's logprob and each position's
        top (a list of (id, logprob) pairs, or None where the server gives none: the first)."""
        raise NotImplementedError

    def parse_tokens(self, data: Any) -> tuple[Any, str]:
        """The token ids of a tokenization answer, as sent, and the field they came from."""
        raise NotImplementedError

    # ---- chat prompts: how the server renders messages with its own template, to token ids -----
    chat_steps: tuple[str, ...] = ()
    """How this flavour's server turns messages into ids: ``("tokenize",)`` in one request
    (:meth:`chat_tokenize` gets no text), ``("template", "tokenize")`` through a rendered text
    (:meth:`chat_template`, then :meth:`chat_tokenize` with the text); empty: it can't be asked."""

    def chat_template(self, model: str, messages: list[dict[str, str]]) -> Request:
        raise NotImplementedError

    def parse_chat_template(self, data: Any) -> str:
        """The rendered prompt text of a :meth:`chat_template` answer (ServedError if missing)."""
        raise NotImplementedError

    def chat_tokenize(self, model: str, messages: list[dict[str, str]], rendered: str | None) -> Request:
        raise NotImplementedError

    def parse_chat_tokens(self, data: Any) -> tuple[Any, str]:
        return self.parse_tokens(data)

    def version(self, data: Any) -> str | None:
        if isinstance(data, dict):
            for key in ("version", "build_info"):
                if isinstance(data.get(key), str):
                    return data[key]
        return None

    def reported(self, answers: dict[str, Any]) -> dict[str, Any]:
        """What the server says it runs, from the JSON answers of :attr:`report_paths` (path ->
        answer; a path that did not answer is missing): only fields the server reported."""
        return {}


def first_choice(data: Any) -> dict[str, Any]:
    choices = data.get("choices") if isinstance(data, dict) else None
    if not choices or not isinstance(choices[0], dict):
        raise ServedError("the answer has no choices")
    return choices[0]


def token_id_of(key: Any) -> int:
    """vLLM's ``token_id:123`` (return_tokens_as_token_ids) -> 123; a plain token string is refused."""
    if isinstance(key, str) and key.startswith("token_id:") and key[9:].lstrip("-").isdigit():
        return int(key[9:])
    raise ServedError(STRING_KEYED)


def refuse_llamacpp_shape(logprobs: Any) -> None:
    """llama.cpp's /v1/completions answers logprobs as ``{"content": [...]}`` and ignores ``echo``."""
    if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
        raise ServedError("the answer has llama.cpp's logprobs shape (logprobs.content); use flavour=llamacpp")


def served_entry(answer: Any) -> dict[str, Any] | None:
    """The first model of a GET /v1/models answer."""
    data = answer.get("data") if isinstance(answer, dict) else None
    return data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else None


def pick_reported(source: Any, keys: tuple[str, ...], prefix: str = "") -> dict[str, Any]:
    """The plain values (text cut to REPORTED_TEXT characters, numbers, booleans) of ``keys``
    that ``source`` has."""
    if not isinstance(source, dict):
        return {}
    record: dict[str, Any] = {}
    for key in keys:
        value = source.get(key)
        if isinstance(value, str):
            record[prefix + key] = value[:REPORTED_TEXT]
        elif isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
            record[prefix + key] = value
    return record

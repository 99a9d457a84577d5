"""How each kind of server is asked for greedy tokens with top-k logprobs keyed by token id.

A flavour turns (prompt ids, settings) into one HTTP request and the answer into steps; it also
says how to ask the server to tokenize text (to check that it tokenizes as gendiff does) and
where its version is. ``openai`` (vLLM's OpenAI-compatible server) is tested against a real
vLLM server; ``sglang`` and ``llamacpp`` are written from those servers' API documentation and
are NOT tested here (no such server was available): treat their results with care.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gendiff.engines.settings import GenerationSettings

Step = tuple[int, float, list[tuple[int, float]]]
"""One generated token: (id, its logprob, the top candidates as (id, logprob))."""

# sampling knobs a server may default from the model's generation config: always sent neutral
NEUTRAL = {"temperature": 0.0, "top_p": 1.0, "top_k": -1, "min_p": 0.0, "repetition_penalty": 1.0}
NEUTRAL_OPENAI = {**NEUTRAL, "frequency_penalty": 0.0, "presence_penalty": 0.0, "seed": 0}

STRING_KEYED = (
    "the server returns logprobs keyed by token text, not token id: different tokens that decode to "
    "the same text would merge into one, so gendiff refuses it"
)


class ServedError(Exception):
    """The server answered, but not in a way gendiff can use; ``str()`` says why."""


@dataclass(frozen=True)
class Request:
    path: str  # relative to the server root (the url without its trailing /v1)
    body: dict[str, Any]


class Flavour:
    name: str
    tested: bool
    version_paths: tuple[str, ...] = ()

    def generate(self, model: str, prompt: list[int], settings: GenerationSettings) -> Request:
        raise NotImplementedError

    def parse(self, data: Any) -> tuple[list[Step], str | None]:
        """The steps and the server's finish reason."""
        raise NotImplementedError

    def tokenize(self, model: str, text: str) -> Request:
        raise NotImplementedError

    def parse_tokens(self, data: Any) -> list[int]:
        raise NotImplementedError

    def version(self, data: Any) -> str | None:
        if isinstance(data, dict):
            for key in ("version", "build_info"):
                if isinstance(data.get(key), str):
                    return data[key]
        return None


class OpenAICompletions(Flavour):
    """POST /v1/completions with ``prompt: list[int]`` and ``return_tokens_as_token_ids`` (vLLM)."""

    name = "openai"
    tested = True
    version_paths = ("/version",)

    def generate(self, model: str, prompt: list[int], settings: GenerationSettings) -> Request:
        body = {
            "model": model,
            "prompt": prompt,
            "max_tokens": settings.max_new_tokens,
            "logprobs": settings.top_k,
            "return_tokens_as_token_ids": True,
            "ignore_eos": not settings.stop_at_eos,
            "skip_special_tokens": False,
            **NEUTRAL_OPENAI,
        }
        return Request("/v1/completions", body)

    def parse(self, data: Any) -> tuple[list[Step], str | None]:
        choice = _first_choice(data)
        logprobs = choice.get("logprobs") or {}
        tokens, chosen, tops = logprobs.get("tokens"), logprobs.get("token_logprobs"), logprobs.get("top_logprobs")
        if not isinstance(tokens, list) or not isinstance(chosen, list) or not isinstance(tops, list):
            raise ServedError("the answer has no logprobs (tokens, token_logprobs, top_logprobs)")
        steps = []
        for token, logprob, top in zip(tokens, chosen, tops):
            candidates = [(_token_id(key), float(value)) for key, value in (top or {}).items()]
            steps.append((_token_id(token), float(logprob), candidates))
        return steps, choice.get("finish_reason")

    def tokenize(self, model: str, text: str) -> Request:
        # echo the prompt back with ids: plain OpenAI API, no tokenizer endpoint needed
        body = {
            "model": model,
            "prompt": text,
            "max_tokens": 1,
            "echo": True,
            "logprobs": 1,
            "return_tokens_as_token_ids": True,
            **NEUTRAL_OPENAI,
        }
        return Request("/v1/completions", body)

    def parse_tokens(self, data: Any) -> list[int]:
        tokens = (_first_choice(data).get("logprobs") or {}).get("tokens")
        if not isinstance(tokens, list):
            raise ServedError("the echoed prompt has no tokens")
        return [_token_id(t) for t in tokens]


class SGLang(Flavour):
    """SGLang's native POST /generate (``input_ids``, ``return_logprob``, ``top_logprobs_num``). Untested."""

    name = "sglang"
    tested = False
    version_paths = ("/get_server_info", "/server_info")

    def generate(self, model: str, prompt: list[int], settings: GenerationSettings) -> Request:
        sampling = {
            **NEUTRAL,
            "max_new_tokens": settings.max_new_tokens,
            "ignore_eos": not settings.stop_at_eos,
            "skip_special_tokens": False,
            "frequency_penalty": 0.0,
            "presence_penalty": 0.0,
        }
        body = {
            "input_ids": prompt,
            "sampling_params": sampling,
            "return_logprob": True,
            "top_logprobs_num": settings.top_k,
            "return_text_in_logprobs": False,
        }
        return Request("/generate", body)

    def parse(self, data: Any) -> tuple[list[Step], str | None]:
        meta = data.get("meta_info") if isinstance(data, dict) else None
        if not isinstance(meta, dict) or "output_token_logprobs" not in meta:
            raise ServedError("the answer has no meta_info.output_token_logprobs")
        tops = meta.get("output_top_logprobs") or [[] for _ in meta["output_token_logprobs"]]
        steps = []
        for (logprob, token_id, *_), top in zip(meta["output_token_logprobs"], tops):
            steps.append((int(token_id), float(logprob), [(int(t[1]), float(t[0])) for t in top or []]))
        finish = meta.get("finish_reason")
        return steps, finish.get("type") if isinstance(finish, dict) else finish

    def tokenize(self, model: str, text: str) -> Request:
        body = {
            "text": text,
            "sampling_params": {**NEUTRAL, "max_new_tokens": 1},
            "return_logprob": True,
            "logprob_start_len": 0,
        }
        return Request("/generate", body)

    def parse_tokens(self, data: Any) -> list[int]:
        entries = (data.get("meta_info") or {}).get("input_token_logprobs") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise ServedError("the answer has no meta_info.input_token_logprobs")
        return [int(entry[1]) for entry in entries]


class LlamaCpp(Flavour):
    """llama.cpp server's POST /completion (token-array prompt, ``n_probs``). Untested."""

    name = "llamacpp"
    tested = False
    version_paths = ("/props",)

    def generate(self, model: str, prompt: list[int], settings: GenerationSettings) -> Request:
        body = {
            "prompt": prompt,
            "n_predict": settings.max_new_tokens,
            "n_probs": settings.top_k,
            "ignore_eos": not settings.stop_at_eos,
            "cache_prompt": False,  # a reused KV cache is a numerics variable of its own
            "post_sampling_probs": False,  # logprobs of the model's distribution, not the sampler's
            # llama.cpp's own names; top_k 0 = off
            "temperature": 0.0,
            "top_k": 0,
            "top_p": 1.0,
            "min_p": 0.0,
            "repeat_penalty": 1.0,
            "seed": 0,
        }
        return Request("/completion", body)

    def parse(self, data: Any) -> tuple[list[Step], str | None]:
        probs = data.get("completion_probabilities") if isinstance(data, dict) else None
        if not isinstance(probs, list):
            raise ServedError("the answer has no completion_probabilities (a llama.cpp server older than 2024-12?)")
        steps = []
        for entry in probs:
            if "id" not in entry:
                raise ServedError(STRING_KEYED)
            top = [(int(c["id"]), float(c["logprob"])) for c in entry.get("top_logprobs") or []]
            steps.append((int(entry["id"]), float(entry["logprob"]), top))
        return steps, data.get("stop_type")

    def tokenize(self, model: str, text: str) -> Request:
        return Request("/tokenize", {"content": text, "add_special": True})

    def parse_tokens(self, data: Any) -> list[int]:
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list):
            raise ServedError("the /tokenize answer has no tokens")
        return [int(t["id"]) if isinstance(t, dict) else int(t) for t in tokens]


FLAVOURS: dict[str, Flavour] = {f.name: f for f in (OpenAICompletions(), SGLang(), LlamaCpp())}


def _first_choice(data: Any) -> dict[str, Any]:
    choices = data.get("choices") if isinstance(data, dict) else None
    if not choices or not isinstance(choices[0], dict):
        raise ServedError("the answer has no choices")
    return choices[0]


def _token_id(key: Any) -> int:
    """vLLM's ``token_id:123`` (return_tokens_as_token_ids) -> 123; a plain token string is refused."""
    if isinstance(key, str) and key.startswith("token_id:") and key[9:].lstrip("-").isdigit():
        return int(key[9:])
    raise ServedError(STRING_KEYED)

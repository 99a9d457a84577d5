"""How each kind of server is asked for greedy tokens with top-k logprobs keyed by token id.

A flavour turns (prompt ids, settings) into one HTTP request and the answer into steps; it also
says how to ask the server to tokenize text (to check that it tokenizes as gendiff does) and
where its version is and what else the server reports about what it runs. ``openai`` (vLLM's
OpenAI-compatible server) is tested against a real vLLM server and ``llamacpp`` against a real
llama.cpp server (tests/test_llamacpp.py); ``sglang`` is written from SGLang's API documentation
and is NOT tested here (no such server was available): treat its results with care.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gendiff.engines.answers import BadAnswer, Parsed, Step, shown_value
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

    def generate(self, model: str, prompt: list[int], settings: GenerationSettings) -> Request:
        raise NotImplementedError

    def parse(self, data: Any) -> Parsed:
        """The answer's steps and finish reason, as sent (checked afterwards)."""
        raise NotImplementedError

    def tokenize(self, model: str, text: str) -> Request:
        raise NotImplementedError

    def parse_tokens(self, data: Any) -> tuple[Any, str]:
        """The token ids of a tokenization answer, as sent, and the field they came from."""
        raise NotImplementedError

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


class OpenAICompletions(Flavour):
    """POST /v1/completions with ``prompt: list[int]`` and ``return_tokens_as_token_ids`` (vLLM)."""

    name = "openai"
    tested = True
    version_paths = ("/version",)
    report_paths = ("/version", "/v1/models")

    def reported(self, answers: dict[str, Any]) -> dict[str, Any]:
        record = _pick(answers.get("/version"), ("version",))
        record.update(_pick(_served_entry(answers.get("/v1/models")), ("root", "max_model_len"), prefix="model."))
        return record

    chosen_in_top = True  # vLLM adds the sampled token to the top-k when it is not among them

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

    def parse(self, data: Any) -> Parsed:
        choice = _first_choice(data)
        logprobs = choice.get("logprobs") or {}
        if not isinstance(logprobs, dict):
            raise BadAnswer(f"choices[0].logprobs is {shown_value(logprobs)}, not an object")
        _refuse_llamacpp_shape(logprobs)
        tokens, chosen, tops = logprobs.get("tokens"), logprobs.get("token_logprobs"), logprobs.get("top_logprobs")
        if not isinstance(tokens, list) or not isinstance(chosen, list) or not isinstance(tops, list):
            raise ServedError("the answer has no logprobs (tokens, token_logprobs, top_logprobs)")
        steps = []
        for index, (token, logprob, top) in enumerate(zip(tokens, chosen, tops)):
            if not isinstance(top, dict):
                raise BadAnswer(f"choices[0].logprobs.top_logprobs[{index}] is {shown_value(top)}, not an object")
            steps.append((_token_id(token), logprob, [(_token_id(key), value) for key, value in top.items()]))
        return Parsed(
            steps,
            choice.get("finish_reason"),
            token="choices[0].logprobs.tokens[{i}]",
            logprob="choices[0].logprobs.token_logprobs[{i}]",
            top="choices[0].logprobs.top_logprobs[{i}]",
            columns={"tokens": len(tokens), "token_logprobs": len(chosen), "top_logprobs": len(tops)},
        )

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

    def parse_tokens(self, data: Any) -> tuple[Any, str]:
        logprobs = _first_choice(data).get("logprobs") or {}
        if isinstance(logprobs, dict):
            _refuse_llamacpp_shape(logprobs)
        tokens = logprobs.get("tokens") if isinstance(logprobs, dict) else None
        if not isinstance(tokens, list):
            raise ServedError("the echoed prompt has no tokens")
        return [_token_id(t) for t in tokens], "choices[0].logprobs.tokens"


class SGLang(Flavour):
    """SGLang's native POST /generate (``input_ids``, ``return_logprob``, ``top_logprobs_num``). Untested."""

    name = "sglang"
    tested = False
    version_paths = ("/get_server_info", "/server_info")
    report_paths = ("/get_server_info", "/server_info")
    REPORTED = (
        "version",
        "model_path",
        "dtype",
        "quantization",
        "kv_cache_dtype",
        "attention_backend",
        "sampling_backend",
        "tp_size",
        "dp_size",
        "max_running_requests",
        "chunked_prefill_size",
        "disable_radix_cache",
        "enable_deterministic_inference",
        "speculative_algorithm",
        "random_seed",
    )

    def reported(self, answers: dict[str, Any]) -> dict[str, Any]:
        info = answers.get("/get_server_info", answers.get("/server_info"))
        return _pick(info, self.REPORTED)

    sorted_top = True

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

    def parse(self, data: Any) -> Parsed:
        meta = data.get("meta_info") if isinstance(data, dict) else None
        if not isinstance(meta, dict) or not isinstance(meta.get("output_token_logprobs"), list):
            raise ServedError("the answer has no meta_info.output_token_logprobs")
        chosen = meta["output_token_logprobs"]
        tops = meta.get("output_top_logprobs")
        if not isinstance(tops, list):
            raise BadAnswer(
                f"meta_info.output_top_logprobs is {shown_value(tops)}, not a list (top_logprobs_num was sent)"
            )
        steps = []
        for index, (entry, top) in enumerate(zip(chosen, tops)):
            logprob, token_id = _pair(entry, f"meta_info.output_token_logprobs[{index}]")
            if not isinstance(top, list):
                raise BadAnswer(f"meta_info.output_top_logprobs[{index}] is {shown_value(top)}, not a list")
            pairs = [_pair(t, f"meta_info.output_top_logprobs[{index}][{r}]") for r, t in enumerate(top)]
            steps.append((token_id, logprob, [(i, lp) for lp, i in pairs]))
        try:
            renormalised = _renormalised(steps)
        except (TypeError, ValueError):  # not numbers: check_answer says which field
            renormalised = False
        if renormalised:
            raise ServedError(SGLANG_RENORMALISED)
        finish = meta.get("finish_reason")
        return Parsed(
            steps,
            finish.get("type") if isinstance(finish, dict) else finish,
            token="meta_info.output_token_logprobs[{i}][1]",
            logprob="meta_info.output_token_logprobs[{i}][0]",
            top="meta_info.output_top_logprobs[{i}]",
            columns={"output_token_logprobs": len(chosen), "output_top_logprobs": len(tops)},
        )

    def tokenize(self, model: str, text: str) -> Request:
        body = {
            "text": text,
            "sampling_params": {**NEUTRAL, "max_new_tokens": 1},
            "return_logprob": True,
            "logprob_start_len": 0,
        }
        return Request("/generate", body)

    def parse_tokens(self, data: Any) -> tuple[Any, str]:
        meta = data.get("meta_info") if isinstance(data, dict) else None
        entries = meta.get("input_token_logprobs") if isinstance(meta, dict) else None
        if not isinstance(entries, list):
            raise ServedError("the answer has no meta_info.input_token_logprobs")
        where = "meta_info.input_token_logprobs"
        return [_pair(entry, f"{where}[{i}]")[1] for i, entry in enumerate(entries)], where


class LlamaCpp(Flavour):
    """llama.cpp server's POST /completion (token-array prompt, ``n_probs``).

    A token-array prompt gets no automatic BOS: the server runs exactly gendiff's ids. Its
    ``ignore_eos`` is a -inf bias on every end-of-generation token (:attr:`eos_is_a_bias`).
    Every sampler is sent neutral and the chain is only ``temperature`` (0: argmax, lowest id on
    ties), so server flags (``--dry-multiplier``, ``--xtc-probability``, ``--mirostat``, logit
    biases) cannot change the tokens; the settings each answer reports are checked against them.
    """

    name = "llamacpp"
    tested = True
    version_paths = ("/props",)
    report_paths = ("/props", "/v1/models")
    eos_is_a_bias = True
    SAMPLING = {
        "samplers": ["temperature"],
        "temperature": 0.0,
        "dynatemp_range": 0.0,
        "top_k": 0,  # 0 = off
        "top_p": 1.0,
        "min_p": 0.0,
        "typical_p": 1.0,
        "top_n_sigma": -1.0,
        "xtc_probability": 0.0,
        "repeat_penalty": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "dry_multiplier": 0.0,
        "mirostat": 0,
        "logit_bias": [],  # replaces any --logit-bias of the server's
        "ignore_eos": False,
        "backend_sampling": False,
        "post_sampling_probs": False,  # logprobs of the model's distribution, not the sampler's
        "seed": 0,
    }
    sorted_top = True

    def generate(self, model: str, prompt: list[int], settings: GenerationSettings) -> Request:
        body = {
            "prompt": prompt,
            "n_predict": settings.max_new_tokens,
            "n_probs": settings.top_k,
            "cache_prompt": False,  # a reused KV cache is a numerics variable of its own
            **self.SAMPLING,
        }
        return Request("/completion", body)

    def parse(self, data: Any) -> Parsed:
        probs = data.get("completion_probabilities") if isinstance(data, dict) else None
        if not isinstance(probs, list):
            raise ServedError("the answer has no completion_probabilities (a llama.cpp server older than 2024-12?)")
        _check_generation_settings(data.get("generation_settings"), self.SAMPLING)
        steps = []
        for index, entry in enumerate(probs):
            if not isinstance(entry, dict):
                raise BadAnswer(f"completion_probabilities[{index}] is {shown_value(entry)}, not an object")
            if "id" not in entry:
                raise ServedError(STRING_KEYED)
            top = entry.get("top_logprobs")
            if not isinstance(top, list):
                raise BadAnswer(f"completion_probabilities[{index}].top_logprobs is {shown_value(top)}, not a list")
            pairs = []
            for rank, candidate in enumerate(top):
                if not isinstance(candidate, dict):
                    where = f"completion_probabilities[{index}].top_logprobs[{rank}]"
                    raise BadAnswer(f"{where} is {shown_value(candidate)}, not an object")
                pairs.append((candidate.get("id"), candidate.get("logprob")))
            steps.append((entry["id"], entry.get("logprob"), pairs))
        return Parsed(
            steps,
            data.get("stop_type"),
            token="completion_probabilities[{i}].id",
            logprob="completion_probabilities[{i}].logprob",
            top="completion_probabilities[{i}].top_logprobs",
        )

    def tokenize(self, model: str, text: str) -> Request:
        return Request("/tokenize", {"content": text, "add_special": True})

    def parse_tokens(self, data: Any) -> tuple[Any, str]:
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list):
            raise ServedError("the /tokenize answer has no tokens")
        return [t.get("id") if isinstance(t, dict) else t for t in tokens], "tokens"

    def reported(self, answers: dict[str, Any]) -> dict[str, Any]:
        props = answers.get("/props")
        record = _pick(props, ("model_path", "model_ftype", "total_slots", "build_info"))
        if isinstance(props, dict):
            record.update(_pick(props.get("default_generation_settings"), ("n_ctx",)))
        meta = (_served_entry(answers.get("/v1/models")) or {}).get("meta")
        fields = ("ftype", "n_params", "size", "n_vocab", "n_ctx_train", "vocab_type")
        record.update(_pick(meta, fields, prefix="model."))
        return record


FLAVOURS: dict[str, Flavour] = {f.name: f for f in (OpenAICompletions(), SGLang(), LlamaCpp())}


def _first_choice(data: Any) -> dict[str, Any]:
    choices = data.get("choices") if isinstance(data, dict) else None
    if not choices or not isinstance(choices[0], dict):
        raise ServedError("the answer has no choices")
    return choices[0]


def _pair(entry: Any, where: str) -> tuple[Any, Any]:
    """SGLang's ``[logprob, token_id, text]`` entries: the first two, as sent."""
    if not isinstance(entry, (list, tuple)) or len(entry) < 2:
        raise BadAnswer(f"{where} is {shown_value(entry)}, not [logprob, token_id, …]")
    return entry[0], entry[1]


def _token_id(key: Any) -> int:
    """vLLM's ``token_id:123`` (return_tokens_as_token_ids) -> 123; a plain token string is refused."""
    if isinstance(key, str) and key.startswith("token_id:") and key[9:].lstrip("-").isdigit():
        return int(key[9:])
    raise ServedError(STRING_KEYED)


def _refuse_llamacpp_shape(logprobs: Any) -> None:
    """llama.cpp's /v1/completions answers logprobs as ``{"content": [...]}`` and ignores ``echo``."""
    if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
        raise ServedError("the answer has llama.cpp's logprobs shape (logprobs.content); use flavour=llamacpp")


def _llamacpp_logprob(value: Any) -> float:
    logprob = float(value)
    return -math.inf if logprob <= FLOAT_LOWEST else logprob


def _check_generation_settings(reported: Any, sent: dict[str, Any]) -> None:
    """Each setting gendiff sent must be what the server says it ran (a field it doesn't report
    is not checked)."""
    if not isinstance(reported, dict):
        return
    for key, value in sent.items():
        if key in reported and reported[key] != value:
            raise ServedError(f"the server ran with {key}={reported[key]!r} although gendiff sent {value!r}")


def _renormalised(steps: list[Step]) -> bool:
    """SGLang's shape after its top-k rewrite: the chosen token at logprob 0.0 and every other
    candidate at -inf (or, with one candidate asked, 0.0 at every step of four or more)."""
    for token_id, logprob, top in steps:
        others = [lp for candidate, lp in top if candidate != token_id]
        if logprob == 0.0 and others and all(lp == -math.inf for lp in others):
            return True
    single = all(len(top) <= 1 for _, _, top in steps)
    return single and len(steps) >= 4 and all(logprob == 0.0 for _, logprob, _ in steps)


def _served_entry(answer: Any) -> dict[str, Any] | None:
    """The first model of a GET /v1/models answer."""
    data = answer.get("data") if isinstance(answer, dict) else None
    return data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else None


def _pick(source: Any, keys: tuple[str, ...], prefix: str = "") -> dict[str, Any]:
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

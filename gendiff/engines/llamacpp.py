"""The ``llamacpp`` flavour: llama.cpp's server (``/completion`` with ``n_probs``, ``/tokenize``,
``/props``), tested against a real llama-server built from source (tests/test_llamacpp.py)."""

from __future__ import annotations

import math
from typing import Any

from gendiff.engines.answers import BadAnswer, Parsed, shown_value
from gendiff.engines.flavour import (
    FLOAT_LOWEST,
    STRING_KEYED,
    Flavour,
    Request,
    ServedError,
    pick_reported,
    served_entry,
)
from gendiff.engines.settings import GenerationSettings


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
    forced_refusal = (
        "llama.cpp's server returns no logprobs of the prompt's tokens (n_probs covers generated tokens only), "
        "so it can't be teacher-forced; leave it out of --stats and gendiff score (llama-perplexity "
        "--kl-divergence compares llama.cpp with itself)"
    )
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

    chat_steps = ("template", "tokenize")

    def chat_template(self, model: str, messages: list[dict[str, str]]) -> Request:
        return Request("/apply-template", {"messages": messages, "add_generation_prompt": True})

    def parse_chat_template(self, data: Any) -> str:
        prompt = data.get("prompt") if isinstance(data, dict) else None
        if not isinstance(prompt, str):
            raise ServedError("the /apply-template answer has no prompt text")
        return prompt

    def chat_tokenize(self, model: str, messages: list[dict[str, str]], rendered: str | None) -> Request:
        # as its chat endpoint tokenizes a rendered prompt: special tokens added and parsed
        return Request("/tokenize", {"content": rendered, "add_special": True, "parse_special": True})

    def parse_tokens(self, data: Any) -> tuple[Any, str]:
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list):
            raise ServedError("the /tokenize answer has no tokens")
        return [t.get("id") if isinstance(t, dict) else t for t in tokens], "tokens"

    def reported(self, answers: dict[str, Any]) -> dict[str, Any]:
        props = answers.get("/props")
        record = pick_reported(props, ("model_path", "model_ftype", "total_slots", "build_info"))
        if isinstance(props, dict):
            record.update(pick_reported(props.get("default_generation_settings"), ("n_ctx",)))
        meta = (served_entry(answers.get("/v1/models")) or {}).get("meta")
        fields = ("ftype", "n_params", "size", "n_vocab", "n_ctx_train", "vocab_type")
        record.update(pick_reported(meta, fields, prefix="model."))
        return record


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

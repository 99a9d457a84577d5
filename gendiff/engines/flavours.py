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
from typing import Any

from gendiff.engines.answers import BadAnswer, Parsed, Step, shown_value
from gendiff.engines.flavour import (
    NEUTRAL,
    NEUTRAL_OPENAI,
    SGLANG_RENORMALISED,
    Flavour,
    Request,
    ServedError,
    first_choice,
    pick_reported,
    refuse_llamacpp_shape,
    served_entry,
    token_id_of,
)
from gendiff.engines.llamacpp import LlamaCpp
from gendiff.engines.settings import GenerationSettings


class OpenAICompletions(Flavour):
    """POST /v1/completions with ``prompt: list[int]`` and ``return_tokens_as_token_ids`` (vLLM)."""

    name = "openai"
    tested = True
    version_paths = ("/version",)
    report_paths = ("/version", "/v1/models")

    def reported(self, answers: dict[str, Any]) -> dict[str, Any]:
        record = pick_reported(answers.get("/version"), ("version",))
        record.update(
            pick_reported(served_entry(answers.get("/v1/models")), ("root", "max_model_len"), prefix="model.")
        )
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
        choice = first_choice(data)
        tokens, chosen, tops = _logprob_lists(choice, "the answer")
        steps = []
        for index, (token, logprob, top) in enumerate(zip(tokens, chosen, tops)):
            if not isinstance(top, dict):
                raise BadAnswer(f"choices[0].logprobs.top_logprobs[{index}] is {shown_value(top)}, not an object")
            steps.append((token_id_of(token), logprob, [(token_id_of(key), value) for key, value in top.items()]))
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

    chat_steps = ("tokenize",)

    def chat_tokenize(self, model: str, messages: list[dict[str, str]], rendered: str | None) -> Request:
        # vLLM's /tokenize renders messages with the server's chat template, as its chat endpoint does
        body = {
            "model": model,
            "messages": messages,
            "add_generation_prompt": True,
            "continue_final_message": False,
            "add_special_tokens": False,
        }
        return Request("/tokenize", body)

    def parse_chat_tokens(self, data: Any) -> tuple[Any, str]:
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list):
            raise ServedError("the /tokenize answer has no tokens")
        return tokens, "tokens"

    def forced(self, model: str, ids: list[int], top_k: int) -> Request:
        # echo + logprobs: vLLM fills the echoed prompt's logprobs from prompt_logprobs=logprobs
        body = {
            "model": model,
            "prompt": ids,
            "max_tokens": 1,
            "echo": True,
            "logprobs": top_k,
            "return_tokens_as_token_ids": True,
            "skip_special_tokens": False,
            **NEUTRAL_OPENAI,
        }
        return Request("/v1/completions", body)

    def parse_forced(self, data: Any) -> tuple[list[Any], list[Any], list[Any]]:
        tokens, chosen, tops = _logprob_lists(first_choice(data), "the echoed prompt")
        pairs = []
        for index, top in enumerate(tops):
            if top is not None and not isinstance(top, dict):
                raise BadAnswer(f"choices[0].logprobs.top_logprobs[{index}] is {shown_value(top)}, not an object")
            pairs.append(None if top is None else [(token_id_of(key), value) for key, value in top.items()])
        return [token_id_of(t) for t in tokens], chosen, pairs

    def parse_tokens(self, data: Any) -> tuple[Any, str]:
        logprobs = first_choice(data).get("logprobs") or {}
        if isinstance(logprobs, dict):
            refuse_llamacpp_shape(logprobs)
        tokens = logprobs.get("tokens") if isinstance(logprobs, dict) else None
        if not isinstance(tokens, list):
            raise ServedError("the echoed prompt has no tokens")
        return [token_id_of(t) for t in tokens], "choices[0].logprobs.tokens"


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
        return pick_reported(info, self.REPORTED)

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

    def forced(self, model: str, ids: list[int], top_k: int) -> Request:
        # written from SGLang's docs (logprob_start_len=0: from the first input token); untested
        body = {
            "input_ids": ids,
            "sampling_params": {**NEUTRAL, "max_new_tokens": 1},
            "return_logprob": True,
            "logprob_start_len": 0,
            "top_logprobs_num": top_k,
            "return_text_in_logprobs": False,
        }
        return Request("/generate", body)

    def parse_forced(self, data: Any) -> tuple[list[Any], list[Any], list[Any]]:
        meta = data.get("meta_info") if isinstance(data, dict) else None
        chosen = meta.get("input_token_logprobs") if isinstance(meta, dict) else None
        tops = meta.get("input_top_logprobs") if isinstance(meta, dict) else None
        if not isinstance(chosen, list) or not isinstance(tops, list):
            raise ServedError("the answer has no meta_info.input_token_logprobs and input_top_logprobs")
        entries = [_pair(e, f"meta_info.input_token_logprobs[{i}]") for i, e in enumerate(chosen)]
        pairs: list[Any] = []
        for index, top in enumerate(tops):
            where = f"meta_info.input_top_logprobs[{index}]"
            if top is not None and not isinstance(top, list):
                raise BadAnswer(f"{where} is {shown_value(top)}, not a list")
            found = [_pair(t, f"{where}[{r}]") for r, t in enumerate(top or [])]
            pairs.append([(i, lp) for lp, i in found] if top else None)
        return [i for _, i in entries], [lp for lp, _ in entries], pairs

    def parse_tokens(self, data: Any) -> tuple[Any, str]:
        meta = data.get("meta_info") if isinstance(data, dict) else None
        entries = meta.get("input_token_logprobs") if isinstance(meta, dict) else None
        if not isinstance(entries, list):
            raise ServedError("the answer has no meta_info.input_token_logprobs")
        where = "meta_info.input_token_logprobs"
        return [_pair(entry, f"{where}[{i}]")[1] for i, entry in enumerate(entries)], where


FLAVOURS: dict[str, Flavour] = {f.name: f for f in (OpenAICompletions(), SGLang(), LlamaCpp())}


def _pair(entry: Any, where: str) -> tuple[Any, Any]:
    """SGLang's ``[logprob, token_id, text]`` entries: the first two, as sent."""
    if not isinstance(entry, (list, tuple)) or len(entry) < 2:
        raise BadAnswer(f"{where} is {shown_value(entry)}, not [logprob, token_id, …]")
    return entry[0], entry[1]


def _renormalised(steps: list[Step]) -> bool:
    """SGLang's shape after its top-k rewrite: the chosen token at logprob 0.0 and every other
    candidate at -inf (or, with one candidate asked, 0.0 at every step of four or more)."""
    for token_id, logprob, top in steps:
        others = [lp for candidate, lp in top if candidate != token_id]
        if logprob == 0.0 and others and all(lp == -math.inf for lp in others):
            return True
    single = all(len(top) <= 1 for _, _, top in steps)
    return single and len(steps) >= 4 and all(logprob == 0.0 for _, logprob, _ in steps)


def _logprob_lists(choice: dict[str, Any], what: str) -> tuple[list[Any], list[Any], list[Any]]:
    """A vLLM-shaped choice's ``logprobs``: its tokens, token_logprobs and top_logprobs lists (the
    shape checked, llama.cpp's refused); ``what`` names the answer in the error."""
    logprobs = choice.get("logprobs") or {}
    if not isinstance(logprobs, dict):
        raise BadAnswer(f"choices[0].logprobs is {shown_value(logprobs)}, not an object")
    refuse_llamacpp_shape(logprobs)
    tokens, chosen, tops = logprobs.get("tokens"), logprobs.get("token_logprobs"), logprobs.get("top_logprobs")
    if not isinstance(tokens, list) or not isinstance(chosen, list) or not isinstance(tops, list):
        raise ServedError(f"{what} has no logprobs (tokens, token_logprobs, top_logprobs)")
    return tokens, chosen, tops

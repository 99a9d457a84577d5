"""Load a tokenizer and model once per (path, dtype, attn, device); every HF engine shares them."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from gendiff.demo import demo_model_path
from gendiff.engines.modelcheck import check_config, check_weights, model_vocab_size, read_config
from gendiff.errors import EngineError, InputError

_lock = threading.Lock()
# one model built at a time: transformers sets torch's process-wide default dtype while it builds
# one, so two loads in two threads (the app's preload or conformance probe beside a run) mixed
# their dtypes: a model asked for in bfloat16 came back with float32 and float16 weights too
_building = threading.Lock()
_tokenizers: dict[str, PromptTokenizer] = {}
_models: dict[tuple[str, str, str, str], LoadedModel] = {}


@lru_cache(maxsize=16)
def model_fingerprint(model_dir: Path) -> str:
    """A cheap identity for a model folder, the same on every machine: sha256 over config.json,
    the tokenizer files, and each weight file's name, size and first 4 MiB. Two snapshots of
    "the same model" must share it (``gendiff compare`` checks). Computed once per folder and process."""
    import hashlib

    digest = hashlib.sha256()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        file = model_dir / name
        if file.is_file():
            digest.update(name.encode() + b"\0" + file.read_bytes())
    for file in sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.bin")):
        digest.update(f"{file.name}\0{file.stat().st_size}\0".encode())
        with file.open("rb") as handle:
            digest.update(handle.read(4 << 20))
    return "sha256:" + digest.hexdigest()[:16]


def resolve_model_path(path: str | Path | None) -> Path:
    """Check that ``path`` (default: the demo model) is a local causal-LM folder whose config and
    weight files are sound (no model load: see :mod:`gendiff.engines.modelcheck`)."""
    model_dir = model_folder(path)
    check_config(model_dir, read_config(model_dir))
    check_weights(model_dir)
    return model_dir.resolve()


def model_folder(path: str | Path | None) -> Path:
    """The model folder if it exists as one (cheap: no transformers import, so the app can ask
    before it opens); InputError in one line otherwise."""
    if path is not None and not str(path).strip():
        raise InputError("model folder name is empty; pass a local Hugging Face model folder (or leave --model out)")
    model_dir = demo_model_path() if path is None else Path(path).expanduser()
    if not model_dir.exists():
        raise InputError(f"model {model_dir}: no such directory; pass a local Hugging Face model folder to --model")
    if not model_dir.is_dir():
        raise InputError(f"model {model_dir}: not a directory; pass the folder that holds config.json")
    if (model_dir / "config.json").exists() and not (model_dir / "config.json").is_file():
        raise InputError(f"model {model_dir}: config.json is not a file; re-save the model")
    return model_dir


DEVICE_FORMS = "cpu, cuda or cuda:N"


def check_device(device: str) -> None:
    """Refuse a device this machine doesn't have, in one line (no raw torch message)."""
    import re

    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise InputError(f"device {device!r}: not a device gendiff runs on; use {DEVICE_FORMS}")
    if device == "cpu":
        return
    import torch

    if not torch.cuda.is_available():
        raise InputError(f"device {device}: CUDA is not available on this machine; use --device cpu")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise InputError(
            f"device {device}: this machine has {torch.cuda.device_count()} CUDA device(s) (cuda:0 …); pick one of them"
        )


@dataclass
class PromptTokenizer:
    """The one tokenizer of a run: text -> ids once, id -> visible text for every engine."""

    hf: Any
    path: str
    pad_token_id: int
    eos_token_id: int | None
    max_length: int | None
    model_vocab_size: int | None = None  # rows of the model's embedding: ids at or above it don't exist
    notes: list[str] = field(default_factory=list)
    _pieces: dict[int, str] = field(default_factory=dict)
    # engines of one run share this object from several threads (Session.run overlaps the served
    # ones): the piece cache and the Rust tokenizer (which refuses a concurrent borrow) go one at a time
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def vocab_size(self) -> int:
        return len(self.hf)

    def encode(self, text: str) -> list[int]:
        # verbose=False: our own check reports over-long prompts, as one line
        with self._lock:
            return list(self.hf(text, verbose=False)["input_ids"])

    def decode(self, token_ids: list[int]) -> str:
        """The text of ``token_ids`` without special tokens (what a server is sent to tokenize)."""
        with self._lock:
            return self.hf.decode(token_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def piece(self, token_id: int) -> str:
        """The decoded text of one token (cached: called for every top-k candidate)."""
        text = self._pieces.get(token_id)
        if text is None:
            with self._lock:
                text = self.hf.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False)
                self._pieces[token_id] = text
        return text


@dataclass
class LoadedModel:
    model: Any
    tokenizer: PromptTokenizer
    dtype: str
    attn: str
    device: str


def load_tokenizer(path: str | Path) -> PromptTokenizer:
    """Load (once) the tokenizer of a model folder; picks a safe pad token if it has none."""
    key = str(path)
    with _lock:
        if key in _tokenizers:
            return _tokenizers[key]
    from transformers import AutoConfig, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # library warnings would break the one-line errors and the TUI

    try:
        config = AutoConfig.from_pretrained(key, local_files_only=True)
    except Exception as exc:  # transformers raises many types here
        raise InputError(f"model {key}: config.json is invalid ({_first_line(exc)}); fix or re-save it") from None
    try:
        hf = AutoTokenizer.from_pretrained(key, local_files_only=True)
    except Exception as exc:  # transformers raises many types here
        raise InputError(f"model {key}: cannot load its tokenizer ({_first_line(exc)}); check the folder") from None
    notes = []
    vocab = model_vocab_size(config)
    eos = hf.eos_token_id if hf.eos_token_id is not None else getattr(config, "eos_token_id", None)
    if isinstance(eos, list):
        eos = eos[0] if eos else None
    pad = hf.pad_token_id
    if pad is None:
        # any id is safe for masked positions; eos is the usual choice, else 0
        pad = eos if eos is not None and (vocab is None or eos < vocab) else 0
        notes.append(f"tokenizer of {Path(key).name} has no pad token; using id {pad} for padding (always masked)")
    elif vocab is not None and pad >= vocab:
        # the embedding would be indexed out of range even at masked positions
        notes.append(
            f"pad token id {pad} of {Path(key).name} is beyond the model's {vocab} embedding rows; "
            "using id 0 for padding (always masked)"
        )
        pad = 0
    max_length = getattr(config, "max_position_embeddings", None)
    if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
        raise InputError(
            f"model {key}: config.json max_position_embeddings is {max_length!r}; it must be a positive whole number"
        )
    tokenizer = PromptTokenizer(
        hf=hf,
        path=key,
        pad_token_id=int(pad),
        eos_token_id=eos,
        max_length=max_length,
        model_vocab_size=vocab,
        notes=notes,
    )
    with _lock:
        return _tokenizers.setdefault(key, tokenizer)


def load_model(path: str | Path, dtype: str = "float32", attn: str = "sdpa", device: str = "cpu") -> LoadedModel:
    """Load (once per path, dtype, attention implementation and device) a causal LM in eval mode."""
    key = (str(path), dtype, attn, device)
    with _lock:
        cached = _models.get(key)
    if cached is not None:
        return cached
    with _building:
        with _lock:
            cached = _models.get(key)  # built by another thread while this one waited
        return cached if cached is not None else _build(key)


def _build(key: tuple[str, str, str, str]) -> LoadedModel:
    """Load ``key``'s model (the caller holds ``_building``), its dtype checked, and cache it."""
    path, dtype, attn, device = key
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # its bar would scribble over the TUI and the CLI summary

    tokenizer = load_tokenizer(path)
    check_device(device)
    try:
        model, info = _from_pretrained(path, dtype, attn)
    except (MemoryError, torch.OutOfMemoryError) as exc:
        raise EngineError(f"model {path}: out of memory while loading it ({_first_line(exc)})") from None
    except Exception as exc:  # the folder passed the up-front checks; what transformers still refuses is the folder's
        if "ignore_mismatched_sizes" in str(exc):
            _name_mismatched_weights(path, dtype, attn)
        raise InputError(
            f"model {path}: cannot load it as a causal LM ({_first_line(exc)}); check the folder"
        ) from None
    check_loading_info(path, type(model).__name__, info)
    wanted, kept = getattr(torch, dtype), getattr(model, "_keep_in_fp32_modules", None) or ()
    wrong = [
        (name, p.dtype)
        for name, p in model.named_parameters()
        if p.is_floating_point() and p.dtype != wanted and not any(k in name for k in kept)
    ]
    if wrong:  # the run would record one dtype and compute in another
        raise EngineError(f"model {path}: asked for {dtype}, but {wrong[0][0]} loaded as {wrong[0][1]}; run it again")
    model.to(device).eval()
    loaded = LoadedModel(model=model, tokenizer=tokenizer, dtype=dtype, attn=attn, device=device)
    with _lock:
        return _models.setdefault(key, loaded)


def is_loaded(path: str | Path, dtype: str, attn: str, device: str) -> bool:
    """True when :func:`load_model` already holds this (path, dtype, attention, device)."""
    with _lock:
        return (str(path), dtype, attn, device) in _models


def release_model(path: str | Path, dtype: str, attn: str, device: str) -> None:
    """Drop one loaded model from the cache (the conformance probe's float32 copy after its check),
    so its memory is freed once nothing else holds it."""
    with _lock:
        _models.pop((str(path), dtype, attn, device), None)


def check_loading_info(path: str | Path, class_name: str, info: dict[str, Any]) -> None:
    """Refuse a model whose checkpoint doesn't fit its class: missing weights would be randomly
    initialised, so its output would be reported as if it were the model's."""
    problems = []
    for key, what in (
        ("missing_keys", "missing from the checkpoint (they would be random)"),
        ("unexpected_keys", "unexpected (in the checkpoint, not in the model)"),
        ("mismatched_keys", "of the wrong shape"),
    ):
        keys = sorted(str(k if isinstance(k, str) else k[0]) for k in info.get(key) or [])
        if keys:
            problems.append(f"{len(keys)} weights {what} (e.g. {keys[0]})")
    if problems:
        hint = (
            "the sizes in config.json (hidden_size, intermediate_size, vocab_size, …) don't match the weights"
            if info.get("mismatched_keys") and not (info.get("missing_keys") or info.get("unexpected_keys"))
            else "check model_type/architectures in config.json"
        )
        raise InputError(
            f"model {path}: its weights don't fit {class_name}: {'; '.join(problems)}; {hint}, or re-save the model"
        )


def _name_mismatched_weights(path: str | Path, dtype: str, attn: str) -> None:
    """transformers' own message points at a report we silence: load again, tolerating the
    mismatch, only to name the weights (this path always ends in InputError)."""
    try:
        model, info = _from_pretrained(path, dtype, attn, ignore_mismatched_sizes=True)
    except Exception:  # noqa: BLE001 — fall back to transformers' message
        return
    check_loading_info(path, type(model).__name__, info)


def _from_pretrained(path: str | Path, dtype: str, attn: str, **extra: Any) -> tuple[Any, dict[str, Any]]:
    """transformers' local load of the folder as a causal LM: (model, its loading info)."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        str(path),
        dtype=getattr(torch, dtype),
        attn_implementation=attn,
        local_files_only=True,
        output_loading_info=True,
        **extra,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

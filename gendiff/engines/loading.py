"""Load a tokenizer and model once per (path, dtype, attn, device); every HF engine shares them."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from gendiff.errors import GendiffError

_lock = threading.Lock()
_tokenizers: dict[str, PromptTokenizer] = {}
_models: dict[tuple[str, str, str, str], LoadedModel] = {}


def demo_model_path() -> Path:
    """The model shipped inside the package (``gendiff/demo_model``)."""
    return Path(str(resources.files("gendiff") / "demo_model"))


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
    """Check that ``path`` (default: the demo model) is a local causal-LM directory."""
    model_dir = demo_model_path() if path is None else Path(path).expanduser()
    if not model_dir.exists():
        raise GendiffError(f"model {model_dir}: no such directory; pass a local Hugging Face model folder to --model")
    if not model_dir.is_dir():
        raise GendiffError(f"model {model_dir}: not a directory; pass the folder that holds config.json")
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise GendiffError(
            f"model {model_dir}: no config.json; pass a Hugging Face model folder (save_pretrained output)"
        )
    try:
        config = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise GendiffError(f"model {model_dir}: config.json is unreadable ({exc}); re-save the model") from None
    architectures = config.get("architectures") or []
    if not any(str(a).endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        found = ", ".join(architectures) or "none listed"
        raise GendiffError(
            f"model {model_dir}: not a causal language model (architectures: {found}); gendiff needs a *ForCausalLM"
        )
    return model_dir.resolve()


@dataclass
class PromptTokenizer:
    """The one tokenizer of a run: text -> ids once, id -> visible text for every engine."""

    hf: Any
    path: str
    pad_token_id: int
    eos_token_id: int | None
    max_length: int | None
    notes: list[str] = field(default_factory=list)
    _pieces: dict[int, str] = field(default_factory=dict)

    @property
    def vocab_size(self) -> int:
        return len(self.hf)

    def encode(self, text: str) -> list[int]:
        # verbose=False: our own check reports over-long prompts, as one line
        return list(self.hf(text, verbose=False)["input_ids"])

    def piece(self, token_id: int) -> str:
        """The decoded text of one token (cached: called for every top-k candidate)."""
        text = self._pieces.get(token_id)
        if text is None:
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
        hf = AutoTokenizer.from_pretrained(key, local_files_only=True)
        config = AutoConfig.from_pretrained(key, local_files_only=True)
    except Exception as exc:  # transformers raises many types here
        raise GendiffError(f"model {key}: cannot load its tokenizer ({_first_line(exc)}); check the folder") from None
    notes = []
    eos = hf.eos_token_id if hf.eos_token_id is not None else getattr(config, "eos_token_id", None)
    if isinstance(eos, list):
        eos = eos[0] if eos else None
    pad = hf.pad_token_id
    if pad is None:
        # any id is safe for masked positions; eos is the usual choice, else 0
        pad = eos if eos is not None else 0
        notes.append(f"tokenizer of {Path(key).name} has no pad token; using id {pad} for padding (always masked)")
    max_length = getattr(config, "max_position_embeddings", None)
    tokenizer = PromptTokenizer(
        hf=hf, path=key, pad_token_id=int(pad), eos_token_id=eos, max_length=max_length, notes=notes
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
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # its bar would scribble over the TUI and the CLI summary

    tokenizer = load_tokenizer(path)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise GendiffError(f"device {device}: CUDA is not available on this machine; use --device cpu")
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(path), dtype=getattr(torch, dtype), attn_implementation=attn, local_files_only=True
        )
    except Exception as exc:
        raise GendiffError(f"model {path}: cannot load it as a causal LM ({_first_line(exc)})") from None
    model.to(device).eval()
    loaded = LoadedModel(model=model, tokenizer=tokenizer, dtype=dtype, attn=attn, device=device)
    with _lock:
        return _models.setdefault(key, loaded)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

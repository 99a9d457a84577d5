"""Checks on a model folder that need no model load: config.json and the weight files' headers.

They run before any engine starts, so a bad folder is one ``gendiff: error:`` line (exit 2)
instead of a failed run. What only a load can tell (weights that don't fit the architecture)
is checked by :func:`gendiff.engines.loading.load_model` from transformers' loading info.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path
from typing import Any

from gendiff.errors import InputError

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PYTORCH_BIN = "pytorch_model.bin"
PYTORCH_INDEX = "pytorch_model.bin.index.json"
# bytes per element of each safetensors dtype
_ITEMSIZE = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
_MAX_HEADER = 100 << 20  # the safetensors format's own limit


def read_config(model_dir: Path) -> dict[str, Any]:
    """config.json as a dict; InputError if it is unreadable or not a JSON object."""
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise InputError(
            f"model {model_dir}: no config.json; pass a Hugging Face model folder (save_pretrained output)"
        )
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"model {model_dir}: config.json is unreadable ({exc}); re-save the model") from None
    if not isinstance(config, dict):
        raise InputError(
            f"model {model_dir}: config.json holds a JSON {_json_kind(config)}, not an object; "
            "re-save the model (save_pretrained writes an object)"
        )
    return config


def check_config(model_dir: Path, config: dict[str, Any]) -> None:
    """A causal LM whose ``architectures`` agrees with ``model_type`` (the class transformers loads)."""
    architectures = config.get("architectures") or []
    if not isinstance(architectures, list) or not all(isinstance(a, str) for a in architectures):
        raise InputError(
            f"model {model_dir}: config.json 'architectures' must be a list of class names "
            f'(e.g. ["LlamaForCausalLM"]), found {architectures!r}'
        )
    if not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        found = ", ".join(architectures) or "none listed"
        raise InputError(
            f"model {model_dir}: not a causal language model (architectures: {found}); gendiff needs a *ForCausalLM"
        )
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise InputError(
            f"model {model_dir}: config.json has no 'model_type'; add the one of its architecture (e.g. \"llama\")"
        )
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    loaded = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type)
    if loaded is None:
        raise InputError(
            f"model {model_dir}: model_type {model_type!r} is not a causal LM this transformers knows; "
            "check config.json or upgrade transformers"
        )
    known = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    named = [a for a in architectures if a in known]
    if named and loaded not in architectures:
        raise InputError(
            f"model {model_dir}: config.json says architectures {named[0]} but model_type {model_type!r}, "
            f"which transformers loads as {loaded}; fix model_type or architectures so that they agree"
        )


def check_weights(model_dir: Path) -> list[Path]:
    """The weight files transformers will read, each checked to be complete; InputError if
    there are none, or one is empty, truncated, corrupt or missing from its index."""
    index = next((model_dir / n for n in (SAFETENSORS_INDEX, PYTORCH_INDEX) if (model_dir / n).is_file()), None)
    if (model_dir / SAFETENSORS).is_file():
        files = [model_dir / SAFETENSORS]
    elif index is not None and index.name == SAFETENSORS_INDEX:
        files = _indexed_files(model_dir, index)
    elif (model_dir / PYTORCH_BIN).is_file():
        files = [model_dir / PYTORCH_BIN]
    elif index is not None:
        files = _indexed_files(model_dir, index)
    else:
        raise InputError(f"model {model_dir}: no weights ({SAFETENSORS} or {PYTORCH_BIN}); copy the whole model folder")
    for file in files:
        if file.suffix == ".safetensors":
            safetensors_header(file)
        else:
            _check_pickle(file)
    return files


def _indexed_files(model_dir: Path, index: Path) -> list[Path]:
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
        weight_map = data["weight_map"]
        names = sorted(set(weight_map.values()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise InputError(f"model {model_dir}: {index.name} is not a valid weight index; re-save the model") from None
    missing = [n for n in names if not isinstance(n, str) or not (model_dir / n).is_file()]
    if missing:
        raise InputError(
            f"model {model_dir}: {index.name} names {len(missing)} weight file(s) that are not there "
            f"(e.g. {missing[0]}); copy the whole model folder"
        )
    return [model_dir / n for n in names]


def safetensors_header(file: Path) -> dict[str, Any]:
    """The tensor table of a .safetensors file, checked against the file's size: catches an
    empty, truncated or corrupt file without reading the tensors."""
    problem = f"model {file.parent}: weights file {file.name}"
    size = file.stat().st_size
    if size == 0:
        raise InputError(f"{problem} is empty; copy it again")
    if size < 8:
        raise InputError(f"{problem} is truncated ({size} bytes); copy it again")
    with file.open("rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        if length > min(size - 8, _MAX_HEADER):
            raise InputError(f"{problem} is corrupt or truncated (its header claims {length} bytes); copy it again")
        raw = handle.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(f"{problem} is corrupt (unreadable header); copy it again") from None
    if not isinstance(header, dict):
        raise InputError(f"{problem} is corrupt (its header is not a table); copy it again")
    data_size = size - 8 - length
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = entry["data_offsets"]
            count = math.prod(int(n) for n in entry["shape"])
            expected = count * _ITEMSIZE.get(entry["dtype"], 0)
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{problem} is corrupt (tensor {name!r} has a bad entry); copy it again") from None
        if end > data_size:
            raise InputError(
                f"{problem} is truncated ({size} bytes; tensor {name!r} ends at byte {8 + length + end}); copy it again"
            )
        if begin > end or (entry["dtype"] in _ITEMSIZE and end - begin != expected):
            raise InputError(f"{problem} is corrupt (tensor {name!r} has the wrong size); copy it again")
    return header


def _check_pickle(file: Path) -> None:
    problem = f"model {file.parent}: weights file {file.name}"
    size = file.stat().st_size
    if size == 0:
        raise InputError(f"{problem} is empty; copy it again")
    with file.open("rb") as handle:
        start = handle.read(2)
    # torch.save writes a zip (its central directory is at the end: a truncated copy has none);
    # torch < 1.6 wrote a bare pickle (protocol 2+ starts with 0x80)
    if not zipfile.is_zipfile(file) and start[:1] != b"\x80":
        raise InputError(f"{problem} is corrupt or truncated (not a PyTorch checkpoint); copy it again")


def model_vocab_size(config: Any) -> int | None:
    """Rows of the model's input embedding, from a transformers config (text config if nested)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    size = getattr(text, "vocab_size", None)
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None


def _json_kind(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )

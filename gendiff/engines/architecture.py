"""What gendiff's own decode loops need to know about a model architecture, read from its config.

:func:`architecture_of` reads a model folder's ``config.json`` (no weights) into
:class:`Architecture`: its attention layer kinds (full / sliding window, as transformers' own
cache sees them), the window, whether positions come from ALiBi biases, whether its
transformers class has sdpa attention, and whether its decoder accepts one prepared mask per
layer kind. The HF engines turn these facts into up-front refusals, one line each, before any
model work (see ``HFEngine.refusal``).
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

FULL = "full_attention"
SLIDING = "sliding_attention"


@dataclass(frozen=True)
class Architecture:
    model_type: str
    class_name: str
    layer_kinds: tuple[str, ...]  # per decoder layer: FULL, SLIDING, or another transformers layer type
    sliding_window: int | None
    alibi: bool
    supports_sdpa: bool | None  # None: unknown (remote code)
    accepts_mask_mapping: bool  # decoder takes {layer kind: 4D mask} as its attention_mask

    @property
    def name(self) -> str:
        return f"{self.model_type} ({self.class_name})"

    @property
    def sliding(self) -> bool:
        return SLIDING in self.layer_kinds

    @property
    def mixed(self) -> bool:
        return len(set(self.layer_kinds)) > 1

    def unsupported_layer_kinds(self) -> list[str]:
        return sorted(set(self.layer_kinds) - {FULL, SLIDING})


def transformers_version() -> str:
    import transformers

    return transformers.__version__


@lru_cache(maxsize=32)
def architecture_of(model_dir: str) -> Architecture | None:
    """The facts for the model in ``model_dir``; None when its config can't be read (loading says why)."""
    from transformers import AutoConfig
    from transformers.cache_utils import get_layer_types_and_kwargs

    try:
        config = AutoConfig.from_pretrained(str(Path(model_dir)), local_files_only=True)
        text = config.get_text_config(decoder=True)
        kinds, _ = get_layer_types_and_kwargs(text)
    except Exception:  # unreadable or unusual configs: loading reports them in its own words
        return None
    model_class = _causal_lm_class(config)
    class_name = model_class.__name__ if model_class is not None else (config.architectures or ["?"])[0]
    return Architecture(
        model_type=config.model_type,
        class_name=class_name,
        layer_kinds=tuple(kinds),
        sliding_window=getattr(text, "sliding_window", None),
        alibi=_uses_alibi(text),
        supports_sdpa=None if model_class is None else bool(getattr(model_class, "_supports_sdpa", False)),
        accepts_mask_mapping=model_class is not None and _accepts_mask_mapping(model_class),
    )


def _causal_lm_class(config: object) -> type | None:
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    name = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(getattr(config, "model_type", ""))
    if isinstance(name, (tuple, list)):
        name = name[0]
    return getattr(transformers, name, None) if name else None


def _uses_alibi(config: object) -> bool:
    # bloom always; falcon and mpt by a flag; others by position_embedding_type
    if getattr(config, "model_type", "") == "bloom":
        return True
    if getattr(config, "alibi", False) is True:
        return True
    attn_config = getattr(config, "attn_config", None)
    if getattr(attn_config, "alibi", False) is True:
        return True
    return getattr(config, "position_embedding_type", None) == "alibi"


def _accepts_mask_mapping(model_class: type) -> bool:
    """True when the decoder's forward uses an ``attention_mask`` dict as the per-layer-kind masks."""
    module = sys.modules.get(model_class.__module__)
    try:
        source = inspect.getsource(module) if module is not None else ""
    except (OSError, TypeError):
        return False
    return "causal_mask_mapping := attention_mask, dict" in source

"""What gendiff's own decode loops need to know about a model architecture, read from its config.

:func:`architecture_of` reads a model folder's ``config.json`` (no weights) into
:class:`Architecture`: its layer kinds (full / sliding-window attention as transformers' own
cache sees them, and the config's own words where it has them: GPT-Neo's ``attention_types``,
``layers_block_type``'s recurrent blocks), the window, whether positions come from ALiBi
biases, what its transformers class carries from token to token (a KV cache, a recurrent
state, nothing), whether it has sdpa attention, and whether its decoder accepts one prepared
mask per layer kind. The HF engines turn these facts into up-front refusals, one line each,
before any model work (see ``HFEngine.refusal``). They are the fast path: what no config says
is found by running the engine on the model (:mod:`gendiff.engines.conformance`).
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

FULL = "full_attention"
SLIDING = "sliding_attention"
RECURRENT = "recurrent"  # a state carried from token to token (RWKV, xLSTM, recurrent blocks)

# what the model's transformers class carries between decode steps
KV_CACHE = "kv-cache"
RECURRENT_STATE = "recurrent-state"
NO_CACHE = "none"  # every step recomputes the whole sequence (openai-gpt)
UNKNOWN = "unknown"  # remote code: the class isn't known up front


@dataclass(frozen=True)
class Architecture:
    model_type: str
    class_name: str
    layer_kinds: tuple[str, ...]  # per decoder layer: FULL, SLIDING, or another transformers layer type
    sliding_window: int | None
    alibi: bool
    supports_sdpa: bool | None  # None: unknown (remote code)
    accepts_mask_mapping: bool  # decoder takes {layer kind: 4D mask} as its attention_mask
    cache: str = KV_CACHE  # KV_CACHE, RECURRENT_STATE, NO_CACHE or UNKNOWN
    window_by_slot: bool = False  # the model applies its window itself, by cache slot (GPT-Neo's local layers)
    windows: tuple[int, ...] = ()  # every window the config names, in any words (the probe crosses them)

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

    @property
    def attention_only(self) -> bool:
        """Every layer is attention that a padding mask can hide pads from (no recurrent or
        convolutional state for pads to leak into)."""
        return not self.unsupported_layer_kinds() and self.cache in (KV_CACHE, NO_CACHE)

    def safe_engines(self, differing: frozenset[str] = frozenset()) -> str:
        """The built-in engines a refusal may recommend on this model: hf-single always (no
        padding at all); hf-left only on attention-only models, where its padding is masked, and
        not once the conformance probe found it to differ here (``differing``)."""
        return "hf-single or hf-left" if self.attention_only and "hf-left" not in differing else "hf-single"


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
    cache = _cache_kind(model_class)
    kinds, window, by_slot = _own_words(text, list(kinds), getattr(text, "sliding_window", None))
    if cache == RECURRENT_STATE and not (set(kinds) - {FULL, SLIDING}):
        # transformers reads "full attention" for any config without layer types (RWKV, xLSTM)
        kinds = [RECURRENT] * len(kinds)
    return Architecture(
        model_type=config.model_type,
        class_name=class_name,
        layer_kinds=tuple(kinds),
        sliding_window=window,
        alibi=_uses_alibi(text),
        supports_sdpa=None if model_class is None else bool(getattr(model_class, "_supports_sdpa", False)),
        accepts_mask_mapping=model_class is not None and _accepts_mask_mapping(model_class),
        cache=cache,
        window_by_slot=by_slot,
        windows=_window_words(text),
    )


def _own_words(text: object, kinds: list[str], window: int | None) -> tuple[list[str], int | None, bool]:
    """Layer kinds, window and window-by-slot where the config names them in its own words.

    GPT-Neo: ``attention_layers`` of ``global``/``local`` with ``window_size`` (its local layers
    apply a causal bias by cache slot, whatever mask is passed). ``layers_block_type``:
    per-layer block kinds of hybrid models (recurrent_gemma's ``recurrent`` blocks read as
    sliding attention in transformers' cache)."""
    attention_layers = getattr(text, "attention_layers", None)
    if isinstance(attention_layers, (list, tuple)) and attention_layers:
        local = [kind == "local" for kind in attention_layers]
        kinds = [SLIDING if is_local else FULL for is_local in local]
        return kinds, getattr(text, "window_size", None) if any(local) else window, any(local)
    blocks = getattr(text, "layers_block_type", None)
    if isinstance(blocks, (list, tuple)) and len(blocks) == len(kinds):
        kinds = [
            kind if block in ("attention", FULL, SLIDING) else RECURRENT if block == "recurrent" else str(block)
            for kind, block in zip(kinds, blocks)
        ]
    return kinds, window, False


def _window_words(text: object) -> tuple[int, ...]:
    """Every positive whole number the config keeps under a name with ``window`` in it
    (``sliding_window``, ``window_size``, ``attention_window_size``, …), smallest first."""
    values = {
        value
        for name, value in vars(text).items()
        if "window" in name.lower() and isinstance(value, int) and not isinstance(value, bool) and value > 0
    }
    return tuple(sorted(values))


def _cache_kind(model_class: type | None) -> str:
    """What the class's forward carries between decode steps, from its signature."""
    if model_class is None:
        return UNKNOWN
    try:
        parameters = inspect.signature(model_class.forward).parameters
    except (TypeError, ValueError):
        return UNKNOWN
    if "past_key_values" in parameters:
        return KV_CACHE
    if {"state", "cache_params", "mems"} & set(parameters):
        return RECURRENT_STATE
    return NO_CACHE


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

"""4D attention masks for gendiff's own decode loops (hf-right with a sliding window, packed).

Every key/value slot in the cache carries the sequence that owns it (-1 for padding) and its
index within that sequence. A query may see a key when both belong to the same sequence, the
key is not later than the query, and, on sliding-window layers, fewer than ``window`` tokens
back (transformers' own rule: ``q - k < window``). Because the rule reads each slot's own index
and not its physical place in the row, padding and packing never push a token out of a window.
"""

from __future__ import annotations

from typing import Any

from gendiff.engines.architecture import FULL, SLIDING, Architecture


def additive_mask(
    query_seq: Any, query_index: Any, key_seq: Any, key_index: Any, window: int | None, dtype: Any
) -> Any:
    """(batch, 1, q, k) additive mask: 0 where allowed, the dtype's minimum elsewhere.

    ``query_*``: (batch, q) tensors, ``key_*``: (batch, k) tensors of sequence ids and indices."""
    import torch

    allowed = (query_seq[:, :, None] == key_seq[:, None, :]) & (key_seq[:, None, :] >= 0)
    distance = query_index[:, :, None] - key_index[:, None, :]
    allowed &= distance >= 0
    if window is not None:
        allowed &= distance < window
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None]


def layer_masks(arch: Architecture, query_seq: Any, query_index: Any, key_seq: Any, key_index: Any, dtype: Any) -> Any:
    """The ``attention_mask`` to pass the model: one 4D mask, or ``{layer kind: mask}`` when its
    layers mix full and sliding attention."""
    masks = {
        kind: additive_mask(
            query_seq, query_index, key_seq, key_index, arch.sliding_window if kind == SLIDING else None, dtype
        )
        for kind in sorted(set(arch.layer_kinds))
        if kind in (FULL, SLIDING)
    }
    return masks if arch.mixed else next(iter(masks.values()))


def full_size_cache(model: Any) -> Any:
    """A DynamicCache whose sliding-window layers keep every slot: the window is the mask's job.

    transformers' sliding layers keep only the last ``window - 1`` physical slots, which with
    padding or packing are not the row's own last tokens."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

    cache = DynamicCache(config=model.config)
    for index, layer in enumerate(cache.layers):
        if isinstance(layer, DynamicSlidingWindowLayer):
            cache.layers[index] = DynamicLayer()
    return cache

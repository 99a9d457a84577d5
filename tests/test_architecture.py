"""What gendiff reads from a model's config.json (no weights, no model run): layer kinds in the
config's own words, what the class carries between steps, and the refusals they lead to."""

from __future__ import annotations

import pytest

from gendiff.engines.architecture import (
    FULL,
    KV_CACHE,
    NO_CACHE,
    RECURRENT,
    RECURRENT_STATE,
    SLIDING,
    architecture_of,
)
from gendiff.engines.hf import own_loop_refusal

# transformers config classes cost seconds to import: kept out of the fast tier
pytestmark = pytest.mark.slow


@pytest.fixture
def config_dir(tmp_path):
    """``config_dir(model_type, **fields) -> str``: a folder holding only that config.json."""
    from transformers import AutoConfig

    def make(model_type: str, **fields) -> str:
        folder = tmp_path / model_type
        AutoConfig.for_model(model_type, **fields).save_pretrained(folder)
        architecture_of.cache_clear()
        return str(folder)

    return make


def test_gpt_neo_local_attention_is_read_from_attention_types(config_dir):
    arch = architecture_of(
        config_dir("gpt_neo", num_layers=4, attention_types=[[["global", "local"], 2]], window_size=8)
    )
    assert arch.layer_kinds == (FULL, SLIDING, FULL, SLIDING)
    assert arch.sliding_window == 8 and arch.window_by_slot and arch.cache == KV_CACHE
    message = own_loop_refusal("hf-right", arch)
    assert "by cache slot" in message and "8 tokens" in message and message.endswith("use hf-single or hf-left")


def test_gpt_neo_with_global_layers_only_is_plain_attention(config_dir):
    arch = architecture_of(config_dir("gpt_neo", num_layers=2, attention_types=[[["global"], 2]]))
    assert arch.layer_kinds == (FULL, FULL) and not arch.window_by_slot
    assert own_loop_refusal("hf-right", arch) is None


@pytest.mark.parametrize("model_type", ["rwkv", "xlstm"])
def test_recurrent_models_without_layer_types_are_recurrent_not_full_attention(config_dir, model_type):
    arch = architecture_of(config_dir(model_type, num_hidden_layers=2))
    assert arch.cache == RECURRENT_STATE and set(arch.layer_kinds) == {RECURRENT}
    assert not arch.attention_only
    for label in ("hf-right", "packed"):
        message = own_loop_refusal(label, arch)
        assert "recurrent state" in message and message.endswith("; use hf-single")  # never hf-left


def test_recurrent_blocks_of_a_hybrid_are_read_from_layers_block_type(config_dir):
    # transformers' cache reads recurrent_gemma's layers as sliding attention
    arch = architecture_of(config_dir("recurrent_gemma", num_hidden_layers=3))
    assert RECURRENT in arch.layer_kinds and SLIDING in arch.layer_kinds
    assert own_loop_refusal("packed", arch).endswith("; use hf-single")


def test_a_model_without_kv_cache_is_refused_not_crashed(config_dir):
    arch = architecture_of(config_dir("openai-gpt", n_layer=2))
    assert arch.cache == NO_CACHE and arch.attention_only
    message = own_loop_refusal("hf-right", arch)
    assert "no KV cache" in message and message.endswith("use hf-single or hf-left")


def test_plain_attention_models_are_not_refused(config_dir):
    arch = architecture_of(config_dir("llama", num_hidden_layers=2))
    assert arch.cache == KV_CACHE and arch.attention_only and own_loop_refusal("packed", arch) is None

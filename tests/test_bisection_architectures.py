"""Bisection on architectures other than Llama: the decoder stack found whatever it is called,
each module labelled by what it computes (checked against the model's own modules), values
checked against hidden states computed here, and `gendiff run --bisect` on gpt2 and opt."""

import json

import pytest
import torch

from gendiff.cli.main import main
from gendiff.engines import create_engine, engine_names, parse_engine_spec
from gendiff.engines.loading import load_model, load_tokenizer
from gendiff.engines.probe import Probe
from gendiff.engines.settings import GenerationSettings
from gendiff.io.snapshots import load_snapshot, validate
from gendiff.run.diagnosis import bisect

pytestmark = pytest.mark.slow

SETTINGS = GenerationSettings(max_new_tokens=3, top_k=3)
PROMPTS = ["Once upon a time there was a", "The cat"]

# per architecture, modules of layer 0 (and outside the stack) and the role each must get
EXPECTED = {
    "gpt2": {
        "transformer.wte": "token embedding",
        "transformer.wpe": "position embedding",
        "transformer.h.0.ln_1": "input norm",
        "transformer.h.0.attn.c_attn": "fused q/k/v projection",
        "transformer.h.0.attn.c_proj": "attention output projection",
        "transformer.h.0.attn": "attention",
        "transformer.h.0.ln_2:input": "residual after attention",
        "transformer.h.0.ln_2": "pre-mlp norm",
        "transformer.h.0.mlp.c_fc": "mlp input projection",
        "transformer.h.0.mlp.c_proj": "mlp output projection",
        "transformer.h.0.mlp": "mlp",
        "transformer.h.0": "layer output",
        "transformer.ln_f": "final norm",
        "lm_head": "logits",
    },
    "opt": {
        "model.decoder.embed_tokens": "token embedding",
        "model.decoder.embed_positions": "position embedding",
        "model.decoder.layers.0.self_attn_layer_norm": "input norm",
        "model.decoder.layers.0.self_attn.q_proj": "query projection",
        "model.decoder.layers.0.self_attn.k_proj": "key projection",
        "model.decoder.layers.0.self_attn.v_proj": "value projection",
        "model.decoder.layers.0.self_attn.out_proj": "attention output projection",
        "model.decoder.layers.0.final_layer_norm:input": "residual after attention",
        "model.decoder.layers.0.final_layer_norm": "pre-mlp norm",
        "model.decoder.layers.0.fc1": "mlp input projection",
        "model.decoder.layers.0.fc2": "mlp output projection",
        "model.decoder.layers.0": "layer output",
        "model.decoder.final_layer_norm": "final norm",
    },
    "gpt_neox": {  # parallel residual: attention and MLP both read the layer input
        "gpt_neox.embed_in": "token embedding",
        "gpt_neox.layers.0.input_layernorm": "input norm",
        "gpt_neox.layers.0.attention.query_key_value": "fused q/k/v projection",
        "gpt_neox.layers.0.attention.dense": "attention output projection",
        "gpt_neox.layers.0.post_attention_layernorm": "pre-mlp norm (parallel branch)",
        "gpt_neox.layers.0.mlp.dense_h_to_4h": "mlp input projection",
        "gpt_neox.layers.0.mlp.dense_4h_to_h": "mlp output projection",
        "gpt_neox.layers.0": "layer output",
        "gpt_neox.final_layer_norm": "final norm",
    },
    "gemma2": {  # post-norm: the attention output is normalized before the residual add
        "model.layers.0.input_layernorm": "input norm",
        "model.layers.0.self_attn.q_proj": "query projection",
        "model.layers.0.self_attn.o_proj": "attention output projection",
        "model.layers.0.post_attention_layernorm": "post-attention norm",
        "model.layers.0.pre_feedforward_layernorm:input": "residual after attention",
        "model.layers.0.pre_feedforward_layernorm": "pre-mlp norm",
        "model.layers.0.mlp.gate_proj": "mlp gate projection",
        "model.layers.0.mlp.down_proj": "mlp down projection",
        "model.layers.0.post_feedforward_layernorm": "post-mlp norm",
        "model.layers.0": "layer output",
        "model.norm": "final norm",
    },
}


def loaded(folder, name, dtype="float32"):
    engine = create_engine(parse_engine_spec(name, {"dtype": dtype}, engine_names()), str(folder))
    engine.load()
    return engine


@pytest.mark.parametrize("arch", list(EXPECTED))
def test_bisection_labels_every_module_by_what_it_is(tiny_model_dir, arch):
    folder = tiny_model_dir(arch)
    ids = [load_tokenizer(folder).encode(p) for p in PROMPTS]
    ref, left = loaded(folder, "hf-single"), loaded(folder, "hf-left")
    ref_traces, left_traces = ref.generate(ids, SETTINGS), left.generate(ids, SETTINGS)
    step = 1
    result = bisect(ref, left, ids, 1, ref_traces[1], left_traces[1], step, SETTINGS)
    assert result.error is None
    roles = {m.name: m.role for m in result.modules}
    assert {name: roles.get(name) for name in EXPECTED[arch]} == EXPECTED[arch]
    model = ref.loaded.model
    own = dict(model.named_modules())
    assert all(m.name.removesuffix(":input") in own for m in result.modules)  # the model's own names
    layers = model.config.num_hidden_layers
    assert [m.layer for m in result.layer_outputs()] == list(range(layers))
    if arch == "gpt_neox":  # a parallel-residual layer has no residual stream between attention and MLP
        assert "residual after attention" not in roles.values()
    # one key/value source per layer (or two), each covering every position up to the divergent one
    assert sorted({kv.layer for kv in result.key_values}) == list(range(layers))
    assert result.position == len(ids[1]) + step - 1
    assert all(kv.positions == len(ids[1]) + step for kv in result.key_values)
    # earlier positions that part are traced to a module of the model, each position once
    assert all(s.position < result.position and s.name in own for s in result.position_splits)
    assert len({s.position for s in result.position_splits}) == len(result.position_splits)


def test_captured_values_match_hidden_states_computed_here_on_gpt2(tiny_model_dir):
    folder = tiny_model_dir("gpt2")
    ids = load_tokenizer(folder).encode(PROMPTS[0])
    engine = loaded(folder, "hf-single")
    stream = list(engine.generate([ids], SETTINGS)[0].token_ids)
    step = 2
    probe = Probe(0, step)
    engine.replay([ids], SETTINGS, {0: stream}, probe)
    model = engine.loaded.model
    sequence = torch.tensor([ids + stream[:step]])
    with torch.inference_mode():
        hidden = model(sequence, output_hidden_states=True).hidden_states
        # the residual after attention and the keys, written out with the model's own blocks
        block = model.transformer.h[0]
        attn = block.attn(block.ln_1(hidden[0]))[0]
        residual = hidden[0] + attn
        qkv = block.attn.c_attn(block.ln_1(hidden[0]))
    last = sequence.shape[1] - 1
    torch.testing.assert_close(probe.captured["transformer.h.0"], hidden[1][0, last], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(probe.captured["transformer.ln_f"], hidden[2][0, last], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(probe.captured["transformer.h.0.ln_2:input"], residual[0, last], rtol=1e-5, atol=1e-5)
    keys = probe.keys_values["transformer.h.0.attn.c_attn"]
    assert sorted(keys) == list(range(last + 1))
    for position, value in keys.items():
        torch.testing.assert_close(value, qkv[0, position], rtol=1e-5, atol=1e-5)


POSITIONS = {"gpt2": "transformer.wpe", "opt": "model.decoder.embed_positions"}


@pytest.mark.parametrize("arch", ["gpt2", "opt"])
def test_gendiff_run_bisect_names_a_module_and_writes_the_snapshot(tiny_model_dir, tmp_path, capsys, arch):
    """packed with positions running on across the row (the seed's "without reset") feeds the
    second prompt other absolute positions: the bisection must name the position embedding."""
    folder = tiny_model_dir(arch)
    prompts = tmp_path / "p.txt"
    prompts.write_text("Once upon a time there was a\nThe cat\n")
    out = tmp_path / "run.json"
    argv = ["run", "--quiet", "--model", str(folder), "--prompts", str(prompts), "--max-new-tokens", "4"]
    argv += ["--engines", "hf-single,packed:positions=continuous", "--bisect", "--json", str(out)]
    code = main(argv)
    printed = capsys.readouterr().out
    assert code == 0
    data = json.loads(out.read_text())
    validate(data, "test")
    first, second = (p["divergences"][0] for p in data["prompts"])
    assert first["reason"] == "identical" and first["bisection"] is None  # the first segment starts at 0
    assert second["reason"] == "token"
    b = second["bisection"]
    assert b["error"] is None and b["reproduced"]
    assert b["first_bitwise"] == POSITIONS[arch]  # the token embeddings before it are equal
    own = {name for name, _ in load_model(folder).model.named_modules()}
    assert all(m["name"].removesuffix(":input") in own for m in b["modules"])
    assert f"bisection: first differs at {POSITIONS[arch]} (position embedding" in printed
    assert "relative difference after each layer at position " in printed
    assert "earlier positions whose keys/values differ, of " in printed and ": L0 " in printed
    assert load_snapshot(out).divergences()[0].bisection.first_bitwise.name == POSITIONS[arch]


def test_a_failed_bisection_keeps_the_run_and_says_why(tiny_model_dir, tmp_path, capsys, monkeypatch):
    """A model the probe cannot read (here: one whose layer stack is not found) still gets its
    summary and snapshot; the bisection record carries the reason."""
    from gendiff.engines import probe

    def no_stack(model):
        raise probe.GendiffError(f"bisection: {type(model).__name__} has no list of decoder layers to probe")

    monkeypatch.setattr(probe, "decoder_layers", no_stack)
    prompts = tmp_path / "p.txt"
    prompts.write_text("Once upon a time there was a\nThe cat\n")
    out = tmp_path / "run.json"
    argv = ["run", "--quiet", "--model", str(tiny_model_dir("gpt2")), "--prompts", str(prompts)]
    argv += ["--max-new-tokens", "4", "--engines", "hf-single,packed:positions=continuous"]
    argv += ["--bisect", "--json", str(out)]
    code = main(argv)
    printed = capsys.readouterr().out
    assert code == 0
    assert "bisection: failed: GPT2LMHeadModel has no list of decoder layers to probe" in printed
    data = json.loads(out.read_text())
    validate(data, "test")
    token = [d for p in data["prompts"] for d in p["divergences"] if d["reason"] == "token"]
    assert token, "continuous positions make the second prompt diverge"
    d = token[0]
    assert d["bisection"]["error"] == "GPT2LMHeadModel has no list of decoder layers to probe"
    assert d["bisection"]["modules"] == [] and d["bisection"]["first_bitwise"] is None

"""The diagnosis records: round trips, older snapshots, and what the summary says (no model)."""

from gendiff.records.bisection import Bisection, KeyValueDiff, ModuleDiff, PositionDiff, PositionSplit
from gendiff.records.reconvergence import Reconvergence

BASE = dict(reference="hf-single", engine="hf-left", prompt_index=3, step=0, tolerance=1e-3)


def test_a_failed_bisection_says_why_and_round_trips():
    failed = Bisection(modules=(), reproduced=False, position=14, error="GPT2LMHeadModel has no layers", **BASE)
    assert failed.summary() == "failed: GPT2LMHeadModel has no layers"
    assert failed.first_bitwise is None and failed.layer_outputs() == []
    data = failed.to_dict()
    assert data["error"] == "GPT2LMHeadModel has no layers" and data["modules"] == []
    assert Bisection.from_dict(data) == failed


def test_a_failed_reconvergence_says_why_and_round_trips():
    failed = Reconvergence("hf-single", "hf-left", 3, 2, 0, (), False, error="RuntimeError: out of memory")
    assert failed.verdict == "failed" and failed.summary() == "failed: RuntimeError: out of memory"
    data = failed.to_dict()
    assert data["error"] == "RuntimeError: out of memory" and data["verdict"] == "failed"
    assert Reconvergence.from_dict(data) == failed
    # a record from before errors were kept loads as a record that ran
    data.pop("error")
    older = Reconvergence.from_dict({**data, "steps_checked": 5, "mismatches": [2, 3]})
    assert older.error is None and older.verdict == "lasting fork"


def test_modules_of_an_older_snapshot_get_their_roles_and_layers():
    old = [
        {"name": "embed_tokens", "equal": True, "rel_diff": 0.0, "max_abs_diff": 0.0},
        {"name": "layers.0.attn_residual", "equal": True, "rel_diff": 0.0, "max_abs_diff": 0.0},
        {"name": "layers.1.self_attn", "equal": False, "rel_diff": 2e-3, "max_abs_diff": 0.1},
        {"name": "layers.1", "equal": False, "rel_diff": 2e-3, "max_abs_diff": 0.1},
        {"name": "norm", "equal": False, "rel_diff": 3e-3, "max_abs_diff": 0.1},
    ]
    b = Bisection.from_dict({**BASE, "modules": old, "reproduced": True})
    assert [(m.role, m.layer) for m in b.modules] == [
        ("token embedding", None),
        ("residual after attention", 0),
        ("attention", 1),
        ("layer output", 1),
        ("final norm", None),
    ]
    assert b.summary().startswith("first differs at layers.1.self_attn (attention), relative difference 2.00e-03")
    assert b.key_values == () and b.position is None


def test_the_layer_by_position_view_and_the_notes():
    def module(name, role, layer, equal, rel=0.0):
        return ModuleDiff(name, equal, rel, rel, role, layer)

    modules = (
        module("model.layers.0.self_attn.q_proj", "query projection", 0, True),
        module("model.layers.0", "layer output", 0, True),
        module("model.layers.1.self_attn.q_proj", "query projection", 1, True),
        module("model.layers.1.self_attn.o_proj", "attention output projection", 1, False, 4e-4),
    )
    key_values = (
        KeyValueDiff(0, "model.layers.0.self_attn.k_proj", "key projection", 15, ()),
        KeyValueDiff(1, "model.layers.1.self_attn.k_proj", "key projection", 15, (PositionDiff(3, 2e-3, 0.1),)),
        KeyValueDiff(1, "model.layers.1.self_attn.v_proj", "value projection", 15, (PositionDiff(3, 1e-3, 0.1),)),
        # the divergent position itself (14) is not an *earlier* position
        KeyValueDiff(1, "model.layers.1.self_attn.q_proj", "query projection", 15, (PositionDiff(14, 5e-3, 0.1),)),
    )
    splits = (PositionSplit(3, "model.layers.0.self_attn.o_proj", "attention output projection", 0, 5e-4),)
    b = Bisection(modules=modules, reproduced=True, position=14, key_values=key_values, position_splits=splits, **BASE)
    assert {layer: [p.position for p in found] for layer, found in b.earlier_positions().items()} == {0: [], 1: [3]}
    assert b.earlier_positions()[1][0].rel_diff == 2e-3  # the larger of key and value
    head, legend, kv, split = b.summary_lines()
    assert head.startswith("first differs at model.layers.1.self_attn.o_proj (attention output projection)")
    assert legend == "positions count the prompt's and the generated tokens from 0: 0–14 are the prompt"  # step 0
    assert kv == "keys/values differ from layer 1 at 1 of 14 earlier positions (3), up to 2.00e-03 relative difference"
    assert split.startswith("earlier positions first differ at model.layers.0.self_attn.o_proj")
    assert split.endswith("the attention computation itself differs")  # layer 0's keys and values are equal
    assert Bisection.from_dict(b.to_dict()) == b

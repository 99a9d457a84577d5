"""The conformance probe on real tiny models: it refuses a deliberately broken decode loop that
every config rule lets through, clears a correct one (once: the verdict is cached), labels
transformers' own padding leak, and its verdict reaches the snapshot and the summary.

Each broken variant is first shown wrong by a computation written here (plain forward passes
of each prompt alone), so the probe's refusal is checked against something independent."""

from __future__ import annotations

import json

import pytest

from gendiff.engines import BUILTIN, create_engine, parse_engine_spec
from gendiff.engines import conformance as conformance_module
from gendiff.engines.conformance import cache_dir, clear_memo, probe_prompts, verify
from gendiff.engines.packed import Packed
from gendiff.engines.settings import GenerationSettings
from gendiff.errors import InputError
from gendiff.records.conformance import AGREES, DIFFERS

pytestmark = pytest.mark.slow


class PackedOffByOne(Packed):
    """packed with every decode step one position too far (the prefill is right); registered as
    ``packed-off-by-one`` (its name stays ``packed`` for the penalty tables)."""

    def forward_last(self, input_ids, attention_mask, position_ids, cache, rows, positions):
        decoding = input_ids.shape[-1] == len(rows)  # one new token per segment
        shifted = position_ids + 1 if decoding else position_ids
        return super().forward_last(input_ids, attention_mask, shifted, cache, rows, positions)


class PackedCrashing(Packed):
    def decode(self, builder):
        raise RuntimeError("Expected size for first two dimensions of batch2 tensor")


@pytest.fixture(autouse=True)
def fresh_verdicts(tmp_path, monkeypatch):
    """Each test starts with no verdict in this process and an empty cache of its own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    clear_memo()
    yield
    clear_memo()


@pytest.fixture
def registered(monkeypatch):
    """The test's engine classes, registered as built-ins (so `gendiff run --engines` finds them)."""
    monkeypatch.setitem(BUILTIN, "packed-off-by-one", f"{__name__}:PackedOffByOne")
    monkeypatch.setitem(BUILTIN, "packed-crashing", f"{__name__}:PackedCrashing")


def largest_difference_from_unpadded(engine, folder) -> float:
    """Independent of gendiff's probe: the engine's logits on the probe prompts against one plain
    forward pass of each prompt alone (float32, along the engine's own tokens)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    prompts = probe_prompts(str(folder))
    engine.load()
    traces = engine.generate(prompts, GenerationSettings(max_new_tokens=4, top_k=3, stop_at_eos=False))
    worst = 0.0
    with torch.inference_mode():
        for prompt, trace in zip(prompts, traces):
            ids = list(prompt) + [s.token_id for s in trace.steps[:-1]]
            logits = model(torch.tensor([ids])).logits[0]
            for index, step in enumerate(trace.steps):
                for candidate in step.top:
                    expected = float(logits[len(prompt) - 1 + index, candidate.token_id])
                    worst = max(worst, abs(candidate.logit - expected))
    return worst


def test_the_probe_refuses_a_broken_packed_loop_that_the_config_rules_let_through(tiny_model_dir, registered):
    folder = tiny_model_dir("llama")
    broken = create_engine(parse_engine_spec("packed-off-by-one"), str(folder))  # no config refusal
    assert largest_difference_from_unpadded(broken, folder) > 1e-2  # it really is wrong
    correct = create_engine(parse_engine_spec("packed"), str(folder))
    assert largest_difference_from_unpadded(correct, folder) < 1e-4

    with pytest.raises(InputError) as info:
        verify(broken)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("engine packed-off-by-one: on model llama (LlamaForCausalLM) its decode loop differs")
    assert "probe prompt" in message and "step " in message and "max |logit diff|" in message
    assert message.endswith("; use hf-single")


def test_gendiff_run_refuses_it_with_one_line_and_exit_2(tiny_model_dir, registered, capsys):
    from gendiff.cli.main import main

    folder = tiny_model_dir("llama")
    capsys.readouterr()
    code = main(["run", "--model", str(folder), "--engines", "hf-single,packed-off-by-one", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("gendiff: error: engine packed-off-by-one: on model llama")


def test_a_crash_in_the_probe_is_a_refusal_naming_the_error_and_is_not_cached(tiny_model_dir, registered):
    folder = tiny_model_dir("llama")
    engine = create_engine(parse_engine_spec("packed-crashing"), str(folder))
    with pytest.raises(InputError) as info:
        verify(engine)
    assert "its decode loop failed in gendiff's check (the probe failed: RuntimeError: Expected size" in str(info.value)
    assert not list(cache_dir().glob("*.json"))  # a crash may be the machine's: probed again next time


def test_a_correct_engine_passes_and_the_cache_is_hit_the_second_time(tiny_model_dir, monkeypatch):
    folder = tiny_model_dir("llama")
    engine = create_engine(parse_engine_spec("hf-right:batch_size=2"), str(folder))
    first = verify(engine)
    assert first.status == AGREES and not first.cached and first.max_logit_diff < 1e-4
    files = list(cache_dir().glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["verdict"]["status"] == AGREES

    clear_memo()  # a new process: only the disk cache is left

    def no_probe(*args, **kwargs):
        raise AssertionError("probed again: the cache was not used")

    monkeypatch.setattr(conformance_module, "probe", no_probe)
    again = create_engine(parse_engine_spec("hf-right:batch_size=8"), str(folder))  # batch size: same key
    second = verify(again)
    assert second.cached and second.status == AGREES and second.max_logit_diff == first.max_logit_diff


def test_new_weights_are_probed_again(tiny_model_dir, tmp_path, monkeypatch):
    import shutil

    folder = tmp_path / "llama"
    shutil.copytree(tiny_model_dir("llama"), folder)
    verify(create_engine(parse_engine_spec("packed"), str(folder)))
    weights = next(folder.glob("*.safetensors"))
    stat = weights.stat()
    import os

    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # re-saved: same bytes, new mtime
    clear_memo()
    calls = []
    real = conformance_module.probe
    monkeypatch.setattr(conformance_module, "probe", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert verify(create_engine(parse_engine_spec("packed"), str(folder))).status == AGREES
    assert calls == [1]


def test_deliberate_options_are_probed_at_their_default(tiny_model_dir):
    # continuous positions are the experiment, not a bug: the loop is checked with reset positions
    folder = tiny_model_dir("llama")
    verdict = verify(create_engine(parse_engine_spec("packed:positions=continuous,order=reversed"), str(folder)))
    assert verdict.status == AGREES and verdict.options == {"order": "reversed"}


def test_the_verdict_is_in_the_snapshot_engine_entry_and_every_trace(tiny_model_dir, tmp_path, capsys):
    from gendiff.cli.main import main

    folder = tiny_model_dir("llama")
    out = tmp_path / "run.json"
    code = main(
        ["run", "--model", str(folder), "--engines", "hf-single,hf-right,packed", "--quiet", "--json", str(out)]
    )
    assert code in (0, 1)
    data = json.loads(out.read_text())
    entries = {e["label"]: e for e in data["engines"]}
    assert entries["hf-single"]["conformance"] is None  # transformers' unpadded generate: nothing to check
    for label in ("hf-right", "packed"):
        assert entries[label]["conformance"]["status"] == AGREES
        assert entries[label]["conformance"]["mode"] == "refuse"
        for prompt in data["prompts"]:
            assert prompt["traces"][label]["settings"]["conformance"]["status"] == AGREES


def plain_loop_mismatch(engine, folder, prompts) -> float:
    """The test's own check: the engine's top-k logits on ``prompts`` against one plain forward
    pass of each prompt alone; the largest |difference|."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    engine.load()
    traces = engine.generate(prompts, GenerationSettings(max_new_tokens=4, top_k=3, stop_at_eos=False))
    worst = 0.0
    with torch.inference_mode():
        for prompt, trace in zip(prompts, traces):
            logits = model(torch.tensor([list(prompt) + [s.token_id for s in trace.steps[:-1]]])).logits[0]
            for index, step in enumerate(trace.steps):
                for c in step.top:
                    worst = max(worst, abs(c.logit - float(logits[len(prompt) - 1 + index, c.token_id])))
    return worst


@pytest.mark.parametrize(
    ("arch", "cause"),
    [
        ("minimax", "padding leaks into this model's state: transformers' left-padded generate"),
        ("rwkv", "the prompts of a batch leak into each other on this model: transformers' batched generate"),
    ],
)
def test_the_label_tells_padding_from_the_batch_itself(tiny_model_dir, arch, cause):
    folder = tiny_model_dir(arch)
    engine = create_engine(parse_engine_spec("hf-left", {"attn": "eager"}), str(folder))
    padded = probe_prompts(str(folder))
    even = [padded[0][start : start + 11] for start in (0, 2, 4, 6)]  # one length: a batch without padding
    assert {len(p) for p in even} == {11}
    assert plain_loop_mismatch(engine, folder, padded) > 1e-2  # transformers really differs
    without_pads = plain_loop_mismatch(engine, folder, even)
    assert (without_pads > 1e-2) == (arch == "rwkv")  # minimax only with pads; rwkv's rows mix anyway
    verdict = verify(engine)
    assert verdict.status == DIFFERS and verdict.without_padding == (arch == "rwkv")
    assert verdict.note.startswith(cause)


def test_transformers_own_difference_labels_hf_left_not_refuses_it(tiny_model_dir, tmp_path, capsys):
    from gendiff.cli.main import main

    folder = tiny_model_dir("minimax")  # lightning attention: its state takes the left pads in
    out = tmp_path / "run.json"
    capsys.readouterr()
    args = ["run", "--model", str(folder), "--attn", "eager", "--engines", "hf-single,hf-left"]
    code = main([*args, "--max-new-tokens", "6", "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0  # not refused: it is what transformers does
    data = json.loads(out.read_text())
    entry = next(e for e in data["engines"] if e["label"] == "hf-left")
    assert entry["conformance"]["status"] == DIFFERS and entry["conformance"]["mode"] == "label"
    notes = [d["conformance_note"] for p in data["prompts"] for d in p["divergences"] if d["reason"] != "identical"]
    assert notes and all(n.startswith("hf-left: padding leaks into this model's state") for n in notes)
    assert "hf-left: padding leaks into this model's state: transformers' left-padded generate" in printed


def test_hf_left_on_a_model_that_masks_its_pads_carries_no_label(tiny_model_dir):
    verdict = verify(create_engine(parse_engine_spec("hf-left"), str(tiny_model_dir("llama"))))
    assert verdict.status == AGREES and verdict.note is None


def test_no_refusal_recommends_an_engine_the_probe_found_to_differ(tiny_model_dir, monkeypatch):
    from gendiff.errors import GendiffError
    from gendiff.records.conformance import LABEL, Verdict

    folder = str(tiny_model_dir("openai-gpt"))  # attention only, no KV cache: hf-right refused by config
    with pytest.raises(GendiffError) as before:
        create_engine(parse_engine_spec("hf-right", {"attn": "eager"}), folder)
    assert str(before.value).endswith("; use hf-single or hf-left")

    def differs(engine, *args, **kwargs):  # stands for a model whose left pads leak
        return Verdict(engine.spec.name, LABEL, DIFFERS, 1e-4, (19, 3, 11, 6), 4, note="leaks")

    monkeypatch.setattr(conformance_module, "probe", differs)
    verify(create_engine(parse_engine_spec("hf-left", {"attn": "eager"}), folder))
    for name in ("hf-right", "packed"):
        with pytest.raises(GendiffError) as after:
            create_engine(parse_engine_spec(name, {"attn": "eager"}), folder)
        assert str(after.value).endswith("; use hf-single"), str(after.value)

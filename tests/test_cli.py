"""`gendiff run` end to end on the demo model, and every bad input."""

import json
import shutil

import pytest

from gendiff.cli.main import main
from gendiff.demo import demo_model_path
from gendiff.io.snapshots import load_snapshot, validate


def run_cli(capsys, *argv):
    code = main(["run", "--quiet", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def prompts(tmp_path):
    file = tmp_path / "p.txt"
    file.write_text("The capital of France is\nShopping list:\\n1. eggs\\n2.\n")
    return file


@pytest.mark.slow
def test_run_writes_a_valid_snapshot_and_summary(capsys, tmp_path, prompts):
    out_file = tmp_path / "s.json"
    code, out, err = run_cli(capsys, "--prompts", str(prompts), "--max-new-tokens", "8", "--json", str(out_file))
    assert code == 0, err
    assert "0 of 6 prompt×engine pairs diverged from hf-single" in out
    data = json.loads(out_file.read_text())
    validate(data, "test")
    assert [e["label"] for e in data["engines"]] == ["hf-single", "hf-left", "hf-right", "packed"]
    assert data["prompts"][1]["text"] == "Shopping list:\n1. eggs\n2."
    assert data["environment"]["torch"] and data["environment"]["python"]
    trace = data["prompts"][0]["traces"]["hf-left"]
    assert len(trace["token_ids"]) == len(trace["steps"]) == 8


def bad(capsys, *argv):
    code, out, err = run_cli(capsys, *argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("gendiff: error: "), err
    return lines[0]


def test_missing_model_dir(capsys, tmp_path):
    assert "no such directory" in bad(capsys, "--model", str(tmp_path / "nope"))


def test_not_a_causal_lm(capsys, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "model_type": "bert"}))
    assert "not a causal language model (architectures: BertModel)" in bad(capsys, "--model", str(tmp_path))


def test_empty_prompt(capsys, tmp_path):
    file = tmp_path / "p.jsonl"
    file.write_text('{"prompt": "ok"}\n{"prompt": ""}\n')
    assert "p.jsonl:2: empty prompt" in bad(capsys, "--prompts", str(file))


def test_empty_prompt_file(capsys, tmp_path):
    file = tmp_path / "p.txt"
    file.write_text("\n\n")
    assert "no prompts in the file" in bad(capsys, "--prompts", str(file))


def test_prompt_longer_than_context(capsys, tmp_path):
    file = tmp_path / "p.txt"
    file.write_text("one two three " * 400 + "\n")
    assert "exceed the model's context of 512" in bad(capsys, "--prompts", str(file))


def test_malformed_prompts_file(capsys, tmp_path):
    file = tmp_path / "p.jsonl"
    file.write_text('{"prompt": "a"}\nnot json\n')
    assert "p.jsonl:2: not valid JSON" in bad(capsys, "--prompts", str(file))


def test_missing_prompts_file(capsys, tmp_path):
    assert "no such file" in bad(capsys, "--prompts", str(tmp_path / "none.txt"))


def test_unknown_engine(capsys):
    line = bad(capsys, "--engines", "hf-single,hf-middle")
    assert "unknown engine 'hf-middle'" in line and "hf-left" in line and "packed" in line


def test_unknown_engine_option(capsys):
    assert "unknown option 'cache'" in bad(capsys, "--engines", "hf-single,hf-left:cache=off")


def test_reference_not_among_engines(capsys):
    assert "reference 'packed' is not among the engines" in bad(
        capsys, "--engines", "hf-single,hf-left", "--reference", "packed"
    )


def test_unwritable_json_path(capsys, tmp_path):
    assert "does not exist" in bad(capsys, "--json", str(tmp_path / "missing" / "s.json"))
    assert "is a folder" in bad(capsys, "--json", str(tmp_path))


@pytest.mark.parametrize("k, message", [("0", "must be at least 1"), ("999999", "above the vocabulary size")])
def test_top_k_out_of_range(capsys, k, message):
    assert message in bad(capsys, "--top-k", k)


def test_max_new_tokens_zero(capsys):
    assert "--max-new-tokens 0: must be at least 1" in bad(capsys, "--max-new-tokens", "0")


def test_nothing_written_on_bad_input(capsys, tmp_path):
    out_file = tmp_path / "s.json"
    bad(capsys, "--engines", "nope", "--json", str(out_file))
    assert not out_file.exists()


@pytest.mark.slow
def test_tokenizer_without_pad_token_picks_one_and_says_so(capsys, tmp_path, prompts):
    model = tmp_path / "model"
    shutil.copytree(demo_model_path(), model)
    config = json.loads((model / "tokenizer_config.json").read_text())
    config.pop("pad_token", None)
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    code = main(
        [
            "run",
            "--model",
            str(model),
            "--prompts",
            str(prompts),
            "--max-new-tokens",
            "4",
            "--engines",
            "hf-single,hf-left,hf-right",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "has no pad token; using id" in err
    assert "0 of 4 prompt×engine pairs diverged" in out


@pytest.mark.slow
def test_fail_on_divergence_exit_code_and_bfloat16_numbers_match_recomputation(capsys, tmp_path):
    """`gendiff run --dtype bfloat16` diverges; the reported numbers equal a direct recomputation."""
    import torch
    from transformers import AutoModelForCausalLM

    out_file = tmp_path / "bf16.json"
    code, out, err = run_cli(capsys, "--dtype", "bfloat16", "--json", str(out_file), "--fail-on-divergence")
    assert code == 1, err
    assert "DIVERGED at step" in out
    snapshot = load_snapshot(out_file)
    divergences = [d for d in snapshot.divergences() if d.reason == "token"]
    assert divergences
    d = next(d for d in divergences if d.reference_gap is not None)
    assert f"DIVERGED at step {d.step}" in out
    prompt = snapshot.prompts[d.prompt_index]
    ref_trace = prompt.traces["hf-single"]

    # recompute the reference side by hand: batch 1, KV cache, one token at a time, bfloat16
    model = AutoModelForCausalLM.from_pretrained(
        demo_model_path(), dtype=torch.bfloat16, attn_implementation="sdpa"
    ).eval()
    ids = torch.tensor([prompt.token_ids])
    with torch.inference_mode():
        out_model = model(input_ids=ids, use_cache=True, logits_to_keep=1)  # as generate() does
        cache = out_model.past_key_values
        logits = out_model.logits[:, -1]
        for token in ref_trace.token_ids[: d.step]:
            out_model = model(input_ids=torch.tensor([[token]]), past_key_values=cache, use_cache=True)
            logits = out_model.logits[:, -1]
    logprobs = torch.log_softmax(logits.float(), dim=-1)[0]
    top2 = torch.topk(logprobs, 2)
    # exact bfloat16 ties are common: topk orders them arbitrarily, argmax (and gendiff) take the lowest id
    assert int(torch.argmax(logprobs)) == d.reference_step.token_id
    assert float(top2.values[0] - top2.values[1]) == pytest.approx(d.reference_margin, abs=1e-6)
    assert float(logprobs[d.other_step.token_id]) == pytest.approx(
        d.reference_step.logprob_of(d.other_step.token_id), abs=1e-6
    )


def test_the_app_refuses_a_missing_model_folder_before_it_opens(tmp_path, capsys):
    """As gendiff run does: one line and exit 2, not an app that opens with a note."""
    from gendiff.cli.main import main

    assert main(["--model", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such directory" in err

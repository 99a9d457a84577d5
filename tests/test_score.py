"""gendiff score: distribution statistics and loss on fixed text, no generation."""

from __future__ import annotations

import json

import pytest

from gendiff.cli.main import main

TEXTS = [
    {"prompt": "Once upon a time, there was a kind penguin named Leo.", "continuation": " Leo liked to swim."},
    {"prompt": "260 + 487 =", "continuation": " 747"},
]


def write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"prompt": "a"}\n', "score.jsonl:1"),
        ("not json\n", "not valid JSON"),
        ('{"prompt": "a", "continuation": ""}\n', "empty prompt or continuation"),
        ("\n", "no texts"),
    ],
)
def test_bad_score_files_fail_with_one_line_before_any_model(tmp_path, capsys, content, message):
    file = tmp_path / "score.jsonl"
    file.write_text(content)
    assert main(["score", str(file), "--engines", "nosuch"]) == 2  # the file is checked first
    err = capsys.readouterr().err
    assert err.startswith("gendiff: error: ") and message in err and err.count("\n") == 1


@pytest.mark.slow
def test_score_eager_vs_sdpa_reports_loss_equal_to_a_plain_forward(tmp_path, capsys):
    import torch
    from transformers import AutoModelForCausalLM

    from gendiff.demo import demo_model_path

    out = tmp_path / "scores.json"
    code = main(["score", str(write(tmp_path / "t.jsonl", TEXTS)), "--quiet", "--json", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    assert "hf-single:attn=eager" in table and "hf-single:attn=sdpa" in table and "loss" in table
    data = json.loads(out.read_text())
    model = AutoModelForCausalLM.from_pretrained(str(demo_model_path()), attn_implementation="eager").eval()
    losses = []
    for text in data["texts"]:
        prompt, continuation = text["prompt_token_ids"], text["continuation_token_ids"]
        with torch.inference_mode():
            logits = model(torch.tensor([prompt + continuation])).logits[0].double()
        nll = -torch.log_softmax(logits, -1)[len(prompt) - 1 : -1].gather(-1, torch.tensor(continuation)[:, None])
        losses += nll[:, 0].tolist()
        eager = text["statistics"]["hf-single:attn=eager"]
        assert eager["loss"] == pytest.approx(float(nll.mean()), abs=1e-4)
        assert eager["kld_max"] == 0.0 and eager["same_top1"] == 1.0
        sdpa = text["statistics"]["hf-single:attn=sdpa"]
        assert 0.0 <= sdpa["kld_max"] < 1e-6 and sdpa["positions"] == len(continuation)
    total = data["statistics"]["hf-single:attn=eager"]
    assert total["positions"] == len(losses)
    assert total["loss"] == pytest.approx(sum(losses) / len(losses), abs=1e-4)

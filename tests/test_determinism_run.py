"""gendiff determinism on the demo model (slow): every protocol runs with the HF engines, every
trial's completion equals a plain greedy loop written here, the recorded seed gives the layout."""

from __future__ import annotations

import json

import pytest

from gendiff.cli.main import main
from gendiff.demo import demo_model_path, demo_prompts_path
from gendiff.io.prompts import PromptBook
from gendiff.records.determinism import PROTOCOLS, layout
from gendiff.run.determinism import run_protocol
from gendiff.run.options import RunOptions

pytestmark = pytest.mark.slow
TOKENS, TRIALS = 4, 3


@pytest.fixture(scope="module")
def plain_greedy():
    """A plain loop without KV cache, padding or batching: text -> its first TOKENS greedy ids."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(demo_model_path()), dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(demo_model_path()))
    cache: dict[str, tuple[int, ...]] = {}

    def run(text: str) -> tuple[int, ...]:
        if text not in cache:
            tokens = list(tokenizer(text)["input_ids"])
            start = len(tokens)
            with torch.no_grad():
                for _ in range(TOKENS):
                    logits = model(torch.tensor([tokens])).logits[0, -1].float()
                    tokens.append(int(torch.argmax(logits)))  # ties: the lowest id, as gendiff
            cache[text] = tuple(tokens[start:])
        return cache[text]

    return run


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_protocol_on_the_demo_model(protocol: str, plain_greedy) -> None:
    prompts = PromptBook.load(demo_prompts_path()).prompts
    options = RunOptions(engines=("hf-single", "hf-right"), max_new_tokens=TOKENS, stop_at_eos=False)
    result = run_protocol(options, protocol, prompts[1], prompts, TRIALS, 7, 4)
    assert list(result.trials) == layout(protocol, TRIALS, 7, len(result.pool) - 1, 4)
    assert result.pool[0] == prompts[1]
    expected = plain_greedy(prompts[1])
    for label in ("hf-single", "hf-right"):
        assert result.completions[label] == [expected] * TRIALS  # float32: every row as unpadded
        spread = result.spreads[label]
        assert (spread.unique, spread.most_common, spread.agreement, spread.splits) == (1, TRIALS, 1.0, ())
    if protocol == "needle":
        assert any(len(t.prompts) > 1 for t in result.trials)  # co-batched for real


def test_cli_records_the_seed_and_layout(tmp_path, capsys) -> None:
    out = tmp_path / "needle.json"
    argv = ["determinism", "needle", "--engines", "hf-right", "--max-new-tokens", "3", "--trials", "3"]
    assert main([*argv, "--seed", "11", "--max-batch", "5", "--json", str(out), "--quiet"]) == 0
    data = json.loads(out.read_text())
    assert data["seed"] == 11
    trials = layout("needle", 3, 11, len(data["pool"]) - 1, 5)
    assert data["trials"] == [t.to_dict() for t in trials]
    assert data["engines"]["hf-right"]["trials"] == 3
    assert "3 of 3 identical" in capsys.readouterr().out


def test_a_cancelled_protocol_keeps_the_trials_that_finished(plain_greedy) -> None:
    """cancel set as the third trial starts: that trial stops and is dropped; two remain, partial."""
    import threading

    from gendiff.records.events import RunStarted

    prompts = PromptBook.load(demo_prompts_path()).prompts
    options = RunOptions(engines=("hf-right",), max_new_tokens=TOKENS, stop_at_eos=False)
    cancel, started = threading.Event(), []

    def on_event(event: object) -> None:
        if isinstance(event, RunStarted):
            started.append(event)
            if len(started) == 3:
                cancel.set()

    result = run_protocol(options, "needle", prompts[1], prompts, 5, 7, 4, on_event=on_event, cancel=cancel)
    assert len(started) == 3 and result.partial and result.planned == 5
    assert list(result.trials) == layout("needle", 5, 7, len(result.pool) - 1, 4)[:2]
    assert result.completions["hf-right"] == [plain_greedy(prompts[1])] * 2
    assert result.spreads["hf-right"].trials == 2
    assert result.to_dict()["partial"] is True

"""`gendiff determinism needle --bisect` in bfloat16: the module it names as where the most common
split starts is checked here with transformers alone — the two recorded batches (the most common
completion's and the split's) run through generate() with hooks on every module, and the first
module whose output at the needle row's split step differs bitwise must be the one gendiff names."""

import json

import pytest
import torch

from gendiff.cli.main import main
from gendiff.demo import demo_model_path

pytestmark = pytest.mark.slow


def module_outputs(model, tokenizer, ids: list[list[int]], row: int, step: int) -> dict[str, torch.Tensor]:
    """Every module's output (``name:input``: its input) at ``row``'s last position in generate()'s
    forward number ``step`` (0: the prefill), for the left-padded batch ``ids``, greedy."""
    width = max(len(p) for p in ids)
    input_ids = torch.full((len(ids), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, p in enumerate(ids):
        input_ids[i, width - len(p) :] = torch.tensor(p)
        mask[i, width - len(p) :] = 1
    calls = {"n": -1}
    seen: dict[str, torch.Tensor] = {}

    def store(name, value):
        value = value[0] if isinstance(value, tuple) else value
        if calls["n"] == step and isinstance(value, torch.Tensor) and value.dim() >= 2:
            seen[name] = value[row, -1].detach().clone()

    def output_of(name):
        return lambda module, args, output: store(name, output)

    def input_of(name):  # hidden states come positionally or as a keyword
        return lambda module, args, kwargs: store(f"{name}:input", args[0] if args else kwargs.get("hidden_states"))

    handles = [model.register_forward_pre_hook(lambda m, a: calls.__setitem__("n", calls["n"] + 1))]
    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_hook(output_of(name)))
            handles.append(module.register_forward_pre_hook(input_of(name), with_kwargs=True))
    try:
        with torch.no_grad():
            model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                max_new_tokens=step + 1,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
    finally:
        for handle in handles:
            handle.remove()
    return seen


def test_needle_bisection_names_the_first_module_that_differs(tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "det.json"
    argv = ["determinism", "needle", "--engines", "hf-left", "--dtype", "bfloat16", "--trials", "6"]
    code = main([*argv, "--max-new-tokens", "10", "--bisect", "--json", str(out), "--seed", "0"])
    assert code in (0, 1), capsys.readouterr().err
    data = json.loads(out.read_text())
    result = data["engines"]["hf-left"]
    assert result["splits"], "no split in bfloat16: pick another seed (the check needs one)"
    split, bisection = result["splits"][0], result["bisection"]
    assert bisection["step"] == split["step"] and bisection["reproduced"]

    tokenizer = AutoTokenizer.from_pretrained(demo_model_path())
    model = AutoModelForCausalLM.from_pretrained(demo_model_path(), dtype=torch.bfloat16).eval()
    ids = [tokenizer(text)["input_ids"] for text in data["pool"]]
    seen = []
    for trial in (data["trials"][result["mode_trial"]], data["trials"][split["first_trial"]]):
        batch = [ids[i] for i in trial["prompts"]]
        seen.append(module_outputs(model, tokenizer, batch, trial["row"], split["step"]))
    order = [m["name"] for m in bisection["modules"]]  # the execution order gendiff walked
    assert set(order) <= set(seen[0]), set(order) - set(seen[0])
    first = next(name for name in order if not torch.equal(seen[0][name], seen[1][name]))
    assert first == bisection["first_bitwise"]
    a, b = seen[0][first].double(), seen[1][first].double()
    named = next(m for m in bisection["modules"] if m["name"] == first)
    assert named["rel_diff"] == pytest.approx(float((b - a).norm() / a.norm()), rel=1e-6)

"""Chat prompts against a real llama-server (``--chat-template chatml``): when the model's own
template renders the same ids the served tokens equal a plain greedy loop on the ids rendered
here; when the model's template is another, the chat prompt is not run there and its error names
the first differing prompt token, found here from the server's own /apply-template and /tokenize."""

import json

import httpx
import pytest
from test_llamacpp import BUILT, EXACT_FLAGS, LlamaServer

from gendiff.cli.main import main
from tests.chat_models import CHATML, chat_demo_model, greedy_by_hand

pytestmark = [pytest.mark.slow, pytest.mark.llamacpp]

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Name a colour."}]
PROMPTS = '{"prompt": "def clamp(x):"}\n' + json.dumps({"messages": MESSAGES}) + "\n"
# another model's template: the server's chatml differs from it at the first token after BOS
HASHES = (
    "{{ bos_token }}{% for m in messages %}### {{ m.role }}:\n{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}### assistant:\n{% endif %}"
)
STEPS = 8


@pytest.fixture(scope="module")
def chatml_server(tmp_path_factory):
    started = LlamaServer(
        BUILT["gguf_f32"], (*EXACT_FLAGS, "--chat-template", "chatml"), tmp_path_factory.mktemp("chat") / "chatml.log"
    )
    try:
        started.wait_ready()
        yield started
    finally:
        started.stop()


def run(tmp_path, capsys, server, template):
    model = chat_demo_model(tmp_path, template)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(PROMPTS)
    out = tmp_path / "s.json"
    spec = f"openai:url={server.url},model=demo,flavour=llamacpp"
    argv = ["run", "--quiet", "--model", str(model), "--prompts", str(prompts), "--engines", f"hf-single,{spec}"]
    code = main([*argv, "--max-new-tokens", str(STEPS), "--no-stop-at-eos", "--json", str(out)])
    return code, capsys.readouterr().err, json.loads(out.read_text()) if out.exists() else None, model, spec


def rendered_by_hand(model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    text = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    return tokenizer, tokenizer(text, add_special_tokens=False)["input_ids"]


def test_same_template_runs_the_rendered_ids_and_matches_the_greedy_loop(tmp_path, capsys, chatml_server):
    code, err, data, model, spec = run(tmp_path, capsys, chatml_server, CHATML)
    assert code == 0, err
    _, expected = rendered_by_hand(model)
    chat = data["prompts"][1]
    assert chat["token_ids"] == expected and expected.count(0) == 1
    by_hand = greedy_by_hand(model, expected, STEPS)
    assert chat["traces"]["hf-single"]["token_ids"] == by_hand
    assert chat["traces"][spec]["token_ids"] == by_hand and chat["traces"][spec]["finish_reason"] == "length"
    assert not chat["traces"][spec].get("error")


def test_another_template_is_not_run_and_names_the_first_differing_token(tmp_path, capsys, chatml_server):
    code, err, data, model, spec = run(tmp_path, capsys, chatml_server, HASHES)
    tokenizer, ours = rendered_by_hand(model)
    root = chatml_server.root
    served_text = httpx.post(f"{root}/apply-template", json={"messages": MESSAGES}).json()["prompt"]
    body = {"content": served_text, "add_special": True, "parse_special": True}
    theirs = httpx.post(f"{root}/tokenize", json=body).json()["tokens"]
    position = next(i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b)
    assert position == 1  # BOS agrees, then '###' against '<|im_start|>'

    chat, plain = data["prompts"][1], data["prompts"][0]
    error = chat["traces"][spec]["error"]
    assert chat["traces"][spec]["finish_reason"] == "error" and chat["traces"][spec]["token_ids"] == []
    assert f"first difference at prompt token {position}: the model's template gives {ours[position]} " in error
    assert f"the server's {theirs[position]} " in error and "a template or special-token difference" in error
    assert repr(tokenizer.decode([theirs[position]])) in error
    # the text prompt still ran on the server, and the model's template still ran in hf-single
    assert plain["traces"][spec]["token_ids"] == plain["traces"]["hf-single"]["token_ids"]
    assert chat["traces"]["hf-single"]["token_ids"] == greedy_by_hand(model, ours, STEPS)
    assert code == 3 and "failed on 1 of 2 prompts (prompt 2: the server's chat template renders" in err

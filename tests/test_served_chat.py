"""A chat prompt against a real vLLM OpenAI server (vllm-cpu) serving the chat demo model: its
/tokenize renders the messages to the ids rendered here, and the served tokens equal a plain
greedy loop on those ids."""

import json
import os
import sys

import pytest
from server_process import ServerProcess, free_port

from gendiff.cli.main import main
from gendiff.engines.vllm import vllm_installed
from tests.chat_models import chat_demo_model, greedy_by_hand

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not vllm_installed() and os.environ.get("CI") != "true",
        reason="vllm not installed (pip install 'gendiff[vllm]'); CI installs it",
    ),
]
SERVER_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_HOST_IP": "127.0.0.1",
    "TORCH_COMPILE_DISABLE": "1",
    "VLLM_NO_USAGE_STATS": "1",
}
MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Name a colour."}]
STEPS = 8


class ChatServer(ServerProcess):
    name = "vLLM server"
    ready_path = "/v1/models"

    def __init__(self, model, log_path):
        port = free_port()
        command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model)]
        command += ["--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--max-model-len", "512"]
        command += ["--served-model-name", "demo", "--enforce-eager", "--generation-config", "vllm"]
        super().__init__(command, log_path, port, SERVER_ENV)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served-chat")
    model = chat_demo_model(folder)
    started = ChatServer(model, folder / "vllm-server.log")
    try:
        started.wait_ready(240)
        yield started, model
    finally:
        started.stop()


def test_vllm_renders_the_same_ids_and_the_served_tokens_match_the_greedy_loop(tmp_path, capsys, served):
    from transformers import AutoTokenizer

    server, model = served
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "def clamp(x):"}\n' + json.dumps({"messages": MESSAGES}) + "\n")
    out = tmp_path / "s.json"
    spec = f"openai:url={server.url},model=demo"
    argv = ["run", "--quiet", "--model", str(model), "--prompts", str(prompts), "--engines", f"hf-single,{spec}"]
    code = main([*argv, "--max-new-tokens", str(STEPS), "--no-stop-at-eos", "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    tokenizer = AutoTokenizer.from_pretrained(model)
    text = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    expected = tokenizer(text, add_special_tokens=False)["input_ids"]
    chat = json.loads(out.read_text())["prompts"][1]
    assert chat["token_ids"] == expected and expected.count(tokenizer.bos_token_id) == 1
    assert chat["traces"][spec]["prompt_token_ids"] == expected
    by_hand = greedy_by_hand(model, expected, STEPS)
    assert chat["traces"][spec]["token_ids"] == by_hand == chat["traces"]["hf-single"]["token_ids"]

"""Chat prompt lines: well-formed messages are read as written; each malformed shape is one InputError line."""

import pytest

from gendiff.errors import InputError
from gendiff.io.chat import ChatMessage, parse_messages


def test_messages_read_as_written():
    record = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi\n"}]}
    assert parse_messages(record, "p.jsonl", 3) == (ChatMessage("system", "be brief"), ChatMessage("user", "hi\n"))


@pytest.mark.parametrize(
    ("record", "words"),
    [
        ({"messages": []}, "non-empty list"),
        ({"messages": "hi"}, "non-empty list"),
        ({"messages": ["hi"]}, "message 1 is not an object"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "unknown role"),
        ({"messages": [{"role": "user", "content": 5}]}, 'no string "content"'),
        ({"messages": [{"role": "user", "content": "\ud800"}]}, "unpaired surrogate"),
    ],
)
def test_bad_messages_name_file_line_and_fix(record, words):
    with pytest.raises(InputError) as caught:
        parse_messages(record, "p.jsonl", 7)
    message = str(caught.value)
    assert message.startswith("p.jsonl:7: ") and words in message and "\n" not in message


def test_prompt_file_malformed_chat_line_refused_in_one_line():
    from gendiff.io.prompts import parse_prompts

    bad = '{"messages": [{"role": "robot", "content": "hi"}]}\n'
    with pytest.raises(InputError, match=r"^p\.jsonl:1: message 1 has an unknown role"):
        parse_prompts(bad, "jsonl", "p.jsonl")


def test_model_without_chat_template_refused_naming_model_and_line():
    from gendiff.io.chat import render_chat

    class NoTemplate:
        chat_template = None

    with pytest.raises(InputError, match=r"^p\.jsonl:4: a chat prompt, but model demo has no chat template"):
        render_chat(NoTemplate(), (ChatMessage("user", "hi"),), "demo", "p.jsonl:4")


TEMPLATE = "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"


@pytest.mark.slow
def test_rendered_ids_equal_hand_rendered_text_tokenized(tmp_path):
    import json
    import shutil

    from transformers import AutoTokenizer

    from gendiff.demo import demo_model_path
    from gendiff.io.chat import render_chat

    model = tmp_path / "chat-demo"
    shutil.copytree(demo_model_path(), model)
    config_path = model / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["chat_template"] = TEMPLATE
    config_path.write_text(json.dumps(config))
    tokenizer = AutoTokenizer.from_pretrained(model)
    messages = (ChatMessage("system", "be brief"), ChatMessage("user", "def clamp(x):"))
    by_hand = "<system>be brief\n<user>def clamp(x):\n<assistant>"
    expected = tokenizer(by_hand, add_special_tokens=False)["input_ids"]
    assert render_chat(tokenizer, messages, "chat-demo", "p.jsonl:1") == expected

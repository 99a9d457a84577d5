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


def test_prompt_file_chat_line_refused_in_one_line_after_its_check():
    from gendiff.io.prompts import parse_prompts

    good = '{"prompt": "a"}\n{"messages": [{"role": "user", "content": "hi"}]}\n'
    with pytest.raises(InputError, match=r"^p\.jsonl:2: chat prompts .* not run yet"):
        parse_prompts(good, "jsonl", "p.jsonl")
    bad = '{"messages": [{"role": "robot", "content": "hi"}]}\n'
    with pytest.raises(InputError, match=r"^p\.jsonl:1: message 1 has an unknown role"):
        parse_prompts(bad, "jsonl", "p.jsonl")

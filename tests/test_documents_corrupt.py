"""Issue 24: a broken snapshot opened in the app is called a broken snapshot, not a prompt file.

A ``.json`` file, one starting ``{"schema":``, or one not named .txt whose first non-space byte
is ``{`` is a snapshot attempt unless its first line is a ``{"prompt": …}`` record: truncated, schema-less, trailing garbage, flipped bytes,
invalid UTF-8, nesting too deep all give "FILE: not a gendiff snapshot (corrupt: …)" (exit 2) or a
validation error naming the file, never "each line must be {"prompt": …}"."""

from __future__ import annotations

import json

import pytest
from test_snapshot_trust import _snapshot

from gendiff.errors import EXIT_INPUT, GendiffError
from gendiff.io.documents import open_document
from gendiff.io.snapshots import load_snapshot, save_snapshot, snapshot_json


@pytest.fixture
def good(tmp_path):
    return save_snapshot(_snapshot(), tmp_path / "good.json", check=True)


def _corrupt(path, problem: str) -> None:
    with pytest.raises(GendiffError) as error:
        open_document(str(path))
    message = str(error.value)
    assert error.value.exit_code == EXIT_INPUT and "\n" not in message
    assert message.startswith(f"{path}: not a gendiff snapshot (corrupt: {problem}")


@pytest.mark.parametrize("name", ["t.json", "t.jsonl", "t.txt", "t"])
def test_a_truncated_snapshot_under_any_name(tmp_path, good, name):
    raw = good.read_text()
    (tmp_path / name).write_text(raw[: len(raw) // 2])
    _corrupt(tmp_path / name, "not valid JSON at line 1 column")


def test_a_truncated_pretty_printed_snapshot(tmp_path, good):
    raw = snapshot_json(load_snapshot(good))
    (tmp_path / "p.json").write_text(raw[:300])
    _corrupt(tmp_path / "p.json", "not valid JSON at line")


def test_a_snapshot_without_schema(tmp_path, good):
    data = json.loads(good.read_text())
    del data["schema"]
    (tmp_path / "s").write_text(json.dumps(data))
    _corrupt(tmp_path / "s", 'no "schema" field')


def test_trailing_garbage(tmp_path, good):
    (tmp_path / "g.json").write_text(good.read_text() + "garbage{")
    _corrupt(tmp_path / "g.json", "more data after the JSON document at line 2 column 1")


def test_invalid_utf8(tmp_path, good):
    raw = bytearray(good.read_bytes())
    raw[40] = 0xFF
    (tmp_path / "u.json").write_bytes(bytes(raw))
    _corrupt(tmp_path / "u.json", "not UTF-8 text at byte 40")


def test_nesting_too_deep(tmp_path):
    (tmp_path / "n.json").write_text('{"schema": ' + "[" * 100_000 + "]" * 100_000 + "}")
    _corrupt(tmp_path / "n.json", "values nested deeper than gendiff reads")


def test_a_json_list_named_json(tmp_path):
    (tmp_path / "l.json").write_text('["a", "b"]\n')
    _corrupt(tmp_path / "l.json", "a JSON list, not an object")


def test_every_byte_flip_is_a_snapshot_error_or_a_snapshot(tmp_path, good):
    """Flip one bit at 60 places: the file opens as a snapshot (a flip inside a text), or fails as
    a snapshot naming the file; never as a prompt file, never with another exception."""
    raw = good.read_bytes()
    outcomes = set()
    for position in range(0, len(raw), max(1, len(raw) // 60)):
        flipped = bytearray(raw)
        flipped[position] ^= 0x04
        path = tmp_path / "f.json"
        path.write_bytes(bytes(flipped))
        try:
            document = open_document(str(path))
        except GendiffError as exc:
            message = str(exc)
            assert str(path) in message and '"prompt"' not in message, (position, message)
            outcomes.add("refused")
        else:
            assert document.book is None and document.snapshot is not None, position
            outcomes.add("opened")
    assert "refused" in outcomes


def test_prompt_files_still_open_as_prompt_files(tmp_path):
    jsonl = tmp_path / "p.json"  # a .json holding JSON lines is a prompt file (PromptBook reads .json as .jsonl)
    jsonl.write_text('{"prompt": "one"}\n{"prompt": "two"}\n')
    assert open_document(str(jsonl)).book.prompts == ["one", "two"]
    broken_later = tmp_path / "q.jsonl"
    broken_later.write_text('{"prompt": "one"}\n{"prompt": \n')
    with pytest.raises(GendiffError, match=r"q.jsonl:2: not valid JSON"):
        open_document(str(broken_later))
    broken_first = tmp_path / "r.jsonl"
    broken_first.write_text('{"prompt": "one\n')
    with pytest.raises(GendiffError, match=r"r.jsonl:1: not valid JSON"):
        open_document(str(broken_first))
    code = tmp_path / "t.txt"
    code.write_text("{ int x = 1; }\nsecond\n")  # a .txt prompt may start with a brace
    assert open_document(str(code)).book.prompts == ["{ int x = 1; }", "second"]
    empty = tmp_path / "e.json"
    empty.write_text("\n")
    assert open_document(str(empty)).book.prompts == []


def test_a_good_snapshot_opens(good):
    assert open_document(str(good)).snapshot.prompts[0].text == "hello there"


def test_a_prompt_file_whose_first_line_is_a_chat_prompt_opens_as_a_prompt_file(tmp_path):
    chat = tmp_path / "c.jsonl"
    chat.write_text('{"messages": [{"role": "user", "content": "Hi"}]}\n{"prompt": "two"}\n')
    book = open_document(str(chat)).book
    assert book is not None and len(book.prompts) == 2 and book.prompts[1] == "two"
    assert book.prompts[0].messages[0].content == "Hi"  # a chat prompt, not a broken snapshot
    alone = tmp_path / "one.jsonl"
    alone.write_text('{"messages": [{"role": "user", "content": "Hi"}]}\n')
    assert len(open_document(str(alone)).book.prompts) == 1
    broken = tmp_path / "b.jsonl"
    broken.write_text('{"messages": [\n')
    with pytest.raises(GendiffError, match=r"b.jsonl:1: not valid JSON"):
        open_document(str(broken))

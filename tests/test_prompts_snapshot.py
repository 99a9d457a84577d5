import json

import pytest
from helpers import two_engine_snapshot

from gendiff.errors import GendiffError, InputError
from gendiff.io.prompts import PromptBook, escape_line, unescape_line
from gendiff.io.snapshots import is_snapshot_file, load_snapshot, save_snapshot
from gendiff.records.snapshot import Snapshot


def test_txt_escapes_round_trip(tmp_path):
    prompts = ["plain", "two\nlines", "tab\there", "back\\slash n"]
    book = PromptBook(prompts, tmp_path / "p.txt")
    book.save()
    assert PromptBook.load(tmp_path / "p.txt").prompts == prompts
    assert unescape_line(escape_line("a\\nb")) == "a\\nb"


def test_jsonl_round_trip_and_blank_lines_skipped(tmp_path):
    file = tmp_path / "p.jsonl"
    file.write_text('{"prompt": "a"}\n\n{"prompt": "b\\nc"}\n')
    book = PromptBook.load(file)
    assert book.prompts == ["a", "b\nc"]
    book.prompts.append("d")
    book.save()
    assert [json.loads(line)["prompt"] for line in file.read_text().splitlines()] == ["a", "b\nc", "d"]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"prompt": "a"}\n{"prompt": \n', "p.jsonl:2: not valid JSON"),
        ('{"prompt": "a"}\n{"text": "b"}\n', "p.jsonl:2: expected an object"),
        ('{"prompt": "   "}\n', "p.jsonl:1: empty prompt"),
    ],
)
def test_malformed_jsonl_names_the_line(tmp_path, content, message):
    file = tmp_path / "p.jsonl"
    file.write_text(content)
    with pytest.raises(GendiffError, match=message):
        PromptBook.load(file)


def test_save_is_atomic_no_temp_files_left(tmp_path):
    file = tmp_path / "p.txt"
    PromptBook(["x"], file).save()
    PromptBook(["y"], file).save()
    assert [p.name for p in tmp_path.iterdir()] == ["p.txt"]
    assert file.read_text() == "y\n"


def test_save_to_missing_folder_fails_cleanly(tmp_path):
    with pytest.raises(GendiffError, match="does not exist"):
        PromptBook(["x"], tmp_path / "nope" / "p.txt").save()


def make_snapshot() -> Snapshot:
    return two_engine_snapshot(other_token=6)


def test_snapshot_round_trip_validates(tmp_path):
    snapshot = make_snapshot()
    path = save_snapshot(snapshot, tmp_path / "s.json")
    loaded = load_snapshot(path)
    assert loaded.to_dict() == snapshot.to_dict()
    assert loaded.prompts[0].divergences[0].step == 0
    assert loaded.prompts[0].traces["hf-left"].token_ids == (6,)
    assert json.loads(path.read_text())["prompts"][0]["traces"]["hf-left"]["token_ids"] == [6]
    assert is_snapshot_file(path)


def test_corrupt_snapshot_is_refused_with_the_file_named(tmp_path):
    path = save_snapshot(make_snapshot(), tmp_path / "s.json")
    path.write_text(path.read_text()[:-50])
    with pytest.raises(GendiffError, match=r"s\.json: not valid JSON"):
        load_snapshot(path)


def test_schema_violation_is_refused(tmp_path):
    data = make_snapshot().to_dict()
    data["prompts"][0]["traces"]["hf-left"]["finish_reason"] = "tired"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(GendiffError, match="invalid at prompts/0/traces/hf-left/finish_reason"):
        load_snapshot(path)


def test_not_a_snapshot(tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(GendiffError, match="not a gendiff snapshot"):
        load_snapshot(path)


def test_a_bad_step_deep_inside_is_refused(tmp_path):
    data = make_snapshot().to_dict()
    data["prompts"][0]["traces"]["hf-left"]["steps"][0]["top"][1]["logprob"] = "high"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(GendiffError, match="prompts/0/traces/hf-left/steps/0: top/1: logprob is not a number"):
        load_snapshot(path)


def test_a_trace_made_by_no_recorded_call_is_refused(tmp_path):
    data = make_snapshot().to_dict()
    data["prompts"][0]["batches"]["hf-left"] = 7
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(GendiffError, match="prompts/0/batches/hf-left: no recorded call holds this prompt"):
        load_snapshot(path)


def test_a_trace_numbered_by_position_not_identity_is_refused(tmp_path):
    data = make_snapshot().to_dict()
    data["prompts"][0]["id"] = 4
    data["batches"][0]["prompt_ids"] = [4]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(GendiffError, match="prompt_index: 0 is not the prompt's id"):
        load_snapshot(path)


def test_prompt_file_changed_by_another_program_is_not_overwritten(tmp_path):
    from gendiff.io.prompts import PromptFileChanged

    file = tmp_path / "p.txt"
    file.write_text("a\n")
    book = PromptBook.load(file)
    file.write_text("theirs\n")
    book.prompts = ["mine"]
    assert book.changed_on_disk()
    with pytest.raises(PromptFileChanged):
        book.save()
    assert file.read_text() == "theirs\n"
    book.save(force=True)
    assert file.read_text() == "mine\n" and not book.changed_on_disk()
    file.touch()  # same bytes, newer time: not a change
    assert not book.changed_on_disk()


def test_a_prompt_file_over_the_limit_is_refused_before_it_is_read(tmp_path):
    from gendiff.defaults import MAX_PROMPT_FILE_BYTES

    big = tmp_path / "big.txt"
    with big.open("wb") as handle:
        handle.truncate(MAX_PROMPT_FILE_BYTES + 1)  # sparse: no disk, and reading it would take seconds
    with pytest.raises(InputError) as error:
        PromptBook.load(big)
    assert (
        str(error.value)
        == f"prompts {big}: 64.0 MiB, more than a prompt file may hold (64 MiB); split it into several files"
    )


def test_a_prompt_over_the_character_limit_is_refused_naming_it():
    from gendiff.defaults import MAX_PROMPT_CHARS
    from gendiff.io.prompts import validate_prompt

    validate_prompt("x" * MAX_PROMPT_CHARS, 0)  # at the limit: fine
    with pytest.raises(InputError) as error:
        validate_prompt("x" * (MAX_PROMPT_CHARS + 1), 2)
    assert str(error.value).startswith("prompt 3 is 4,000,001 characters, more than gendiff tokenizes")

"""A chat prompt in a snapshot: messages and rendered ids stored in both formats, read back as a
chat prompt, checked on load (text = its messages' [role] lines), exported and reopened unchanged."""

import json

import pytest

from gendiff.errors import GendiffError
from gendiff.io.snapshots import load_snapshot, save_snapshot
from gendiff.records.chat import ChatMessage, ChatPrompt
from tests.helpers import two_engine_snapshot

MESSAGES = (ChatMessage("system", "be brief"), ChatMessage("user", "caf\u00e9 \x1b[2J"))


def chat_snapshot():
    snapshot = two_engine_snapshot(6)
    chat = ChatPrompt(MESSAGES)
    snapshot.prompts[0].text = chat
    batch = snapshot.batches[0]
    snapshot.batches[0] = type(batch)(batch.id, batch.engines, batch.prompt_ids, (chat,), batch.token_ids)
    return snapshot


def as_stored(messages):
    return [{"role": m.role, "content": m.content} for m in messages]


@pytest.mark.parametrize("name", ["s.json", "s.gdz"])
def test_both_formats_store_the_messages_and_read_back_a_chat_prompt(tmp_path, name):
    path = save_snapshot(chat_snapshot(), tmp_path / name)
    loaded = load_snapshot(path)
    prompt = loaded.prompts[0]
    assert isinstance(prompt.text, ChatPrompt) and prompt.text.messages == MESSAGES
    assert str(prompt.text) == "[system] be brief\n[user] caf\u00e9 \x1b[2J"
    assert prompt.token_ids == [1, 2, 3]
    assert isinstance(loaded.batches[0].texts[0], ChatPrompt) and loaded.batches[0].texts[0].messages == MESSAGES
    if name.endswith(".json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["prompts"][0]["messages"] == as_stored(MESSAGES)
        assert data["batches"][0]["messages"] == [as_stored(MESSAGES)]


def test_a_text_snapshot_stores_no_messages_and_reads_back_plain_text(tmp_path):
    path = save_snapshot(two_engine_snapshot(6), tmp_path / "s.json")
    data = json.loads(path.read_text())
    assert "messages" not in data["prompts"][0] and "messages" not in data["batches"][0]
    assert type(load_snapshot(path).prompts[0].text) is str


def edited(tmp_path, change):
    path = save_snapshot(chat_snapshot(), tmp_path / "s.json")
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d["prompts"][0].update(text="[user] something else"), "prompts/0/text: not the [role] lines"),
        (lambda d: d["batches"][0]["texts"].__setitem__(0, "x"), "batches/0/texts/0: not the [role] lines"),
        (lambda d: d["batches"][0].update(messages=[]), "batches/0/messages: one entry per row"),
        (lambda d: d["prompts"][0]["messages"][0].update(role="tool"), "prompts/0/messages/0/role"),
    ],
)
def test_an_edited_chat_record_is_refused_on_load(tmp_path, change, words):
    with pytest.raises(GendiffError, match="^snapshot .*" + words.replace("[", r"\[").replace("]", r"\]")):
        load_snapshot(edited(tmp_path, change))


def test_export_to_gdz_and_back_keeps_the_chat_prompt(tmp_path):
    from gendiff.cli.main import main

    first = save_snapshot(chat_snapshot(), tmp_path / "a.json")
    assert main(["export", str(first), str(tmp_path / "b.gdz")]) == 0
    assert main(["export", str(tmp_path / "b.gdz"), str(tmp_path / "c.json")]) == 0
    assert json.loads((tmp_path / "c.json").read_text())["prompts"] == json.loads(first.read_text())["prompts"]


def test_the_apps_workspace_reopens_and_exports_the_chat_prompt(tmp_path):
    from gendiff.state.exchange import export_snapshot, open_workspace

    loaded = load_snapshot(save_snapshot(chat_snapshot(), tmp_path / "a.gdz"))
    workspace = open_workspace(loaded)
    assert workspace.prompts[0].text.messages == MESSAGES
    again = export_snapshot(workspace)
    assert again is not None and again.prompts[0].to_dict()["messages"] == as_stored(MESSAGES)
    assert again.batches[0].to_dict()["messages"] == [as_stored(MESSAGES)]


@pytest.mark.slow
def test_a_run_chat_snapshot_reopens_into_a_session_with_the_same_rendered_ids(tmp_path, capsys):
    from transformers import AutoTokenizer

    from gendiff.cli.main import main
    from gendiff.run.session import Session
    from tests.chat_models import chat_demo_model

    model = chat_demo_model(tmp_path)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"messages": [{"role": "user", "content": "Name a colour."}]}\n')
    out = tmp_path / "s.gdz"
    argv = ["run", "--quiet", "--model", str(model), "--prompts", str(prompts), "--max-new-tokens", "3"]
    assert main([*argv, "--engines", "hf-single,hf-left", "--save", str(out)]) == 0, capsys.readouterr().err
    snapshot = load_snapshot(out)
    tokenizer = AutoTokenizer.from_pretrained(model)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Name a colour."}], add_generation_prompt=True, tokenize=False
    )
    assert snapshot.prompts[0].token_ids == tokenizer(text, add_special_tokens=False)["input_ids"]
    session = Session.from_snapshot(snapshot)  # re-renders the messages: refuses other ids
    assert session.token_ids == [snapshot.prompts[0].token_ids]

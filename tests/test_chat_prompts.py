"""Chat prompts end to end: read and saved line for line; rendered once by the model's own template
(one BOS), run by every engine on those ids; a model without a template refused before model work."""

import json
import pickle

import pytest

from gendiff.cli.main import main
from gendiff.errors import InputError
from gendiff.io.prompts import PromptBook, format_prompts, parse_prompts
from gendiff.records.chat import ChatMessage, ChatPrompt
from tests.chat_models import chat_demo_model, greedy_by_hand

LINES = (
    '{"prompt": "def clamp(x):"}\n'
    '{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Name a colour."}]}\n'
    '{ "messages" : [ {"role":"user","content":"caf\\u00e9\\n\\u001b[31m"} ], "id": 7 }\n'
)


def test_chat_lines_read_as_chat_prompts_with_role_tagged_text():
    prompts = parse_prompts(LINES, "jsonl", "p.jsonl")
    assert prompts[0] == "def clamp(x):" and not isinstance(prompts[0], ChatPrompt)
    chat = prompts[1]
    assert isinstance(chat, ChatPrompt) and chat.where == "p.jsonl:2"
    assert chat.messages == (ChatMessage("system", "be brief"), ChatMessage("user", "Name a colour."))
    assert str(chat) == "[system] be brief\n[user] Name a colour."
    assert prompts[2].messages == (ChatMessage("user", "café\n\x1b[31m"),)


def test_saving_keeps_every_chat_line_byte_for_byte(tmp_path):
    file = tmp_path / "p.jsonl"
    file.write_text(LINES, encoding="utf-8")
    book = PromptBook.load(file)
    book.prompts.append("a new one")
    book.save()
    assert file.read_text(encoding="utf-8") == LINES + '{"prompt": "a new one"}\n'


def test_chat_made_in_memory_is_written_as_messages_and_reads_back_equal():
    chat = ChatPrompt((ChatMessage("user", "hi"),))
    text = format_prompts([chat], "jsonl")
    assert json.loads(text) == {"messages": [{"role": "user", "content": "hi"}]}
    assert parse_prompts(text, "jsonl", "q.jsonl")[0].messages == chat.messages


def test_a_txt_file_refuses_a_chat_prompt_in_one_line():
    with pytest.raises(InputError, match=r"^prompt 2 is a chat prompt: .* save the prompts as \.jsonl$"):
        format_prompts(["plain", ChatPrompt((ChatMessage("user", "hi"),))], "txt")


def test_a_chat_prompt_pickles_whole():
    chat = ChatPrompt((ChatMessage("user", "hi"),), '{"messages": []}', "p.jsonl:1")
    back = pickle.loads(pickle.dumps(chat))
    assert isinstance(back, ChatPrompt) and (back.messages, back.line, back.where) == (
        chat.messages,
        chat.line,
        chat.where,
    )


def write_prompts(tmp_path):
    file = tmp_path / "p.jsonl"
    file.write_text(LINES, encoding="utf-8")
    return file


@pytest.mark.slow
def test_model_without_template_refused_naming_line_and_model_before_model_work(tmp_path, capsys, monkeypatch):
    import transformers

    def no_model_work(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_model_work)
    code = main(["run", "--quiet", "--prompts", str(write_prompts(tmp_path)), "--engines", "hf-single,hf-left"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "p.jsonl:2: a chat prompt, but model demo_model has no chat template" in err[0]


@pytest.mark.slow
def test_chat_prompt_runs_the_templates_ids_once_with_one_bos_in_every_engine(tmp_path, capsys):
    from transformers import AutoTokenizer

    model = chat_demo_model(tmp_path)
    out = tmp_path / "s.json"
    argv = ["run", "--quiet", "--model", str(model), "--prompts", str(write_prompts(tmp_path))]
    code = main([*argv, "--engines", "hf-single,hf-left,packed", "--max-new-tokens", "6", "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    data = json.loads(out.read_text())

    tokenizer = AutoTokenizer.from_pretrained(model)
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Name a colour."}]
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert rendered.startswith("<|endoftext|><|im_start|>system\n")
    expected = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert expected.count(tokenizer.bos_token_id) == 1 and expected[0] == tokenizer.bos_token_id

    chat = data["prompts"][1]
    assert chat["token_ids"] == expected
    assert chat["text"] == "[system] be brief\n[user] Name a colour."
    by_hand = greedy_by_hand(model, expected, 6)
    for label in ("hf-single", "hf-left", "packed"):
        assert chat["traces"][label]["prompt_token_ids"] == expected, label
        assert chat["traces"][label]["token_ids"] == by_hand, label
    # a plain prompt in the same file is still tokenized as text (the tokenizer's own BOS)
    assert data["prompts"][0]["token_ids"] == tokenizer("def clamp(x):")["input_ids"]


def test_a_chat_prompt_equals_only_a_chat_prompt_of_the_same_messages():
    one = ChatPrompt((ChatMessage("user", "a\n[user] b"),))
    two = ChatPrompt((ChatMessage("user", "a"), ChatMessage("user", "b")))
    assert str(one) == str(two) and one != two and len({one, two}) == 2
    assert one != str(one) and str(one) == "[user] a\n[user] b"
    assert one == ChatPrompt((ChatMessage("user", "a\n[user] b"),), '{"messages": []}', "other.jsonl:9")


def test_reloading_keeps_results_only_of_the_same_messages_and_adopts_the_files_line():
    from gendiff.state.workspace import Workspace

    workspace = Workspace(["hf-single"], "hf-single")
    for text in parse_prompts(LINES, "jsonl", "p.jsonl"):
        workspace.add(text)
    reread = LINES.replace('"be brief"}, {', '"be brief"},  {')  # same messages, another line
    reread += '{"prompt": "[system] be brief\\n[user] Name a colour."}\n'  # the preview as text
    ids = [p.id for p in workspace.prompts]
    workspace.replace_texts(parse_prompts(reread, "jsonl", "p.jsonl"))
    now = workspace.prompts
    assert [p.id for p in now[:3]] == ids and now[3].id not in ids
    assert now[1].text.line == reread.splitlines()[1]

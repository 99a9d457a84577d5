"""The served engines' chat check without a server: what each flavour asks, and the first
difference of two renderings said with both tokens, visible and inert."""

import asyncio

import pytest

from gendiff.engines.flavour import ServedError
from gendiff.engines.flavours import FLAVOURS
from gendiff.engines.served_chat import check_chat, first_difference
from gendiff.records.chat import ChatMessage

PIECES = {0: "<s>", 5: " a", 6: "\x1b[31m", 7: "\n", 8: "b"}
MESSAGES = (ChatMessage("system", "be brief"), ChatMessage("user", "hi"))
AS_SENT = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]


def piece(token_id):
    return PIECES[token_id]


def test_equal_renderings_have_no_difference():
    assert first_difference([0, 5, 8], [0, 5, 8], piece) is None


def test_first_differing_position_names_both_tokens_inert():
    said = first_difference([0, 5, 7, 8], [0, 5, 6, 8], piece)
    assert said.startswith("first difference at prompt token 2: ")
    assert "7 '↵'" in said and "6 '␛[31m'" in said and "\x1b" not in said


@pytest.mark.parametrize(
    ("ours", "theirs", "who"), [([0, 5], [0, 5, 8], "the server's"), ([0, 0, 5], [0], "the model's")]
)
def test_one_rendering_a_prefix_of_the_other_names_where_the_longer_goes_on(ours, theirs, who):
    said = first_difference(ours, theirs, piece)
    shorter = min(len(ours), len(theirs))
    assert said.startswith(f"first difference at prompt token {shorter}: {who} rendering goes on with ")
    assert f"({len(ours)} against {len(theirs)} tokens)" in said


def run_check(flavour, answers, ours):
    asked = []

    async def post(path, body):
        asked.append((path, body))
        return answers[path]

    result = asyncio.run(check_chat(post, FLAVOURS[flavour], "demo", MESSAGES, ours, piece, 10))
    return result, asked


def test_vllm_is_asked_to_tokenize_the_messages_with_the_generation_prompt():
    result, asked = run_check("openai", {"/tokenize": {"tokens": [0, 5, 8], "count": 3}}, [0, 5, 8])
    assert result is None
    assert asked == [
        (
            "/tokenize",
            {
                "model": "demo",
                "messages": AS_SENT,
                "add_generation_prompt": True,
                "continue_final_message": False,
                "add_special_tokens": False,
            },
        )
    ]


def test_llamacpp_renders_then_tokenizes_the_rendered_text_with_special_tokens():
    answers = {"/apply-template": {"prompt": "RENDERED"}, "/tokenize": {"tokens": [0, 5, 7]}}
    result, asked = run_check("llamacpp", answers, [0, 5, 8])
    assert asked[0] == ("/apply-template", {"messages": AS_SENT, "add_generation_prompt": True})
    assert asked[1] == ("/tokenize", {"content": "RENDERED", "add_special": True, "parse_special": True})
    assert result.startswith("the server's chat template renders this prompt to other ids than the model's ")
    assert "first difference at prompt token 2: the model's template gives 8 'b', the server's 7 '↵'" in result
    assert result.endswith("not run here (start the server with the model's own chat template)")


def test_a_failed_request_is_the_prompts_error_line_and_a_wrong_shape_the_engines():
    result, _ = run_check("llamacpp", {"/apply-template": "server error 404: no route"}, [0])
    assert result == "rendering its chat template (/apply-template): server error 404: no route"
    result, _ = run_check("openai", {"/tokenize": {"tokens": [0, 99]}}, [0, 5])
    assert result.startswith("tokenizing the chat prompt: tokens[1] is token id 99, outside the model's vocabulary")
    with pytest.raises(ServedError, match="no prompt text"):
        run_check("llamacpp", {"/apply-template": {"text": "x"}}, [0])


def test_a_flavour_that_cannot_be_asked_does_not_run_chat_prompts():
    result, asked = run_check("sglang", {}, [0])
    assert asked == [] and result.startswith("flavour sglang: gendiff can't ask this server how it renders chat")

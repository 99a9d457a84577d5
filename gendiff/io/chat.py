"""Chat prompts: a ``.jsonl`` line ``{"messages": [{"role": ..., "content": ...}, ...]}``, checked.

The check of the line's shape (roles, content types, one clear line naming the file, the line
number and what to fix) and the one rendering through the model's own chat template. The
prompt itself is :class:`gendiff.records.chat.ChatPrompt`.
"""

from __future__ import annotations

from gendiff.errors import InputError
from gendiff.records.chat import ROLES, ChatMessage

__all__ = ["ROLES", "ChatMessage", "parse_messages", "render_chat"]


def parse_messages(record: dict, source: str, number: int) -> tuple[ChatMessage, ...]:
    """The messages of one jsonl record, or InputError naming ``source:number`` and the fix."""
    where = f"{source}:{number}"
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InputError(f'{where}: "messages" must be a non-empty list of {{"role": ..., "content": ...}} objects')
    parsed = []
    for index, message in enumerate(messages, 1):
        if not isinstance(message, dict):
            raise InputError(f'{where}: message {index} is not an object; write {{"role": ..., "content": ...}}')
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise InputError(f"{where}: message {index} has an unknown role; use one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise InputError(f'{where}: message {index} has no string "content"; give its text as a string')
        try:
            content.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(f"{where}: message {index} holds an unpaired surrogate; fix the escape") from None
        parsed.append(ChatMessage(role, content))
    return tuple(parsed)


def render_chat(tokenizer, messages: tuple[ChatMessage, ...], model: str, where: str) -> list[int]:
    """The token ids of ``messages`` through the model tokenizer's own chat template (generation
    prompt added); InputError naming the model and ``where`` (file:line) when it has no template.

    The rendered text is tokenized without the tokenizer's own special tokens: a template that
    wants BOS writes ``{{ bos_token }}`` itself, so BOS is never doubled."""
    if not getattr(tokenizer, "chat_template", None):
        raise InputError(
            f"{where}: a chat prompt, but model {model} has no chat template (no chat_template in its "
            "tokenizer_config.json or chat_template.jinja); use a chat model or give plain prompts"
        )
    text = tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in messages], add_generation_prompt=True, tokenize=False
    )
    return [int(i) for i in tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]]

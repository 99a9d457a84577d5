"""A chat prompt as plain data: its messages, and the text every other part of gendiff sees.

A :class:`ChatPrompt` *is* a ``str`` (equal only to a chat prompt of the same messages), the role-tagged preview (``[system] be brief`` and
``[user] hi`` on two lines): the prompt list, the shard rule, a merge's prompt-list check and the
snapshot's ``text`` read that. Only tokenization differs: the session renders ``messages`` once
through the model's chat template (:func:`gendiff.io.chat.render_chat`) instead of encoding the
text, and every engine gets those ids. ``line`` is the ``.jsonl`` line as read, written back
unchanged when the prompt file is saved; ``where`` (``file:line``) names it in errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


def preview(messages: tuple[ChatMessage, ...]) -> str:
    """The text a chat prompt shows: one ``[role] content`` line per message."""
    return "\n".join(f"[{m.role}] {m.content}" for m in messages)


class ChatPrompt(str):
    """A chat prompt: the preview text (``str``), plus ``messages``, the ``line`` it was read
    from (None: made in memory) and ``where`` (``file:line``, or None)."""

    messages: tuple[ChatMessage, ...]
    line: str | None
    where: str | None

    def __new__(cls, messages: tuple[ChatMessage, ...], line: str | None = None, where: str | None = None):
        made = super().__new__(cls, preview(tuple(messages)))
        made.messages = tuple(messages)
        made.line = line
        made.where = where
        return made

    # a chat prompt is its messages: never equal to a text prompt, nor to another chat whose
    # messages differ but whose preview reads the same (a content holding "\n[user] ...")
    def __eq__(self, other: object) -> bool:
        return isinstance(other, ChatPrompt) and self.messages == other.messages

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(("chat", self.messages))

    def __reduce__(self) -> tuple[Any, ...]:  # pickled whole (shard workers), not as its text
        return (ChatPrompt, (self.messages, self.line, self.where))

    def messages_data(self) -> list[dict[str, str]]:
        return [m.to_dict() for m in self.messages]


def chat_from_data(text: str, messages: list[dict[str, Any]] | None) -> str:
    """A stored prompt back as it ran: a ChatPrompt when the record holds messages, else the text."""
    if not messages:
        return text
    return ChatPrompt(tuple(ChatMessage(str(m["role"]), str(m["content"])) for m in messages))


def messages_of(prompt: str) -> list[dict[str, str]] | None:
    """The messages of a chat prompt as stored (``{"role", "content"}``), None for a text prompt."""
    return prompt.messages_data() if isinstance(prompt, ChatPrompt) else None

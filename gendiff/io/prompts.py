"""The prompt book: a list of prompts kept in a .txt (one per line) or .jsonl file.

In ``.txt`` files a prompt is one line; ``\\n`` stands for a newline, ``\\t`` for a tab and
``\\\\`` for a backslash; blank lines are skipped. In ``.jsonl`` files each line is
``{"prompt": "..."}`` or a chat prompt ``{"messages": [{"role": ..., "content": ...}, ...]}``
(:class:`gendiff.records.chat.ChatPrompt`, kept line for line when the file is saved). A UTF-8 byte-order mark at the start of the file is dropped (it is not
part of prompt 1). Saving is atomic (temp file + rename), keeps the file's format, mode and
symlinks, and is refused for a file with several hard links (see :mod:`gendiff.fileio`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from gendiff.defaults import MAX_PROMPT_CHARS, MAX_PROMPT_FILE_BYTES
from gendiff.errors import GendiffError, InputError
from gendiff.io.chat import parse_messages
from gendiff.io.fileio import atomic_write_text
from gendiff.records.chat import ChatPrompt

BOM = "\ufeff"
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\"}


def unescape_line(line: str) -> str:
    out, chars = [], iter(line)
    for char in chars:
        if char == "\\":
            nxt = next(chars, "")
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
        else:
            out.append(char)
    return "".join(out)


def escape_line(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "")


def parse_prompts(text: str, fmt: str, source: str) -> list[str]:
    """Parse the contents of a prompt file; errors name ``source`` and the line."""
    prompts: list[str] = []
    text = text.removeprefix(BOM)
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if fmt == "jsonl":
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f'{source}:{number}: not valid JSON ({exc.msg}); each line must be {{"prompt": "..."}}'
                ) from None
            if isinstance(record, dict) and "messages" in record and "prompt" not in record:
                where = f"{source}:{number}"
                prompts.append(ChatPrompt(parse_messages(record, source, number), line, where))
                continue
            if not isinstance(record, dict) or not isinstance(record.get("prompt"), str):
                raise InputError(f'{source}:{number}: expected an object with a string "prompt" field')
            prompt = record["prompt"]
        else:
            prompt = unescape_line(line)
        if not prompt.strip():
            raise InputError(f"{source}:{number}: empty prompt; write some text or delete the line")
        if not is_encodable(prompt):
            raise InputError(
                f"{source}:{number}: the prompt holds an unpaired surrogate (a broken \\ud800-\\udfff escape); "
                "it is not text a tokenizer can read: fix the escape"
            )
        prompts.append(prompt)
    return prompts


def format_prompts(prompts: list[str], fmt: str) -> str:
    """The file's text; a chat prompt as the line it was read from (or its messages, if made in memory)."""
    if fmt == "jsonl":
        return "".join(_jsonl_line(p) + "\n" for p in prompts)
    chat = next((i for i, p in enumerate(prompts) if isinstance(p, ChatPrompt)), None)
    if chat is not None:
        raise InputError(f"prompt {chat + 1} is a chat prompt: a .txt file can't hold one; save the prompts as .jsonl")
    return "".join(escape_line(p) + "\n" for p in prompts)


def _jsonl_line(prompt: str) -> str:
    if isinstance(prompt, ChatPrompt):
        return prompt.line or json.dumps({"messages": prompt.messages_data()}, ensure_ascii=False)
    return json.dumps({"prompt": prompt}, ensure_ascii=False)


def file_format(path: Path) -> str:
    return "jsonl" if path.suffix.lower() in (".jsonl", ".json") else "txt"


class PromptFileChanged(GendiffError):
    """The prompt file was changed by another program since gendiff read or wrote it."""


ABSENT = (0, "")  # the stamp of a file that does not exist


def file_stamp(path: Path) -> tuple[int, str] | None:
    """(mtime in ns, sha256 of the bytes), or None if the file is absent."""
    try:
        data = path.read_bytes()
        return path.stat().st_mtime_ns, hashlib.sha256(data).hexdigest()
    except (FileNotFoundError, NotADirectoryError):  # a folder on the way is a file: absent too
        return None


@dataclass
class PromptBook:
    """Prompts plus the file they live in (None for the demo prompts, which are read-only).

    ``stamp`` is the file as gendiff last read or wrote it (None: not tracked), so another program's edit is
    noticed (:meth:`changed_on_disk`) and never silently overwritten (:meth:`save`)."""

    prompts: list[str] = field(default_factory=list)
    path: Path | None = None
    stamp: tuple[int, str] | None = None
    make_folder: bool = False  # the file is gendiff's own (beside its config): its folder is made at the first save

    @classmethod
    def load(cls, path: str | Path) -> PromptBook:
        if not str(path).strip():
            raise InputError("prompts file name is empty; give a .txt or .jsonl file (or leave --prompts out)")
        file = Path(path).expanduser()
        if file.is_dir():
            raise InputError(f"prompts {file}: is a folder; give a .txt or .jsonl file")
        if not file.exists():
            raise InputError(f"prompts {file}: no such file; create it (one prompt per line) or check the path")
        if not file.is_file():  # a FIFO or device would block the read or never end
            raise InputError(f"prompts {file}: not a regular file (a pipe or device); save the prompts to a file")
        size = file.stat().st_size
        if size > MAX_PROMPT_FILE_BYTES:
            raise InputError(
                f"prompts {file}: {size / 2**20:.1f} MiB, more than a prompt file may hold "
                f"({MAX_PROMPT_FILE_BYTES // 2**20} MiB); split it into several files"
            )
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InputError(f"prompts {file}: not UTF-8 text; save it as UTF-8") from None
        except OSError as exc:
            raise InputError(f"prompts {file}: cannot read it ({exc.strerror})") from None
        book = cls(parse_prompts(text, file_format(file), str(file)), file)
        book.stamp = file_stamp(file)
        return book

    def changed_on_disk(self) -> bool:
        """True when the file differs from what gendiff last read or wrote (same bytes count as
        unchanged); always False for a book that does not track its file (``stamp`` None)."""
        if self.path is None or self.stamp is None:
            return False
        return (file_stamp(self.path) or ABSENT)[1] != self.stamp[1]

    def track(self) -> PromptBook:
        """Start tracking the file as it is now (absent included): a later change by another program is noticed."""
        if self.path is not None:
            self.stamp = file_stamp(self.path) or ABSENT
        return self

    def save(self, force: bool = False) -> None:
        """Write the prompts back to their file atomically (no-op without a file). Raises
        PromptFileChanged if another program changed the file since, unless ``force``."""
        if self.path is None:
            return
        if not force and self.changed_on_disk():
            raise PromptFileChanged(f"prompts {self.path}: changed by another program since gendiff read it")
        if self.make_folder:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, format_prompts(self.prompts, file_format(self.path)))
        self.stamp = file_stamp(self.path) or ABSENT


def is_encodable(text: str) -> bool:
    """Whether ``text`` is valid Unicode (no lone surrogates, which JSON escapes can produce)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_prompt(text: str, index: int) -> None:
    if not text.strip():
        raise InputError(f"prompt {index + 1} is empty; write some text or delete it")
    if len(text) > MAX_PROMPT_CHARS:
        raise InputError(
            f"prompt {index + 1} is {len(text):,} characters, more than gendiff tokenizes "
            f"({MAX_PROMPT_CHARS:,}: past any context window it runs); shorten it"
        )
    if not is_encodable(text):
        raise InputError(f"prompt {index + 1} holds an unpaired surrogate character; it is not valid text: fix it")

"""The prompt list's contents and its file: adding, editing, deleting and moving prompts (with
their dialogs), each edit written at once, atomically; an edit another program made to the
file is never overwritten silently, and an edit that could not be saved is kept and said."""

from __future__ import annotations

from pathlib import Path

from textual.message import Message
from textual.widget import Widget

from gendiff.display import inert
from gendiff.errors import GendiffError
from gendiff.io.prompts import PromptBook, PromptFileChanged
from gendiff.records.chat import ChatPrompt
from gendiff.state.workspace import Workspace
from gendiff.tui.screens.choice import Choice
from gendiff.tui.screens.confirm import Confirm
from gendiff.tui.screens.editor import PromptEditor
from gendiff.tui.screens.export import ExportDialog

CHECK_ON_DISK_S = 2.0  # how often the file is looked at for another program's edits


class PromptFile(Widget):
    """Invisible; posts :class:`Changed` (with the prompt to select) after every change."""

    DEFAULT_CSS = "PromptFile { display: none; }"

    class Changed(Message):
        def __init__(self, select: int | None = None, rebuilt: bool = False) -> None:
            super().__init__()
            self.select = select  # the prompt id to highlight, if any
            self.rebuilt = rebuilt  # the list was replaced (a reload)

    def __init__(self, ws: Workspace, book: PromptBook | None) -> None:
        super().__init__()
        self.ws = ws
        self.book = book
        self.unsaved: str | None = None  # why the last save failed

    @property
    def path(self) -> str:
        return str(self.book.path) if self.book is not None and self.book.path is not None else "(no file)"

    def on_mount(self) -> None:
        if self.book is not None and self.book.path is not None:
            self.set_interval(CHECK_ON_DISK_S, self.check_on_disk)

    # ── edits ──────────────────────────────────────────────────────────────
    def add(self, after: int | None) -> None:
        def added(text: str | None) -> None:
            if text is None:
                return
            position = self.ws.index_of(after) + 1 if after is not None and self.ws.get(after) else 0
            prompt = self.ws.add(text, position)
            self.save()
            self.post_message(self.Changed(prompt.id))

        self.app.push_screen(PromptEditor("", "New prompt"), added)

    def edit(self, pid: int) -> None:
        prompt = self.ws.get(pid)
        if prompt is None:
            return

        def edited(text: str | None) -> None:
            if text is None or self.ws.get(pid) is None:
                return
            self.ws.edit(pid, text)  # old tokens belong to the old text
            self.save()
            self.post_message(self.Changed(pid))

        number = self.ws.index_of(pid) + 1
        if isinstance(prompt.text, ChatPrompt):  # its messages shown, not edited (not built)
            self.app.push_screen(PromptEditor(prompt.text, f"Chat prompt {number} (read-only)", read_only=True))
            return
        self.app.push_screen(PromptEditor(prompt.text, f"Edit prompt {number}"), edited)

    def delete(self, pid: int) -> None:
        prompt = self.ws.get(pid)
        if prompt is None:
            return
        if self.ws.mark(prompt)[0] == "running":
            self.notify("this prompt is running: cancel (escape) first", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes and self.ws.get(pid) is not None:
                position = self.ws.index_of(pid)
                self.ws.delete(pid)
                self.save()
                rest = self.ws.prompts
                self.post_message(self.Changed(rest[min(position, len(rest) - 1)].id if rest else None))

        number = self.ws.index_of(pid) + 1
        self.app.push_screen(Confirm(f"Delete prompt {number}?", quote=prompt.text), answered)

    def move(self, pid: int, offset: int) -> None:
        if self.ws.move(pid, offset):
            self.save()
            self.post_message(self.Changed(pid))

    # ── the file ───────────────────────────────────────────────────────────
    def save(self, force: bool = False) -> None:
        """Write the list now. If another program changed the file since gendiff read it, ask:
        reload theirs, keep mine (overwrite), or save mine elsewhere."""
        if self.book is None or self.book.path is None:
            return
        first_save = not self.book.path.exists()
        self.book.prompts = [p.text for p in self.ws.prompts]
        try:
            self.book.save(force=force)
        except PromptFileChanged:
            self.unsaved = "changed on disk by another program"
            self.ask_about_external_edit()
            return
        except GendiffError as exc:
            self.unsaved = str(exc)
            self.notify(
                f"{inert(str(exc))} (your edit is kept in the app; q will warn before quitting)",
                severity="error",
                timeout=10,
            )
            return
        self.unsaved = None
        if first_save:
            self.notify(f"prompts saved to {inert(str(self.book.path))}")

    def ask_about_external_edit(self) -> None:
        def chosen(answer: str | None) -> None:
            if answer == "reload":
                self.reload()
            elif answer == "keep":
                self.save(force=True)
            elif answer == "save-as":
                self.save_as()
            else:
                self.notify("your edits are kept in the app only; the next edit asks again", severity="warning")

        self.app.push_screen(
            Choice(
                f"{self.path} was changed by another program since gendiff read it.",
                [
                    (
                        "reload",
                        "r  reload theirs (your unsaved edits are dropped; unchanged prompts keep their results)",
                    ),
                    ("keep", "k  keep mine (overwrite)"),
                    ("save-as", "s  save mine as another file"),
                ],
            ),
            chosen,
        )

    def reload(self) -> None:
        assert self.book is not None and self.book.path is not None
        try:
            book = PromptBook.load(self.book.path)
        except GendiffError as exc:
            self.notify(f"{inert(str(exc))}; your edits are kept in the app", severity="error", timeout=10)
            return
        self.book = book
        kept = self.ws.replace_texts(book.prompts)
        self.unsaved = None
        self.post_message(self.Changed(self.ws.prompts[0].id if self.ws.prompts else None, rebuilt=True))
        results = f"; {kept} prompt{'s' if kept != 1 else ''} kept {'their' if kept != 1 else 'its'} results"
        self.notify(f"reloaded {inert(str(book.path))}{results if kept else ''}")

    def save_as(self) -> None:
        assert self.book is not None and self.book.path is not None
        suggestion = str(self.book.path.with_name(self.book.path.stem + "-mine" + self.book.path.suffix))

        def prepare(path: str):  # noqa: ANN202 — the dialog's job
            target = Path(path).expanduser()
            if target.exists():
                raise GendiffError(f"{target} exists; pick a new name")
            book = PromptBook([p.text for p in self.ws.prompts], target).track()

            def write() -> tuple[Path, PromptBook]:
                book.save()
                return target, book

            return write

        def done(result: object) -> None:
            if result is not None:
                path, book = result  # type: ignore[misc]
                self.book, self.unsaved = book, None
                self.post_message(self.Changed())
                self.notify(f"prompts saved to {inert(str(path))}; gendiff now edits that file")

        self.app.push_screen(ExportDialog(suggestion, prepare, "Save the prompts to:"), done)

    def check_on_disk(self) -> None:
        """Say so as soon as the file changes under us."""
        if self.book is not None and self.unsaved is None and self.book.changed_on_disk():
            self.unsaved = "changed on disk by another program"
            self.ask_about_external_edit()

"""Editing the prompt list (add, edit, delete, move) and keeping its file in step: every edit is
written at once; an edit made to the file by another program is never overwritten silently."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gendiff.errors import GendiffError
from gendiff.io.prompts import PromptBook, PromptFileChanged
from gendiff.tui.screens.choice import Choice
from gendiff.tui.screens.confirm import Confirm
from gendiff.tui.screens.editor import PromptEditor
from gendiff.tui.screens.export import ExportDialog

if TYPE_CHECKING:
    from gendiff.tui.screens.main import MainScreen

    _Base = MainScreen
else:
    _Base = object


class PromptActions(_Base):
    """Mixed into MainScreen (uses its ``ws``, ``book``, ``unsaved`` and refresh methods)."""

    def _editable(self) -> bool:
        if self.snapshot is not None:
            self.notify("this is a saved snapshot: prompts are read-only here", severity="warning")
            return False
        return True

    def action_add(self) -> None:
        if not self._editable():
            return

        def added(text: str | None) -> None:
            if text is None:
                return
            position = self.current_index + 1 if self.ws.prompts else 0
            self.ws.add(text, position)
            self.save_book()
            self.refresh_prompt_list(position)
            self.refresh_view()

        self.app.push_screen(PromptEditor("", "New prompt"), added)

    def action_edit(self) -> None:
        prompt = self.current
        if prompt is None or not self._editable():
            return
        pid = prompt.id

        def edited(text: str | None) -> None:
            if text is None or self.ws.get(pid) is None:
                return
            self.ws.edit(pid, text)  # old tokens belong to the old text
            self.save_book()
            self.refresh_all()

        self.app.push_screen(PromptEditor(prompt.text, f"Edit prompt {self.current_index + 1}"), edited)

    def action_delete(self) -> None:
        prompt = self.current
        if prompt is None or not self._editable():
            return
        if self.ws.mark(prompt)[0] == "running":
            self.notify("this prompt is running: cancel (escape) first", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes and self.ws.get(prompt.id) is not None:
                position = self.ws.index_of(prompt.id)
                self.ws.delete(prompt.id)
                self.save_book()
                self.refresh_prompt_list(min(position, max(0, len(self.ws.prompts) - 1)))
                self.refresh_view()

        self.app.push_screen(Confirm(f"Delete prompt {self.current_index + 1}?", quote=prompt.text), answered)

    def action_move(self, offset: int) -> None:
        prompt = self.current
        if prompt is None or not self._editable():
            return
        if self.ws.move(prompt.id, offset):
            self.save_book()
            self.refresh_prompt_list(self.ws.index_of(prompt.id))
            self.refresh_view()

    # ── the file ───────────────────────────────────────────────────────────
    def save_book(self, force: bool = False) -> None:
        """Write the prompt list at once (atomically). If another program changed the file since
        gendiff read it, ask first: reload theirs, keep mine (overwrite), or save mine elsewhere."""
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
                f"{exc} (your edit is kept in the app; q will warn before quitting)", severity="error", timeout=10
            )
            return
        self.unsaved = None
        if first_save:
            self.notify(f"prompts saved to {self.book.path}")

    def ask_about_external_edit(self) -> None:
        path = self.book.path if self.book else None

        def chosen(answer: str | None) -> None:
            if answer == "reload":
                self.reload_book()
            elif answer == "keep":
                self.save_book(force=True)
            elif answer == "save-as":
                self.save_book_as()
            else:
                self.notify("your edits are kept in the app only; the next edit asks again", severity="warning")

        self.app.push_screen(
            Choice(
                f"{path} was changed by another program since gendiff read it.",
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

    def reload_book(self) -> None:
        assert self.book is not None and self.book.path is not None
        try:
            book = PromptBook.load(self.book.path)
        except GendiffError as exc:
            self.notify(f"{exc}; your edits are kept in the app", severity="error", timeout=10)
            return
        self.book = book
        kept = self.ws.replace_texts(book.prompts)
        self.unsaved = None
        self.refresh_prompt_list(0)
        self.refresh_view()
        results = (
            f"; {kept} prompt{'s' if kept != 1 else ''} kept {'their' if kept != 1 else 'its'} results" if kept else ""
        )
        self.notify(f"reloaded {book.path}{results}")

    def save_book_as(self) -> None:
        assert self.book is not None and self.book.path is not None
        suggestion = str(self.book.path.with_name(self.book.path.stem + "-mine" + self.book.path.suffix))

        def write(path: str) -> Path:
            target = Path(path).expanduser()
            if target.exists():
                raise GendiffError(f"{target} exists; pick a new name")
            book = PromptBook([p.text for p in self.ws.prompts], target).track()
            book.save()
            self.book, self.unsaved = book, None
            return target

        def done(path: object) -> None:
            if path is not None:
                self.refresh_prompt_list()
                self.notify(f"prompts saved to {path}; gendiff now edits that file")

        self.app.push_screen(ExportDialog(suggestion, write, "Save the prompts to:"), done)

    def check_book_on_disk(self) -> None:
        """Called when the app regains attention: say so as soon as the file changes under us."""
        if self.book is not None and self.unsaved is None and self.book.changed_on_disk():
            self.unsaved = "changed on disk by another program"
            self.ask_about_external_edit()

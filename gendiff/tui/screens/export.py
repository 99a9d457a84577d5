"""Path dialog: enter checks the path and writes in a worker (a big snapshot takes seconds), saying
so; a failure is shown here and the typed path stays; escape leaves (a write already going ends)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label
from textual.worker import Worker, WorkerState

from gendiff.display import inert
from gendiff.errors import GendiffError, describe

Job = Callable[[], Any]
# the format follows the name (gendiff.io.snapshots.format_for); said where the name is typed
FORMATS = ".gdz: compressed columns (gendiff export --json reads it out) · any other name: JSON"


# keys typed before the dialog had them that edit the path as the field itself would
EDIT_KEYS = {"ctrl+u": "delete_left_all", "backspace": "delete_left", "ctrl+w": "delete_left_word", "home": "home"}


class ExportDialog(ModalScreen[Any]):
    """``prepare(path)`` runs at enter on the UI thread (it takes what to write now, and raises
    GendiffError to refuse) and returns the job that writes; the dialog returns the job's result,
    or None when cancelled."""

    BINDINGS = [
        Binding(
            "escape",
            "cancel",
            "Cancel",
            id="export.cancel",
            tooltip="Close the dialog (a write already started still completes)",
        )
    ]
    # enter is the path field's own key (Input.Submitted), listed in help with the bindings
    HELP = [Binding("enter", "submit", "Write", tooltip="Write the file at the path typed (the name picks the format)")]

    def __init__(
        self,
        default_path: str,
        prepare: Callable[[str], Job],
        title: str = "Export a snapshot to:",
        note: str = "",
        formats: str = FORMATS,
    ) -> None:
        """``note``: a line on what the file will hold (gendiff.state.view.export_note);
        ``formats``: what the name decides (a snapshot's format), or the one format written."""
        super().__init__()
        self.default_path = default_path
        self.prepare = prepare
        self.title_text = title
        self.note = note
        self.formats = formats
        self.writing = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog small"):
            yield Label(Text(inert(self.title_text)), classes="dialog-title")
            yield Input(self.default_path, id="export-path")
            if self.note:
                yield Label(Text(inert(self.note), style="bold"), id="export-note")
            yield Label("", id="export-error")
            yield Label(self.formats, classes="dialog-help", id="export-formats")
            yield Label("enter write · escape cancel", classes="dialog-help")

    def on_mount(self) -> None:
        field = self.query_one(Input)
        field.cursor_blink = False
        field.focus()
        self.call_after_refresh(self.replay_held_keys)  # once the field has the focus

    def replay_held_keys(self) -> None:
        """The keys typed right after x, held while the dialog opened (the app held them from the
        key that opens it), replayed into the path field in order; later keys go to the field."""
        take = getattr(self.app, "take_held_keys", None)
        field = self.query_one(Input)
        for key, character in take() if take is not None else []:
            if character is not None:
                field.insert_text_at_cursor(character)
            elif key in EDIT_KEYS:
                getattr(field, f"action_{EDIT_KEYS[key]}")()
            elif key == "enter":
                self.call_later(field.action_submit)
                break
            elif key == "escape":
                self.action_cancel()
                break

    def say(self, text: str, bold: bool = False) -> None:
        self.query_one("#export-error", Label).update(Text(inert(text), style="bold" if bold else ""))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        path = event.value.strip()
        if self.writing:
            return
        if not path:
            self.say("give a file name")
            return
        try:
            job = self.prepare(path)
        except GendiffError as exc:
            self.say(str(exc), bold=True)  # the dialog stays, with what was typed
            return
        self.writing = True
        self.say(f"writing {path}…")
        self.run_worker(job, thread=True, group="export", exit_on_error=False, name="export")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "export":
            return
        event.stop()  # the dialog reports its own failure, with the path still typed
        if event.state == WorkerState.SUCCESS:
            self.dismiss(event.worker.result)
        elif event.state == WorkerState.ERROR:
            self.writing = False
            self.say(describe(event.worker.error), bold=True)

    def action_cancel(self) -> None:
        self.dismiss(None)

"""One split of a nondeterminism protocol in the usual divergence view: the main screen's
Workbench (prompt list, engine columns side by side, the divergence panel with the top-k and
margins at the split, the step explorer) over a Workspace of two columns, the most common
completion (the reference) and the split's trial (:func:`gendiff.state.determinism.split_workspace`).
Read-only: nothing to run, edit or bisect here (``gendiff determinism PROTOCOL --bisect`` bisects
the most common split); escape goes back to the determinism screen."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static

from gendiff.display import inert
from gendiff.state import view
from gendiff.state.cells import Prompt
from gendiff.state.workspace import Workspace
from gendiff.tui.widgets.workbench import Workbench


class SplitBench(Workbench):
    """The Workbench without b and f: a split's two trials came from calls this view can't replay."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("bisect", "recheck"):
            return False
        return super().check_action(action, parameters)

    def refresh_panel(self, prompt: Prompt | None) -> None:
        super().refresh_panel(prompt)
        title = str(self.panel.border_title or "")
        if " · b bisects" in title:
            self.panel.border_title = title.replace(" · b bisects", "")


class SplitScreen(Screen[None]):
    BINDINGS = [Binding("escape", "close", "Back", id="split.close", tooltip="Back to the determinism screen")]

    def __init__(self, ws: Workspace, what: str) -> None:
        super().__init__()
        self.ws, self.what = ws, what
        self.workbench = SplitBench(ws, comparing=False, read_only=True, id="workbench")

    def compose(self) -> ComposeResult:
        yield Static("", id="run-line")
        yield self.workbench
        yield Footer(compact=True, show_command_palette=False)

    async def on_mount(self) -> None:
        self.workbench.where = "determinism split"
        await self.workbench.set_engines()
        self.workbench.apply_layout(self.app.size.width)
        self.workbench.prompt_list.focus()
        self.query_one("#run-line", Static).update(inert(view.header(self.ws, self.what, "", "escape: back")))
        self.workbench.bring_tokens_into_view()

    def on_resize(self, event: events.Resize) -> None:
        self.workbench.apply_layout(event.size.width)
        self.call_after_refresh(self.workbench.refresh_view)

    def action_close(self) -> None:
        self.dismiss(None)

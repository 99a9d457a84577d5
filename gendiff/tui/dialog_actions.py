"""The main screen's dialogs: settings (s) and export (x). A settings change clears the results
made with other settings; an export writes the state model's snapshot."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from gendiff.engines import engine_names
from gendiff.engines.vllm import vllm_installed
from gendiff.io.snapshots import save_snapshot
from gendiff.run.options import RunOptions
from gendiff.tui.config import save_settings
from gendiff.tui.screens.export import ExportDialog
from gendiff.tui.screens.settings import SettingsScreen

if TYPE_CHECKING:
    from gendiff.tui.screens.main import MainScreen

    _Base = MainScreen
else:
    _Base = object


class DialogActions(_Base):
    """Mixed into MainScreen (uses its ``ws``, ``options``, ``snapshot`` and refresh methods)."""

    def action_settings(self) -> None:
        if self.snapshot is not None:
            self.notify("viewing a snapshot: settings are those it was made with", severity="warning")
            return

        available = [n for n in engine_names() if n != "vllm" or _vllm_available()]

        async def applied(options: RunOptions | None) -> None:
            if options is None or options == self.options:
                return
            if self.running:
                self.notify("a run is in progress: settings not changed (escape cancels it)", severity="warning")
                return
            self.options = options
            save_settings(options)
            self.ws.set_engines(options.labels, options.reference_label)
            self.run_progress = None
            await self.rebuild_columns()
            self.refresh_all()
            self.notify("settings applied: results cleared; R runs all prompts")

        self.app.push_screen(SettingsScreen(self.options, available), applied)

    def action_export(self) -> None:
        snapshot = self.ws.to_snapshot()
        if snapshot is None:
            self.notify("nothing to export yet: run the prompts first (R)", severity="warning")
            return

        def written(path: object) -> None:
            if path is not None:
                self.notify(f"snapshot written to {path}")

        default = f"gendiff-{datetime.now():%Y%m%d-%H%M%S}.json"
        self.app.push_screen(ExportDialog(default, partial(save_snapshot, snapshot)), written)


def _vllm_available() -> bool:

    return vllm_installed()

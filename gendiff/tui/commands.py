"""gendiff's commands in the command palette (ctrl+p).

Each command names an action; it runs on the part that owns that key (the prompt list, the
workbench, the screen, the app: the first that has the action), so the palette and the key
bindings always do the same thing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from textual.app import App, SystemCommand
from textual.screen import Screen


@dataclass(frozen=True)
class PaletteCommand:
    title: str
    help: str
    action: str  # e.g. "run(True)"

    @property
    def action_name(self) -> str:
        return self.action.split("(", 1)[0]


COMMANDS = (
    PaletteCommand("Run the selected prompt", "run every engine on the selected prompt (r)", "run_selected"),
    PaletteCommand("Run all prompts", "run every engine on every prompt (R)", "run_all"),
    PaletteCommand("Cancel the run", "stop between steps; what finished is kept (escape)", "cancel"),
    PaletteCommand("Next divergence", "jump to the next prompt × engine that diverged (n)", "jump(1)"),
    PaletteCommand("Previous divergence", "jump to the previous divergence (p)", "jump(-1)"),
    PaletteCommand("Next step", "step explorer: every engine's top-k at the next step (→ or ])", "step(1)"),
    PaletteCommand("Previous step", "step explorer: every engine's top-k at the step before (← or [)", "step(-1)"),
    PaletteCommand("Back to the divergence", "leave the step explorer (g)", "step_home"),
    PaletteCommand(
        "Only one engine", "compare view: show one engine's A and B columns, then the next (o)", "filter_engine"
    ),
    PaletteCommand("Diagnose the divergence", "bisect the network and test re-convergence (b)", "bisect"),
    PaletteCommand("Re-check in float32", "re-run the diverging pairs of this prompt's call in float32 (f)", "recheck"),
    PaletteCommand(
        "Determinism protocols",
        "the selected prompt N times: needle, repeat, single, mixed, prefix; unique, TARr@N, splits (D)",
        "determinism",
    ),
    PaletteCommand("Export a snapshot", "save the run as JSON (x)", "export"),
    PaletteCommand("Settings", "engines, dtype, tokens, top-k … (s)", "settings"),
    PaletteCommand("Themes", "pick one of gendiff's themes (or your own)", "change_theme"),
    PaletteCommand("Open the engine log", "what engines and libraries printed during this session", "open_engine_log"),
    PaletteCommand("Add a prompt", "open the editor on a new prompt (a)", "add"),
    PaletteCommand("Help", "every key (?)", "help"),
    PaletteCommand("Quit", "leave gendiff (q)", "quit"),
)


def target_of(app: App[object], screen: Screen[object], command: PaletteCommand) -> object | None:
    """The first of the screen's parts (``command_targets``), the screen or the app that implements
    the command's action; None if none does."""
    for namespace in (*getattr(screen, "command_targets", ()), screen, app):
        if hasattr(namespace, f"action_{command.action_name}"):
            return namespace
    return None


def palette_commands(app: App[object], screen: Screen[object]) -> Iterator[SystemCommand]:
    """The commands of ``COMMANDS`` that the app (or the screen) implements and that apply now,
    for ``get_system_commands``."""
    for command in COMMANDS:
        namespace = target_of(app, screen, command)
        if namespace is None or namespace.check_action(command.action_name, ()) is False:  # type: ignore[attr-defined]
            continue  # the screen hides it here (a snapshot's run/edit keys, …)

        async def run(action: str = command.action, where: object = namespace) -> None:
            await app.run_action(action, where)  # type: ignore[arg-type]

        yield SystemCommand(command.title, command.help, run)

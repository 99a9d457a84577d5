"""GendiffApp, the shell: themes, the user's config, global keys (quit, help, theme) and the one
place a worker's unexpected failure becomes a notification. The work happens in MainScreen."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.widgets import OptionList
from textual.worker import Worker, WorkerState

from gendiff.demo import demo_prompts_path
from gendiff.display import inert
from gendiff.errors import GendiffError, describe
from gendiff.io.capture import active_log
from gendiff.io.documents import Document
from gendiff.io.prompts import PromptBook
from gendiff.run.options import RunOptions
from gendiff.themes import DEFAULT_THEME, THEMES
from gendiff.themes.user import load_user_themes
from gendiff.tui.commands import palette_commands
from gendiff.tui.config import config_note, config_path, load_config, restore_settings, save_config
from gendiff.tui.heap import IDLE_S, IdleCollector
from gendiff.tui.screens.confirm import Confirm
from gendiff.tui.screens.determinism import DeterminismScreen
from gendiff.tui.screens.diagnosis import DiagnosisScreen
from gendiff.tui.screens.editor import PromptEditor
from gendiff.tui.screens.engine_log import EngineLogScreen
from gendiff.tui.screens.export import ExportDialog
from gendiff.tui.screens.help import HelpScreen
from gendiff.tui.screens.main import MainScreen
from gendiff.tui.screens.settings import CheckList, SettingsScreen
from gendiff.tui.screens.split_view import SplitScreen
from gendiff.tui.widgets.determinism_setup import DeterminismSetup
from gendiff.tui.widgets.prompt_list import PromptList
from gendiff.tui.widgets.workbench import Workbench


@dataclass
class LaunchOptions:
    """What the command line asked for: the run options, the opened file (checked before the app
    starts, see gendiff.documents) and the theme. ``preload`` loads the reference model at start."""

    run: RunOptions = field(default_factory=RunOptions)
    document: Document | None = None
    theme: str | None = None
    preload: bool = True
    given: frozenset[str] | None = None  # options given on the command line; None: don't restore saved settings


def default_prompt_file() -> Path:
    """Where the prompt list lives when no file is named: beside the config file."""
    return config_path().parent / "prompts.txt"


def default_book(notes: list[tuple[str, str]]) -> PromptBook:
    """The user's own prompt list, or the demo prompts (saved to the user's file at the first edit)."""
    file = default_prompt_file()
    try:
        if file.exists():
            return PromptBook.load(file)
    except GendiffError as exc:
        notes.append((f"{exc}; showing the demo prompts (your file is left as it is)", "error"))
        return PromptBook(PromptBook.load(demo_prompts_path()).prompts, None)
    return PromptBook(PromptBook.load(demo_prompts_path()).prompts, file, make_folder=True).track()


HOLD_KEYS_S = 5.0  # at most this long keys wait for a dialog that is opening


class GendiffApp(App[None]):
    CSS_PATH = "gendiff.tcss"
    TITLE = "gendiff"
    BINDINGS = [
        Binding("t", "next_theme", "Theme", id="theme", show=False, tooltip="Next theme (remembered)"),
        Binding("question_mark", "help", "Help", id="help", tooltip="This list of keys"),
        Binding("q", "quit", "Quit", id="quit", tooltip="Quit (asks first when prompt edits would be lost)"),
        Binding("ctrl+c", "quit", "Quit", id="quit.ctrl-c", show=False, priority=True, tooltip="Quit, as q does"),
    ]

    def __init__(self, options: LaunchOptions | None = None) -> None:
        super().__init__()
        self.options = options or LaunchOptions()
        self.startup_notes: list[tuple[str, str]] = []
        document = self.options.document
        if document is None:
            document = Document(book=default_book(self.startup_notes))
        run = self.options.run
        problem = config_note()
        if problem:
            self.startup_notes.append((problem, "warning"))
        if self.options.given is not None and document.snapshot is None:
            run, note = restore_settings(run, set(self.options.given))
            if note:
                self.startup_notes.append((note, "warning"))
        self.main = MainScreen(run, document, self.options.preload)
        self.heap = IdleCollector()

    def get_default_screen(self) -> MainScreen:
        # the main screen from the first frame: keys typed while the app starts reach it
        return self.main

    def get_theme_variable_defaults(self) -> dict[str, str]:
        # gendiff's own variables, so that any Textual theme (not only ours) can render the app
        return {
            "diverge": "#E5484D",
            "diverge-text": "#000000",
            "after-diverge": "#F5A524",
            "agree-dim": "#808080",
            "chosen": "#46A758",
        }

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.InputEvent):
            self.heap.note_input()  # a key or the mouse: no collection of the older generations now
        await super().on_event(event)

    def on_unmount(self) -> None:
        self.heap.uninstall()

    def on_mount(self) -> None:
        self.heap.install()
        self.set_interval(IDLE_S, self.heap.tick)
        for theme in self.gendiff_themes():
            self.register_theme(theme)
        wanted = self.options.theme or load_config().get("theme") or DEFAULT_THEME
        if wanted not in self.available_themes:
            self.startup_notes.append(
                (f"theme {wanted!r} is unknown; using {DEFAULT_THEME} (t cycles themes)", "warning")
            )
            wanted = DEFAULT_THEME
        self.theme = wanted
        # the theme picker offers gendiff's themes (and the user's), not Textual's stock ones
        ours = {t.name for t in self.gendiff_themes()}
        for name in [name for name in self.available_themes if name not in ours]:
            self.unregister_theme(name)
        self.theme_chosen = True  # from now on a theme change is the user's: remembered
        for message, severity in self.startup_notes:
            self.notify(inert(message), severity=severity, timeout=8)  # type: ignore[arg-type]

    def gendiff_themes(self) -> list:
        """gendiff's themes, then the user's valid ones from the config folder's ``themes/``
        (loaded once; each refused file becomes a startup note)."""
        if not hasattr(self, "_themes"):
            folder = config_path().parent / "themes"
            user, problems = load_user_themes(folder, {t.name for t in THEMES}, self.get_theme_variable_defaults())
            self.startup_notes += [(problem, "warning") for problem in problems]
            self._themes = [*THEMES, *user]
        return self._themes

    def get_system_commands(self, screen) -> Iterable[SystemCommand]:  # noqa: ANN001 — a Screen
        # the palette offers gendiff's own commands (see gendiff.tui.commands), not Textual's stock ones
        yield from palette_commands(self, screen)

    def action_open_engine_log(self) -> None:

        self.push_screen(EngineLogScreen(active_log()))

    def watch_theme(self, theme: str) -> None:
        # t, --theme and the command palette's theme picker all land here
        if self.is_mounted and getattr(self, "theme_chosen", False):  # not the theme set at start
            problem = save_config(theme=theme)
            if problem:
                self.notify(f"theme {theme} used for this session, {inert(problem)}", severity="warning", timeout=8)
            if self.main.is_mounted:
                self.main.refresh_all()

    def action_next_theme(self) -> None:
        names = [t.name for t in self.gendiff_themes()]
        position = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(position + 1) % len(names)]
        self.notify(f"theme: {inert(self.theme)}", timeout=2)

    def action_help(self) -> None:
        palette = Binding(
            self.COMMAND_PALETTE_BINDING, "command_palette", "Command palette: gendiff's commands, themes"
        )
        prompt_keys = {"up", "down", "enter", "home", "end", "pageup", "pagedown"}
        inherited = [b for b in OptionList.BINDINGS if isinstance(b, Binding) and b.key in prompt_keys]
        described = [Binding(b.key, b.action, PromptList.INHERITED.get(b.key, b.description)) for b in inherited]
        groups = [
            ("main screen", [*MainScreen.BINDINGS, *self.BINDINGS, palette]),
            ("prompt list", [*PromptList.BINDINGS, *described]),
            ("columns, panel and step explorer", list(Workbench.BINDINGS)),
            ("questions (delete, discard, quit)", list(Confirm.BINDINGS)),
            ("prompt editor", list(PromptEditor.BINDINGS)),
            ("export and save-as dialogs (x)", [*ExportDialog.HELP, *ExportDialog.BINDINGS]),
            ("diagnosis view", list(DiagnosisScreen.BINDINGS)),
            ("settings", [*SettingsScreen.BINDINGS, *CheckList.BINDINGS]),
            (
                "determinism (D)",
                [
                    *DeterminismScreen.BINDINGS,
                    *DeterminismScreen.HELP,
                    *DeterminismSetup.BINDINGS,
                    *DeterminismSetup.HELP,
                    *SplitScreen.BINDINGS,
                ],
            ),
        ]
        self.push_screen(HelpScreen([(title, [b for b in group if isinstance(b, Binding)]) for title, group in groups]))

    async def action_quit(self) -> None:
        """Quit, unless that would lose something: a draft in the editor, or prompt edits that
        could not be saved; then ask first."""
        losses = []
        if any(isinstance(s, PromptEditor) and s.changed for s in self.screen_stack):
            losses.append("the prompt you are editing")
        unsaved = self.main.prompt_file.unsaved
        if unsaved:
            losses.append(f"prompt edits not saved to {self.main.prompt_file.path} ({unsaved})")
        if not losses or isinstance(self.screen, Confirm):
            self._quit_now()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._quit_now()

        self.push_screen(Confirm(f"Quit and lose {' and '.join(losses)}? y quits · n stays"), answered)

    def _quit_now(self) -> None:
        self.main.cancel_all()  # the workers stop between steps; nothing half-written
        for screen in self.screen_stack:
            if isinstance(screen, DeterminismScreen):
                screen.stop()
        self.exit()

    # ── keys typed while a dialog opens ────────────────────────────────────
    def hold_keys(self) -> None:
        """A key that opens a dialog (a, e, enter) was pressed: until the dialog takes them
        (:meth:`release_keys`), the keys typed after it are held for it instead of running the
        screen's bindings (``d`` or ``q`` in typed text must not delete or quit)."""
        self.keys_held = True
        self.held_keys: list[tuple[str, str | None]] = []  # (key, its character if printable)
        self.set_timer(HOLD_KEYS_S, self.release_keys)  # a dialog that never opens frees them

    def release_keys(self) -> tuple[str, str | None]:
        """What was typed while keys were held, for the dialog: the printable text typed first (it
        inserts it) and the first other key after it (ctrl+s, escape: the dialog acts on it), or None."""
        self.keys_held = False
        held, self.held_keys = getattr(self, "held_keys", []), []
        lead = next((i for i, (_, character) in enumerate(held) if character is None), len(held))
        return "".join(character or "" for _, character in held[:lead]), held[lead][0] if lead < len(held) else None

    def take_held_keys(self) -> list[tuple[str, str | None]]:
        """Every key typed while keys were held, in order (key, its character if printable), for
        a dialog that replays them all (the export path: ``ctrl+u``, the path, ``enter``)."""
        self.keys_held = False
        held, self.held_keys = getattr(self, "held_keys", []), []
        return held

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return False if getattr(self, "keys_held", False) else True

    def on_key(self, event: events.Key) -> None:
        """A key that bubbled up unhandled: held for a dialog that is opening (every binding
        says no meanwhile, see :meth:`hold_keys`), or handed to a dialog that is already up but
        not yet focused (``take_early_key``)."""
        if getattr(self, "keys_held", False):
            self.held_keys.append((event.key, event.character if event.is_printable else None))
            event.stop()
            return
        take = getattr(self.screen, "take_early_key", None)
        if take is not None and take(event):
            event.stop()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a worker's unexpected failure becomes a notification (workers report
        expected failures themselves, as messages)."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            what = "could not load the model" if event.worker.group == "preload" else f"{event.worker.name} failed"
            self.notify(inert(f"{what}: {describe(error)}"), severity="error", timeout=12)
            if event.worker.group == "run":
                self.main.runner.crashed()
            elif event.worker.group in ("diagnose", "recheck"):
                self.main.diagnoser.crashed(event.worker.group, describe(error))

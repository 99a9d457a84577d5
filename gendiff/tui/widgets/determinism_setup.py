"""The determinism screen's setup: the protocol, the trials, the seed (←/→ change the highlighted
row) and the engines (space or enter toggles one; the main screen's engines at first). enter never
runs from here (the screen's Run button and ``R`` do): tab wraps here from the splits table, and a
stray enter must not replace a result. No text field, so ``q`` quits and ``escape`` leaves from
anywhere on the screen."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from gendiff.display import inert
from gendiff.records.determinism import PROTOCOLS

TRIAL_CHOICES = (2, 3, 4, 5, 8, 10, 16, 20, 32, 50, 64, 100, 128, 200, 256, 500, 1000)
WHAT = {
    "needle": "alone, then beside random fillers at a random row and batch size",
    "repeat": "N times alone",
    "single": "the prompt repeated to batch sizes 1..N",
    "mixed": "beside short and long prompts",
    "prefix": "beside its own prefixes",
}


class DeterminismSetup(OptionList):
    """Rows: protocol, trials, seed, then one ``[x] engine`` row per engine."""

    BINDINGS = [
        Binding(
            "right,plus",
            "change(1)",
            "Next value",
            id="determinism.next",
            tooltip="Next protocol, more trials, seed + 1",
        ),
        Binding("left,minus", "change(-1)", "Previous value", id="determinism.prev", show=False),
        Binding(
            "space", "toggle", "Toggle engine", id="determinism.toggle", show=False, tooltip="Run this engine or not"
        ),
    ]

    # enter is OptionList's own key (action_select below), listed in help with the bindings
    HELP = [Binding("enter", "select", "Toggle engine", tooltip="On an engine row: run it or not (never starts a run)")]

    def __init__(self, protocol: str, trials: int, seed: int, engines: list[str], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.protocol, self.trials, self.seed = protocol, trials, seed
        self.engines = list(engines)
        self.checked = set(engines)

    def on_mount(self) -> None:
        self.rebuild()

    def rows(self) -> list[Text]:
        rows = [
            Text(f"protocol  ◂ {self.protocol} ▸"),
            Text(f"trials    ◂ {self.trials} ▸"),
            Text(f"seed      ◂ {self.seed} ▸  (the random layout; recorded)"),
        ]
        rows += [Text(f"engine    [{'x' if e in self.checked else ' '}] {inert(e)}") for e in self.engines]
        return rows

    def rebuild(self) -> None:
        highlighted = self.highlighted
        self.clear_options()
        self.add_options([Option(row) for row in self.rows()])
        self.highlighted = min(highlighted or 0, self.option_count - 1)
        self.border_subtitle = f"{self.protocol}: {WHAT[self.protocol]}"

    def action_change(self, offset: int) -> None:
        row = self.highlighted or 0
        if row == 0:
            self.protocol = PROTOCOLS[(PROTOCOLS.index(self.protocol) + offset) % len(PROTOCOLS)]
        elif row == 1:
            self.trials = step_choice(self.trials, offset)
        elif row == 2:
            self.seed = max(0, self.seed + offset)
        else:
            self.action_toggle()
            return
        self.rebuild()

    def action_toggle(self) -> None:
        row = self.highlighted or 0
        if row >= 3:
            self.checked.symmetric_difference_update({self.engines[row - 3]})
            self.rebuild()

    def action_select(self) -> None:
        """enter (or a click): what the highlighted row means; an engine row toggles, a value row says its keys."""
        if (self.highlighted or 0) >= 3:
            self.action_toggle()
        else:
            self.app.notify("←/→ change this value · R or the Run button runs the protocol", timeout=4)

    @property
    def selected(self) -> list[str]:
        return [e for e in self.engines if e in self.checked]


def step_choice(value: int, offset: int) -> int:
    """The next (1) or previous (-1) trial count of TRIAL_CHOICES from ``value``."""
    if offset > 0:
        return next((c for c in TRIAL_CHOICES if c > value), TRIAL_CHOICES[-1])
    return next((c for c in reversed(TRIAL_CHOICES) if c < value), TRIAL_CHOICES[0])

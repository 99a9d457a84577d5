"""The step explorer from the main screen: ←/→ (or [ / ]) move a step cursor along the selected
prompt's streams, marked in every column, and the panel shows every engine's top-k at that step;
g (or home) goes back to the divergence. The cursor is a view state only (nothing in the Workspace)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gendiff.tui.widgets.divergence_panel import DivergencePanel
from gendiff.tui.widgets.step_view import step_text

if TYPE_CHECKING:
    from gendiff.tui.screens.main import MainScreen

    _Base = MainScreen
else:
    _Base = object


class StepActions(_Base):
    """Mixed into MainScreen (uses its ``ws``, ``current``, ``selected_engine`` and ``step_cursor``)."""

    def divergence_step(self) -> int | None:
        """The selected engine's first divergent step on the selected prompt, or None."""
        prompt = self.current
        d = self.ws.divergence(prompt, self.selected_engine) if prompt is not None else None
        return d.step if d is not None and d.diverged else None

    def longest_stream(self) -> int:
        prompt = self.current
        if prompt is None:
            return 0
        return max((len(self.ws.steps(prompt, label)) for label in self.ws.labels), default=0)

    def action_step(self, offset: int) -> None:
        """Move the step cursor by ``offset``; from no cursor, start next to the divergence (or at 0)."""
        length = self.longest_stream()
        if length == 0:
            self.notify("no tokens to step through yet: run the prompt first (r)")
            return
        if self.step_cursor is None:
            base = self.divergence_step()
            target = (base + offset) if base is not None else 0
        else:
            target = self.step_cursor + offset
        self.step_cursor = max(0, min(length - 1, target))
        self.step_prompt = self.current.id if self.current is not None else None
        self.refresh_view()
        self.call_after_refresh(self.scroll_to_token)

    def action_step_home(self) -> None:
        """Back to the divergence: no cursor, the panel shows the divergence record again."""
        if self.step_cursor is None:
            return
        self.step_cursor = None
        self.refresh_view()
        self.call_after_refresh(self.scroll_to_token)

    def refresh_step_panel(self) -> None:
        """The panel at the cursor: every engine's TokenStep there (None where it had stopped)."""
        prompt, step = self.current, self.step_cursor
        assert prompt is not None and step is not None
        rows = []
        for label in self.ws.labels:
            steps = self.ws.steps(prompt, label)
            rows.append((label, steps[step] if step < len(steps) else None))
        panel = self.query_one("#panel", DivergencePanel)
        divergence = self.divergence_step()
        reference = self.ws.reference
        if self.comparing and self.selected_engine:
            reference = self.selected_engine.replace("@B", "@A")
        title = f"prompt {self.current_index + 1} · step {step} · ←/→ step · g back to the divergence"
        if title != panel.border_title:
            panel.scroll_home(animate=False)
        panel.border_title = title
        width = panel.body.content_region.width or None
        panel.update(step_text(step, rows, reference, self.app.theme_variables, divergence, width))

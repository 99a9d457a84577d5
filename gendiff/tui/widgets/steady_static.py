"""A Static that costs the screen a relayout only when its height changes, and (``settle``) not
while its content changes fast.

Textual's ``Static.update`` relays out the whole screen on every change (the new text could be
taller). The header, the progress strip, the prompt's text and the panel change on every key or
run tick but mostly keep their height: this one measures the new content at its current width and
repaints in place when the height is the same, and does nothing when the content is the same.

With ``settle=True`` (the prompt's text and the panel, which change with every prompt a key moves
to) it does not measure on each change: the new content is drawn in the rows it has, and
:data:`SETTLE_SECONDS` after the last change it measures once and takes the height the content
needs (one relayout, when that differs). Holding ``down`` or ``n`` over a thousand prompts then
repaints what changed and never moves the columns; where the keys stop, the rows fit what is shown.
"""

from __future__ import annotations

from rich.text import Text
from textual.timer import Timer
from textual.visual import VisualType, visualize
from textual.widgets import Static

SETTLE_SECONDS = 0.3  # after the last change, a settling widget takes the height its content needs


class SteadyStatic(Static):
    """``update`` relays out only when the wrapped height at the current width changes."""

    def __init__(self, content: VisualType = "", *, settle: bool = False, **kwargs: object) -> None:
        super().__init__(content, **kwargs)  # type: ignore[arg-type]
        self._measured: tuple[int, int] | None = None  # (width, height) of the content shown
        self.settle = settle
        self._fit_timer: Timer | None = None

    @property
    def settling(self) -> bool:
        """True while a change is drawn in the rows of the content before it (a fit is due)."""
        return self._fit_timer is not None

    def update(self, content: VisualType = "", *, layout: bool = True) -> None:
        if isinstance(content, Text) and isinstance(self.content, Text) and content == self.content:
            return  # the same text and styles: nothing to draw
        width = self.content_region.width if self.is_mounted else 0
        if not layout or width <= 0:
            self._measured = None
            super().update(content, layout=layout)
            return
        if self.settle:
            super().update(content, layout=False)  # ``_measured`` stays what the layout has
            if self._fit_timer is not None:
                self._fit_timer.stop()
            self._fit_timer = self.set_timer(SETTLE_SECONDS, self.fit)
            return
        height = visualize(self, content, markup=self._render_markup).get_height(self.styles, width)
        before = self._measured
        if before is None or before[0] != width:
            before = (width, self.visual.get_height(self.styles, width))
        self._measured = (width, height)
        super().update(content, layout=height != before[1])

    def fit(self) -> None:
        """Take the height the content needs now (a relayout only when it differs from the rows held)."""
        if self._fit_timer is not None:
            self._fit_timer.stop()
            self._fit_timer = None
        width = self.content_region.width
        if width <= 0:
            return
        height = self.visual.get_height(self.styles, width)
        laid_out, self._measured = self._measured, (width, height)
        if laid_out != (width, height):
            self.refresh(layout=True)

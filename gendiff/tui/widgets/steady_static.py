"""A Static that costs the screen a relayout only when its height changes.

Textual's ``Static.update`` relays out the whole screen on every change (the new text could be
taller). The header, the progress strip, the prompt's text and the panel change on every key or
run tick but mostly keep their height: this one measures the new content at its current width and
repaints in place when the height is the same, and does nothing when the content is the same.
"""

from __future__ import annotations

from rich.text import Text
from textual.visual import VisualType, visualize
from textual.widgets import Static


class SteadyStatic(Static):
    """``update`` relays out only when the wrapped height at the current width changes."""

    def __init__(self, content: VisualType = "", **kwargs: object) -> None:
        super().__init__(content, **kwargs)  # type: ignore[arg-type]
        self._measured: tuple[int, int] | None = None  # (width, height) of the content shown

    def update(self, content: VisualType = "", *, layout: bool = True) -> None:
        if isinstance(content, Text) and isinstance(self.content, Text) and content == self.content:
            return  # the same text and styles: nothing to draw
        width = self.content_region.width if self.is_mounted else 0
        if not layout or width <= 0:
            self._measured = None
            super().update(content, layout=layout)
            return
        height = visualize(self, content, markup=self._render_markup).get_height(self.styles, width)
        before = self._measured
        if before is None or before[0] != width:
            before = (width, self.visual.get_height(self.styles, width))
        self._measured = (width, height)
        super().update(content, layout=height != before[1])

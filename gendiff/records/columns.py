"""A snapshot's steps kept as columns: typed arrays with one row per step, shared by every trace
of the snapshot, instead of a TokenStep object per step and a TopToken per candidate.

This is what a snapshot read from a ``.gdz`` file holds (:mod:`gendiff.io.columnar`): a thousand
prompts × five engines × 256 tokens cost their arrays (tens of MB), not 8 million objects. A
trace's ``steps`` is then a :class:`StepColumns`, a read-only sequence of TokenSteps built when
the trace is looked at (the last few traces built are kept), so ``Trace.steps`` works as before;
its ``token_ids``, ``logprobs`` and ``margins`` read the arrays directly (what a comparison needs).

Candidates are stored ``width`` to a row, row-major (row ``r``'s ``j``-th candidate is at
``r * width + j``), ``top_count[r]`` of them used. See docs/snapshot-format.md for the columns.
"""

from __future__ import annotations

import itertools
import operator
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload

from gendiff.records.trace import TokenStep, TopToken

# a step's flags
RAW_TOP = 1  # the step has raw scores (a penalty was applied): raw_top is a tuple, maybe empty
RAW_LOGPROB = 2  # ... and the raw logprob of the chosen token
# a candidate's flags
HAS_LOGIT = 1  # the engine gave the candidate's logit (else ``logit`` is None)

STEP_COLUMNS = ("token_id", "logprob", "flags", "top_count")
CANDIDATE_FIELDS = ("token_id", "logprob", "logit", "flags")
RAW_STEP_COLUMNS = ("raw_logprob", "raw_top_count")


def candidate_columns(prefix: str) -> tuple[str, ...]:
    """``top_token_id``, ``top_logprob``, …: the columns of one candidate list (``top``/``raw_top``)."""
    return tuple(f"{prefix}_{name}" for name in CANDIDATE_FIELDS)


# traces whose TokenSteps are kept built (a screen shows a prompt's engines, a few prompts back)
KEPT_TRACES = 64


class Columns:
    """Every step of a snapshot as typed arrays, the token-text table and the texts that differ from it.

    ``arrays``: column name -> a flat sequence that indexes and slices (a ``memoryview`` or an
    ``array``); the raw columns (:data:`RAW_STEP_COLUMNS`, ``raw_top_*``) are absent when no step
    has raw scores.
    ``texts``: token id -> its text; ``overrides``: (``"step"``/``"top"``/``"raw_top"``, flat index)
    -> the text at that place where it is not the table's (a tokenizer that decodes an id two ways).
    """

    def __init__(
        self,
        arrays: Mapping[str, Any],
        width: int,
        raw_width: int,
        texts: Mapping[int, str],
        overrides: Mapping[tuple[str, int], str] | None = None,
        id_range: tuple[int, int] | None = None,
    ) -> None:
        self.arrays = dict(arrays)
        self.width = width
        self.raw_width = raw_width
        self.texts = texts
        self.overrides = dict(overrides or {})
        # (smallest, largest) id of the id columns when the reader already knows it (else None)
        self.id_range = id_range
        self.rows = len(self.arrays["token_id"])
        self._built: OrderedDict[tuple[int, int], tuple[TokenStep, ...]] = OrderedDict()
        self._lock = threading.Lock()
        self._two: bool | None = None

    def column(self, name: str, start: int, stop: int, width: int = 1) -> list[Any]:
        """Rows ``start:stop`` of a column as Python values (``width`` values per row)."""
        return self.arrays[name][start * width : stop * width].tolist()

    def steps(self, start: int, stop: int) -> tuple[TokenStep, ...]:
        """Rows ``start:stop`` as TokenSteps (the last :data:`KEPT_TRACES` ranges built are kept)."""
        key = (start, stop)
        with self._lock:
            built = self._built.get(key)
            if built is not None:
                self._built.move_to_end(key)
                return built
        built = self._build(start, stop)
        with self._lock:
            self._built[key] = built
            while len(self._built) > KEPT_TRACES:
                self._built.popitem(last=False)
        return built

    def step(self, row: int) -> TokenStep:
        """One row as a TokenStep (from the kept ones when its trace was built)."""
        with self._lock:
            for (start, stop), built in reversed(self._built.items()):
                if start <= row < stop:
                    return built[row - start]
        return self._build(row, row + 1)[0]

    def texts_of(self, start: int, stop: int) -> list[str]:
        """The chosen tokens' texts of rows ``start:stop``."""
        ids = self.column("token_id", start, stop)
        return [self._text("step", start + i, token_id) for i, token_id in enumerate(ids)]

    def margins(self, start: int, stop: int) -> list[float | None]:
        """Top-1 minus top-2 logprob per row (None with fewer than 2 candidates): TokenStep.margin."""
        k = self.width
        if k < 2 or start == stop:
            return [None] * (stop - start)
        logprobs = self.arrays["top_logprob"]
        first = logprobs[start * k : stop * k : k].tolist()  # strided: every row's top-1, no copy of the rest
        second = logprobs[start * k + 1 : stop * k : k].tolist()
        margins: list[float | None] = list(map(operator.sub, first, second))
        if not self._every_row_has_two():
            counts = self.column("top_count", start, stop)
            margins = [m if n >= 2 else None for m, n in zip(margins, counts)]
        return margins

    def margins_below(self, start: int, stop: int, threshold: float) -> tuple[int, ...]:
        """The rows of ``start:stop`` (counted from ``start``) whose margin is below ``threshold``."""
        k = self.width
        if k < 2 or start >= stop:
            return ()
        if not self._every_row_has_two():
            margins = self.margins(start, stop)
            return tuple([i for i, m in enumerate(margins) if m is not None and m < threshold])
        logprobs = self.arrays["top_logprob"]
        first = logprobs[start * k : stop * k : k].tolist()
        second = logprobs[start * k + 1 : stop * k : k].tolist()
        below = map(threshold.__gt__, map(operator.sub, first, second))
        return tuple(itertools.compress(range(stop - start), below))

    def _every_row_has_two(self) -> bool:
        """Whether every row has at least 2 candidates (then every margin is a number); read once."""
        if self._two is None:
            counts = self.arrays["top_count"]
            if getattr(counts, "format", getattr(counts, "typecode", None)) == "B":
                self._two = not bytes(counts).translate(None, bytes(range(2, 256)))
            else:
                self._two = min(counts, default=2) >= 2
        return self._two

    def _text(self, kind: str, index: int, token_id: int) -> str:
        if self.overrides:
            text = self.overrides.get((kind, index))
            if text is not None:
                return text
        return self.texts[token_id]

    def _candidates(self, prefix: str, start: int, stop: int, width: int) -> list[tuple[TopToken, ...]]:
        ids = self.column(f"{prefix}_token_id", start, stop, width)
        logprobs = self.column(f"{prefix}_logprob", start, stop, width)
        logits = self.column(f"{prefix}_logit", start, stop, width)
        flags = self.column(f"{prefix}_flags", start, stop, width)
        counts = self.column(f"{prefix}_count", start, stop)
        texts, base = self.texts, start * width
        plain = not self.overrides
        rows = []
        for i, count in enumerate(counts):
            at = i * width
            rows.append(
                tuple(
                    TopToken(
                        ids[j],
                        texts[ids[j]] if plain else self._text(prefix, base + j, ids[j]),
                        logprobs[j],
                        logits[j] if flags[j] & HAS_LOGIT else None,
                    )
                    for j in range(at, at + count)
                )
            )
        return rows

    def _build(self, start: int, stop: int) -> tuple[TokenStep, ...]:
        ids = self.column("token_id", start, stop)
        logprobs = self.column("logprob", start, stop)
        flags = self.column("flags", start, stop)
        tops = self._candidates("top", start, stop, self.width)
        texts = self.texts_of(start, stop)
        if "raw_logprob" not in self.arrays:  # no step of the snapshot has raw scores
            return tuple(TokenStep(*fields) for fields in zip(ids, texts, logprobs, tops))
        raw_logprobs = self.column("raw_logprob", start, stop)
        raw_tops = self._candidates("raw_top", start, stop, self.raw_width)
        return tuple(
            TokenStep(
                token_id,
                text,
                logprob,
                top,
                raw_lp if f & RAW_LOGPROB else None,
                raw_top if f & RAW_TOP else None,
            )
            for token_id, text, logprob, top, f, raw_lp, raw_top in zip(
                ids, texts, logprobs, tops, flags, raw_logprobs, raw_tops
            )
        )


class StepColumns(Sequence[TokenStep]):
    """Rows ``start:stop`` of :class:`Columns`: one trace's steps, a read-only sequence of TokenSteps.

    Equal to any sequence of the same TokenSteps (a tuple of them included); pickles and copies as
    that tuple."""

    __slots__ = ("columns", "start", "stop")

    def __init__(self, columns: Columns, start: int, stop: int) -> None:
        if not 0 <= start <= stop <= columns.rows:
            raise ValueError(f"rows {start}:{stop} are outside the columns' {columns.rows} rows")
        self.columns = columns
        self.start = start
        self.stop = stop

    def __len__(self) -> int:
        return self.stop - self.start

    @overload
    def __getitem__(self, index: int) -> TokenStep: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[TokenStep, ...]: ...

    def __getitem__(self, index: int | slice) -> TokenStep | tuple[TokenStep, ...]:
        if isinstance(index, slice):
            return self.built()[index]
        position = index.__index__()
        if position < 0:
            position += len(self)
        if not 0 <= position < len(self):
            raise IndexError("step index out of range")
        return self.columns.step(self.start + position)

    def __iter__(self) -> Iterator[TokenStep]:
        return iter(self.built())

    def prefix(self, count: int) -> StepColumns:
        """The first ``count`` steps (fewer if the trace is shorter), as StepColumns over the same arrays."""
        return StepColumns(self.columns, self.start, min(self.stop, self.start + max(count, 0)))

    def built(self) -> tuple[TokenStep, ...]:
        """The steps as a tuple of TokenSteps."""
        return self.columns.steps(self.start, self.stop)

    @property
    def token_ids(self) -> tuple[int, ...]:
        return tuple(self.columns.column("token_id", self.start, self.stop))

    def view(self, name: str) -> Any:
        """This trace's rows of a one-value-per-row column, as the array's own slice (no copy)."""
        return self.columns.arrays[name][self.start : self.stop]

    @property
    def logprobs(self) -> list[float]:
        return self.columns.column("logprob", self.start, self.stop)

    @property
    def margins(self) -> list[float | None]:
        return self.columns.margins(self.start, self.stop)

    def margins_below(self, count: int, threshold: float) -> tuple[int, ...]:
        """Which of the first ``count`` steps have a margin below ``threshold`` (a float)."""
        return self.columns.margins_below(self.start, min(self.stop, self.start + max(count, 0)), threshold)

    @property
    def texts(self) -> list[str]:
        return self.columns.texts_of(self.start, self.stop)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StepColumns) and other.columns is self.columns:
            if (other.start, other.stop) == (self.start, self.stop):
                return True
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(other) == len(self) and tuple(other) == self.built()

    def __hash__(self) -> int:
        return hash(self.built())

    def __repr__(self) -> str:
        return f"StepColumns({len(self)} steps, rows {self.start}:{self.stop})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (tuple, (self.built(),))

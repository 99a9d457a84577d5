"""The ``.gdz`` snapshot container (``gendiff.snapshot/3``): a zip, NumPy's ``.npz`` layout, of
``snapshot.json`` (the snapshot without its trace steps) and one ``.npy`` array per step column.

Token texts are stored once per token id (a table in snapshot.json), the steps as typed arrays
(ids as int32, scores as float32 where every value is exactly a float32, else int64/float64:
nothing is rounded), deflate-compressed. Reading keeps the arrays as they are
(:class:`gendiff.records.columns.Columns`); TokenSteps are built when a trace is looked at.

This module is the format's identity and the writer (snapshot -> outline + arrays -> bytes);
:mod:`gendiff.io.columnar_read` reads and checks the arrays, :mod:`gendiff.io.snapshots`
validates the outline and turns it into a Snapshot. The layout is
documented in docs/snapshot-format.md.
"""

from __future__ import annotations

import json
import zipfile
from array import array
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, BinaryIO

import zstandard

from gendiff.errors import InputError
from gendiff.io import npy
from gendiff.records.columns import (
    HAS_LOGIT,
    RAW_LOGPROB,
    RAW_STEP_COLUMNS,
    RAW_TOP,
    STEP_COLUMNS,
    StepColumns,
    candidate_columns,
)
from gendiff.records.snapshot import Snapshot
from gendiff.records.trace import TokenStep, TopToken, Trace

FORMAT_ID = "gendiff.snapshot/3"
SUFFIX = ".gdz"
OUTLINE = "snapshot.json"
ZIP_MAGIC = b"PK\x03\x04"
COLUMN_SUFFIX = ".npy.zst"
# zstd level 1: the same size as 3 on float32 scores (57.9 vs 57.8 MB at 1000 x 5 x 256), twice as fast to write
ZSTD_LEVEL = 1
DEFLATE_LEVEL = 6  # snapshot.json only (a few MB of JSON)
# a fixed member time: the same snapshot gives the same bytes
_MEMBER_TIME = (1980, 1, 1, 0, 0, 0)


def is_columnar(head: bytes) -> bool:
    """Whether a file starting with ``head`` is a zip (a .gdz snapshot, or some other zip)."""
    return head.startswith(ZIP_MAGIC)


# -- writing ------------------------------------------------------------------------------------


class _Builder:
    """Columns being filled, trace by trace, at fixed candidate widths. Ids go in int32 arrays
    until one does not fit (then int64); scores in float64, narrowed to float32 at the end when
    that is exact."""

    def __init__(self, width: int, raw_width: int | None) -> None:
        self.width, self.raw_width = width, raw_width
        self.arrays: dict[str, array] = {}
        for name in ("token_id", "top_token_id", "raw_top_token_id"):
            self.arrays[name] = array("i")
        for name in ("logprob", "top_logprob", "top_logit", "raw_logprob", "raw_top_logprob", "raw_top_logit"):
            self.arrays[name] = array("d")
        for name in ("flags", "top_flags", "raw_top_flags"):
            self.arrays[name] = array("B")
        for name, most in (("top_count", width), ("raw_top_count", raw_width or 0)):
            self.arrays[name] = array(next(c for c in "BHIQ" if most < 1 << (8 * array(c).itemsize)))
        self.texts: dict[int, str] = {}
        self.overrides: list[list[Any]] = []
        self.rows = 0

    def _extend(self, name: str, values: list[Any]) -> None:
        column = self.arrays[name]
        before = len(column)
        try:
            column.extend(values)
        except OverflowError:  # an id past int32: the column becomes int64 (past int64: refused)
            if column.typecode != "i":
                raise
            del column[before:]  # extend appended the values before the one that did not fit
            self.arrays[name] = column = array("q", column)
            column.extend(values)

    def _texts(self, kind: str, base: int, ids: list[int], texts: list[str], where: list[int] | None = None) -> None:
        """Record the texts of ``ids``: new ids join the table, a text unlike the table's is an
        override at flat index ``base + where[i]`` (``where`` None: ``base + i``)."""
        table = self.texts
        known = list(map(table.get, ids))
        if known == texts:  # the usual case once the table holds the trace's tokens
            return
        for i, (token_id, text, seen) in enumerate(zip(ids, texts, known)):
            if seen == text:
                continue
            seen = table.setdefault(token_id, text)  # a new id, or one first met earlier in this trace
            if seen != text:
                self.overrides.append([kind, base + (i if where is None else where[i]), text])

    def _candidates(self, prefix: str, lists: list[Sequence[TopToken]], chosen: list[int], width: int) -> None:
        base = self.rows * width
        if all(len(c) == width for c in lists):
            flat = [c for candidates in lists for c in candidates]
            where = None
        else:  # rows with fewer candidates: padded with the step's own id (it has a text), zero scores, no flags
            flat, where, padding = [], [], []
            for row, (candidates, token_id) in enumerate(zip(lists, chosen)):
                where.extend(range(row * width, row * width + len(candidates)))
                flat.extend(candidates)
                padding.append((row * width + len(candidates), width - len(candidates), token_id))
        ids = [c.token_id for c in flat]
        texts = [c.text for c in flat]
        logprobs = [c.logprob for c in flat]
        logits = [0.0 if c.logit is None else c.logit for c in flat]
        flags = [0 if c.logit is None else HAS_LOGIT for c in flat]
        self._texts(prefix, base, ids, texts, where)
        if where is not None:
            ids, logprobs, logits, flags = (
                _spread(v, where, width * len(lists)) for v in (ids, logprobs, logits, flags)
            )
            for at, count, token_id in padding:
                ids[at : at + count] = [token_id] * count
        self._extend(f"{prefix}_token_id", ids)
        self.arrays[f"{prefix}_logprob"].extend(logprobs)
        self.arrays[f"{prefix}_logit"].extend(logits)
        self.arrays[f"{prefix}_flags"].extend(flags)
        self.arrays[f"{prefix}_count"].extend([len(c) for c in lists])

    def add_columns(self, steps: StepColumns) -> tuple[int, int] | None:
        """Append a loaded trace's rows by copying its columns (no TokenStep built); None (nothing
        appended) when its layout differs from this file's (widths, raw scores, texts overridden)."""
        source = steps.columns
        has_raw = "raw_logprob" in source.arrays
        if source.overrides or source.width != self.width or has_raw != (self.raw_width is not None):
            return None
        if has_raw and source.raw_width != self.raw_width:
            return None
        start, count = self.rows, len(steps)
        names = list(STEP_COLUMNS) + list(candidate_columns("top"))
        if has_raw:
            names += list(RAW_STEP_COLUMNS) + list(candidate_columns("raw_top"))
        texts = source.texts
        for name in names:
            width = (self.raw_width or 0) if name.startswith("raw_top_") else self.width
            wide = name.startswith(("top_", "raw_top_")) and not name.endswith("_count")
            values = source.column(name, steps.start, steps.stop, width if wide else 1)
            if name.endswith("token_id"):
                kind = "step" if name == "token_id" else name.removesuffix("_token_id")
                self._texts(kind, start * (width if wide else 1), values, list(map(texts.__getitem__, values)))
                self._extend(name, values)
            else:
                self.arrays[name].extend(values)
        self.rows += count
        return start, self.rows

    def add(self, steps: Sequence[TokenStep]) -> tuple[int, int]:
        """Append a trace's steps; returns its rows (start, stop)."""
        start = self.rows
        chosen = [s.token_id for s in steps]
        self._texts("step", start, chosen, [s.text for s in steps])
        self._extend("token_id", chosen)
        self.arrays["logprob"].extend([s.logprob for s in steps])
        self.arrays["flags"].extend(
            [(RAW_TOP if s.raw_top is not None else 0) | (RAW_LOGPROB if _has_raw_logprob(s) else 0) for s in steps]
        )
        self._candidates("top", [s.top for s in steps], chosen, self.width)
        if self.raw_width is not None:
            raw = self.arrays["raw_logprob"]
            raw.extend([s.raw_logprob if _has_raw_logprob(s) else 0.0 for s in steps])  # type: ignore[misc]
            self._candidates("raw_top", [s.raw_top or () for s in steps], chosen, self.raw_width)
        self.rows += len(steps)
        return start, self.rows

    def finish(self) -> dict[str, tuple[array, tuple[int, ...]]]:
        """The columns, scores narrowed to float32 where that is exact, each with its shape."""
        out: dict[str, tuple[array, tuple[int, ...]]] = {}
        names = list(STEP_COLUMNS) + list(candidate_columns("top"))
        if self.raw_width is not None:
            names += list(RAW_STEP_COLUMNS) + list(candidate_columns("raw_top"))
        for name in names:
            values = self.arrays[name]
            wide = name.startswith(("top_", "raw_top_")) and not name.endswith("_count")
            width = (self.raw_width if name.startswith("raw_top_") else self.width) or 0
            shape = (self.rows, width) if wide else (self.rows,)
            out[name] = (_narrowest(values), shape)
        return out


def _spread(values: list[Any], where: list[int], size: int) -> list[Any]:
    """``values`` placed at the flat positions ``where`` of a ``size``-long list of zeros."""
    out: list[Any] = [0] * size
    for position, value in zip(where, values):
        out[position] = value
    return out


def _has_raw_logprob(step: TokenStep) -> bool:
    # the JSON form keeps raw_logprob only beside raw_top (TokenStep.to_dict): the same here
    return step.raw_top is not None and step.raw_logprob is not None


def _narrowest(values: array) -> array:
    """A float64 column as float32 when every value is exactly a float32 (as the HF engines' are)."""
    if values.typecode != "d":
        return values
    narrow = array("f", values)
    return narrow if array("d", narrow).tobytes() == values.tobytes() else values


def encode(snapshot: Snapshot) -> tuple[dict[str, Any], dict[str, tuple[array, tuple[int, ...]]]]:
    """The snapshot as (outline, columns): the outline is its dict form with each trace's ``steps``
    and ``token_ids`` replaced by ``rows`` [start, stop] into the columns. Raises InputError when a
    token id does not fit in 64 bits (write a .json then)."""
    widths = [_widths(trace) for prompt in snapshot.prompts for trace in prompt.traces.values()]
    width = max((top for top, _ in widths), default=0)
    raw = [raw for _, raw in widths if raw is not None]
    builder = _Builder(width, max(raw) if raw else None)
    prompts = []
    try:
        for prompt in snapshot.prompts:
            entry = replace(prompt, traces={}).to_dict()
            for label, trace in prompt.traces.items():
                copied = builder.add_columns(trace.steps) if isinstance(trace.steps, StepColumns) else None
                start, stop = copied or builder.add(_steps(trace))
                outline = replace(trace, steps=()).to_dict()
                del outline["steps"], outline["token_ids"]
                entry["traces"][label] = {**outline, "rows": [start, stop]}
            prompts.append(entry)
        arrays = builder.finish()
    except OverflowError:
        raise InputError("a token id does not fit in 64 bits: the .gdz format can't hold it; write a .json") from None
    outline = {**replace(snapshot, prompts=[]).to_dict(), "schema": FORMAT_ID, "prompts": prompts}
    ids = sorted(builder.texts)
    outline["tokens"] = {"ids": ids, "texts": [builder.texts[i] for i in ids]}
    if builder.overrides:
        outline["text_overrides"] = builder.overrides
    outline["columns"] = {
        "rows": builder.rows,
        "width": width,
        **({"raw_width": builder.raw_width} if builder.raw_width is not None else {}),
        "arrays": {
            name: {"dtype": npy.descr(values.typecode), "shape": list(shape)}
            for name, (values, shape) in arrays.items()
        },
    }
    return outline, arrays


def _steps(trace: Trace) -> Sequence[TokenStep]:
    return trace.steps.built() if isinstance(trace.steps, StepColumns) else trace.steps


def _widths(trace: Trace) -> tuple[int, int | None]:
    """The most candidates of a step, and of a step's raw scores (None: no step has raw scores)."""
    steps = trace.steps
    if not isinstance(steps, StepColumns):
        raw = [len(s.raw_top) for s in steps if s.raw_top is not None]
        return max((len(s.top) for s in steps), default=0), (max(raw) if raw else None)
    columns, start, stop = steps.columns, steps.start, steps.stop  # read from the arrays, nothing built
    width = max(columns.column("top_count", start, stop), default=0)
    if "raw_logprob" not in columns.arrays:
        return width, None
    flags = columns.column("flags", start, stop)
    counts = [n for n, f in zip(columns.column("raw_top_count", start, stop), flags) if f & RAW_TOP]
    return width, (max(counts) if counts else None)


def write(handle: BinaryIO, outline: dict[str, Any], arrays: dict[str, tuple[array, tuple[int, ...]]]) -> None:
    """The zip: snapshot.json (deflated, so ``unzip -p FILE snapshot.json`` shows it), then
    ``NAME.npy.zst`` per column (a zstd frame of a .npy file, stored as it is)."""
    with zipfile.ZipFile(handle, "w") as archive:
        text = json.dumps(outline, ensure_ascii=False, separators=(",", ":")) + "\n"
        archive.writestr(_member(OUTLINE, zipfile.ZIP_DEFLATED), text.encode("utf-8"), compresslevel=DEFLATE_LEVEL)
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        for name, (values, shape) in arrays.items():
            archive.writestr(
                _member(f"{name}{COLUMN_SUFFIX}", zipfile.ZIP_STORED), compressor.compress(npy.encode(values, shape))
            )


def _member(name: str, method: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_MEMBER_TIME)
    info.compress_type = method
    info.external_attr = 0o644 << 16
    return info

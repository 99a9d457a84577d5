"""llama.cpp's ``--kl-divergence-base`` file (``llama-perplexity --save-all-logits``), read and written.

Layout (little-endian, as tools/perplexity/perplexity.cpp writes it): ``_logits_`` (8 bytes);
int32 n_ctx, n_vocab, n_chunk; int32 token ids (n_ctx·n_chunk: the text's tokens as tokenized,
BOS first where the model adds one); then for every chunk the positions n_ctx/2 … n_ctx−2
(n_ctx − 1 − n_ctx/2 of them), each a row of 2·⌈n_vocab/2⌉ + 4 uint16: float32 ``scale``, float32
``min_log_prob``, then n_vocab uint16 q with logprob = scale·q + min_log_prob (padded to even).
The window is 16 nats below the top logit (scale = window/65535, ≈2.4e-4 nats); logits below it
are stored as q = 0, and llama.cpp's reader skips base logprobs ≤ −16 in the KL sum.

This module only packs and unpacks (no numerics): the rows are quantised and dequantised where
the logits are (gendiff.run.kld_base). The file is mapped, not read: a base of a real model is
gigabytes, and a reader touches one chunk's rows at a time.
"""

from __future__ import annotations

import mmap
import struct
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from gendiff.errors import InputError
from gendiff.io.fileio import atomic_write

MAGIC = b"_logits_"
HEADER = len(MAGIC) + 12
WINDOW = 16.0


def row_width(n_vocab: int) -> int:
    """uint16 per stored position: scale and min_log_prob (2 each), n_vocab values padded to even."""
    return 2 * ((n_vocab + 1) // 2) + 4


def first_scored(n_ctx: int) -> int:
    """The first position of a chunk whose logits are kept (llama.cpp's ``first = n_ctx/2``)."""
    return n_ctx // 2


def scored_per_chunk(n_ctx: int) -> int:
    return n_ctx - 1 - first_scored(n_ctx)


def file_size(n_ctx: int, n_vocab: int, n_chunk: int) -> int:
    return HEADER + 4 * n_ctx * n_chunk + 2 * row_width(n_vocab) * scored_per_chunk(n_ctx) * n_chunk


@dataclass(frozen=True)
class KldBase:
    """A checked base file, mapped read-only."""

    path: Path
    n_ctx: int
    n_vocab: int
    n_chunk: int
    token_ids: array  # int32, n_ctx·n_chunk
    data: bytes | mmap.mmap

    @property
    def scored(self) -> int:
        return scored_per_chunk(self.n_ctx)

    def chunk_tokens(self, chunk: int) -> list[int]:
        return list(self.token_ids[chunk * self.n_ctx : (chunk + 1) * self.n_ctx])

    def row_bytes(self, chunk: int, position: int) -> bytes:
        """The packed row of scored position ``position`` (0 = n_ctx/2) of ``chunk``."""
        width = 2 * row_width(self.n_vocab)
        start = HEADER + 4 * self.n_ctx * self.n_chunk + (chunk * self.scored + position) * width
        return self.data[start : start + width]

    def row(self, chunk: int, position: int) -> tuple[float, float, array]:
        """(scale, min_log_prob, the n_vocab uint16 q) of one stored position."""
        raw = self.row_bytes(chunk, position)
        scale, low = struct.unpack_from("<ff", raw)
        q = array("H", raw[8 : 8 + 2 * self.n_vocab])
        return scale, low, q


def read(path: str | Path, n_vocab: int | None = None) -> KldBase:
    """Open and check a base file; a bad file is one :class:`InputError` naming it (exit 2).

    ``n_vocab``: the model's vocabulary (logit width); a base of another width is refused."""
    path = Path(path).expanduser()

    def bad(why: str) -> InputError:
        return InputError(
            f"--kl-divergence-base {path}: {why}; expected a file llama-perplexity --kl-divergence-base wrote"
        )

    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, 2)
            data: bytes | mmap.mmap = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
    except FileNotFoundError:
        raise InputError(f"--kl-divergence-base {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"--kl-divergence-base {path}: cannot read it ({exc})") from None
    if size < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise bad("no _logits_ magic at its start")
    if size < HEADER:
        raise bad(f"truncated header ({size} bytes)")
    n_ctx, vocab, n_chunk = struct.unpack_from("<iii", data, len(MAGIC))
    if n_ctx < 2 or vocab < 1 or n_chunk < 1:
        raise bad(f"impossible header n_ctx={n_ctx} n_vocab={vocab} n_chunk={n_chunk}")
    want = file_size(n_ctx, vocab, n_chunk)
    if size != want:
        state = "truncated" if size < want else "longer than its header says"
        raise bad(f"{state}: {size} bytes where n_ctx={n_ctx} n_vocab={vocab} n_chunk={n_chunk} need {want}")
    ids = array("i", data[HEADER : HEADER + 4 * n_ctx * n_chunk])
    if ids.itemsize != 4:
        raise InputError("internal: this platform's C int is not 32-bit")
    if struct.pack("=i", 1) != struct.pack("<i", 1):
        ids.byteswap()
    if min(ids) < 0 or max(ids) >= vocab:
        bad_at = next(i for i, t in enumerate(ids) if t < 0 or t >= vocab)
        raise bad(f"token {bad_at} is id {ids[bad_at]}, outside its vocabulary of {vocab}")
    base = KldBase(path, n_ctx, vocab, n_chunk, ids, data)
    if n_vocab is not None:
        check_vocabulary(base, n_vocab)
    return base


def check_vocabulary(base: KldBase, n_vocab: int) -> None:
    """A base of another vocabulary (logit width) than the model's is refused in one line."""
    if base.n_vocab != n_vocab:
        raise InputError(
            f"--kl-divergence-base {base.path}: its vocabulary is {base.n_vocab} tokens where the model's is "
            f"{n_vocab}; it was written for another model"
        )


def pack_row(scale: float, min_log_prob: float, q: Iterable[int]) -> bytes:
    """One stored position, as llama.cpp lays it out (q padded to an even count)."""
    values = array("H", q)
    if len(values) % 2:
        values.append(0)
    if struct.pack("=H", 1) != struct.pack("<H", 1):
        values.byteswap()
    return struct.pack("<ff", scale, min_log_prob) + values.tobytes()


def write(path: str | Path, n_ctx: int, n_vocab: int, tokens: list[list[int]], rows: Iterable[bytes]) -> Path:
    """Write a base atomically: ``tokens`` per chunk (n_ctx ids each), then the packed rows in
    chunk order (n_ctx − 1 − n_ctx/2 per chunk), ``rows`` yielding any number of whole rows at a
    time (:func:`pack_row`, or gendiff.run.kld_base.quantise_rows)."""
    want = file_size(n_ctx, n_vocab, len(tokens)) - HEADER - 4 * n_ctx * len(tokens)

    def body(out: BinaryIO) -> None:
        out.write(MAGIC + struct.pack("<iii", n_ctx, n_vocab, len(tokens)))
        for chunk in tokens:
            out.write(struct.pack(f"<{n_ctx}i", *chunk))
        written = 0
        for part in rows:
            out.write(part)
            written += len(part)
        if written != want:
            raise ValueError(
                f"internal: {written} bytes of base rows where {len(tokens)} chunks of n_ctx={n_ctx} need {want}"
            )

    return atomic_write(path, body)

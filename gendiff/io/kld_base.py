"""llama.cpp's ``--kl-divergence-base`` file (``llama-perplexity --save-all-logits``), read and written.

Layout (little-endian, as tools/perplexity/perplexity.cpp writes it): ``_logits_`` (8 bytes);
int32 n_ctx, n_vocab, n_chunk; int32 token ids (n_ctx·n_chunk); then for every chunk the
positions n_ctx/2 … n_ctx−2 (n_ctx − 1 − n_ctx/2 of them), each 2·⌈n_vocab/2⌉ + 4 uint16: float32
``scale``, float32 ``min_log_prob``, then n_vocab uint16 q with logprob = scale·q + min_log_prob.
The window is 16 nats below the top logit (scale = window/65535, ≈2.4e-4 nats); logits below it
are stored as q = 0, and llama.cpp's reader skips base logprobs ≤ −16 in the KL sum.
"""

from __future__ import annotations

import math
import struct
from array import array
from dataclasses import dataclass
from pathlib import Path

from gendiff.errors import InputError

MAGIC = b"_logits_"
WINDOW = 16.0


def row_width(n_vocab: int) -> int:
    return 2 * ((n_vocab + 1) // 2) + 4


def scored_per_chunk(n_ctx: int) -> int:
    return n_ctx - 1 - n_ctx // 2


@dataclass(frozen=True)
class KldBase:
    n_ctx: int
    n_vocab: int
    tokens: list[list[int]]  # per chunk, n_ctx ids
    logprobs: list[list[list[float]]]  # per chunk, per scored position, n_vocab dequantised logprobs


def quantise(logits: list[float]) -> array:
    """One position's row, as llama.cpp's ``log_softmax`` writes it (round half to even)."""
    top, low = max(logits), max(min(logits), max(logits) - WINDOW)
    lse = math.log(sum(math.exp(v - top) for v in logits))
    scale = (top - low) / 65535.0
    row = array("H", struct.pack("<ff", scale, low - top - lse))
    if scale:
        row.extend(round((v - low) / scale) if v > low else 0 for v in logits)
    else:
        row.extend(0 for _ in logits)
    if len(logits) % 2:
        row.append(0)
    return row


def write(path: Path, n_ctx: int, tokens: list[list[int]], logits: list[list[list[float]]]) -> None:
    """``logits``: per chunk, the raw logits at positions n_ctx/2 … n_ctx−2."""
    n_vocab = len(logits[0][0])
    with open(path, "wb") as out:
        out.write(MAGIC + struct.pack("<iii", n_ctx, n_vocab, len(tokens)))
        for chunk in tokens:
            out.write(struct.pack(f"<{n_ctx}i", *chunk))
        for chunk in logits:
            for position in chunk:
                out.write(quantise(position).tobytes())


def read(path: Path, n_vocab: int | None = None) -> KldBase:
    """Read and validate; a bad file is one :class:`InputError` naming it."""
    data = Path(path).read_bytes()

    def bad(why: str) -> InputError:
        return InputError(f"{path}: {why}; expected a llama-perplexity --kl-divergence-base file")

    if data[:8] != MAGIC:
        raise bad("no _logits_ magic")
    if len(data) < 20:
        raise bad("truncated header")
    n_ctx, vocab, n_chunk = struct.unpack_from("<iii", data, 8)
    if n_ctx < 2 or vocab < 1 or n_chunk < 0:
        raise bad(f"impossible header n_ctx={n_ctx} n_vocab={vocab} n_chunk={n_chunk}")
    if n_vocab is not None and vocab != n_vocab:
        raise bad(f"vocabulary {vocab} where the model has {n_vocab}")
    width, scored = row_width(vocab), scored_per_chunk(n_ctx)
    want = 20 + 4 * n_ctx * n_chunk + 2 * width * scored * n_chunk
    if len(data) != want:
        raise bad(f"{len(data)} bytes where its header needs {want}")
    ids = struct.unpack_from(f"<{n_ctx * n_chunk}i", data, 20)
    if any(t < 0 or t >= vocab for t in ids):
        raise bad("a token id outside the vocabulary")
    offset = 20 + 4 * n_ctx * n_chunk
    tokens, logprobs = [], []
    for c in range(n_chunk):
        tokens.append(list(ids[c * n_ctx : (c + 1) * n_ctx]))
        rows = []
        for _ in range(scored):
            scale, low = struct.unpack_from("<ff", data, offset)
            q = array("H", data[offset + 8 : offset + 8 + 2 * vocab])
            rows.append([scale * v + low for v in q])
            offset += 2 * width
        logprobs.append(rows)
    return KldBase(n_ctx, vocab, tokens, logprobs)

"""llama.cpp's --kl-divergence-base file: round trip, a hand-built file read byte by byte, refusals."""

import struct

import numpy as np
import pytest

from gendiff.errors import InputError
from gendiff.io.kld_base import read, write


def hand_built(path, n_ctx=4, n_vocab=3, chunks=1, scale=0.5, low=-3.0, q=(0, 2, 6)):
    # built here with struct, independently of the writer: header, ids, then per scored position
    # float32 scale, float32 min_log_prob, uint16 × n_vocab padded to even
    scored = n_ctx - 1 - n_ctx // 2
    body = b"_logits_" + struct.pack("<iii", n_ctx, n_vocab, chunks)
    body += struct.pack(f"<{n_ctx * chunks}i", *[i % n_vocab for i in range(n_ctx * chunks)])
    width = 2 * ((n_vocab + 1) // 2)
    row = struct.pack("<ff", scale, low) + struct.pack(f"<{width}H", *q, *([0] * (width - len(q))))
    body += row * (scored * chunks)
    path.write_bytes(body)
    return body


def test_hand_built_file_reads_as_its_bytes(tmp_path):
    path = tmp_path / "base.kld"
    hand_built(path)
    base = read(path, n_vocab=3)
    assert (base.n_ctx, base.n_vocab, base.tokens) == (4, 3, [[0, 1, 2, 0]])
    assert len(base.logprobs[0]) == 1  # positions 2 … 2 of a 4-token chunk
    assert base.logprobs[0][0] == [-3.0, -2.0, 0.0]


def test_round_trip_within_one_quantisation_step(tmp_path):
    rng = np.random.default_rng(3)
    n_ctx, vocab = 8, 11
    logits = rng.normal(0, 4, (2, n_ctx - 1 - n_ctx // 2, vocab))
    logits[0, 0, 0] = logits[0, 0].max() - 40  # far below the 16-nat window
    tokens = rng.integers(0, vocab, (2, n_ctx)).tolist()
    path = tmp_path / "b.kld"
    write(path, n_ctx, tokens, logits.tolist())
    base = read(path, n_vocab=vocab)
    assert base.tokens == tokens
    got = np.array(base.logprobs)
    true = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True))
    true -= logits.max(-1, keepdims=True)
    inside = true > -16 + 1e-3
    step = 16 / 65535
    assert np.abs(got - true)[inside].max() <= step  # half a step of rounding plus float32 storage
    assert got[0, 0, 0] == pytest.approx(true[0, 0].max() - 16, abs=1e-4)  # clipped to the window floor
    assert (path.stat().st_size) == 20 + 4 * 16 + 2 * (2 * 6 + 4) * 3 * 2


@pytest.mark.parametrize(
    "mangle, says",
    [
        (lambda b: b"_logitz_" + b[8:], "magic"),
        (lambda b: b[:-2], "bytes where"),
        (lambda b: b[:12], "truncated"),
    ],
)
def test_corrupt_files_are_refused_naming_the_file(tmp_path, mangle, says):
    path = tmp_path / "bad.kld"
    path.write_bytes(mangle(hand_built(tmp_path / "good.kld")))
    with pytest.raises(InputError, match=says) as caught:
        read(path)
    assert str(path) in str(caught.value) and caught.value.exit_code == 2


def test_vocabulary_mismatch_is_refused(tmp_path):
    path = tmp_path / "base.kld"
    hand_built(path)
    with pytest.raises(InputError, match="vocabulary 3 where the model has 5"):
        read(path, n_vocab=5)

"""llama.cpp's --kl-divergence-base file: a hand-packed struct file read field by field, rows
quantised byte for byte as perplexity.cpp's float32 code does (re-written here element by
element), llama.cpp's KL definitions against the base, refusals of bad files in one line."""

import struct

import numpy as np
import pytest

from gendiff.cli.main import main
from gendiff.errors import InputError
from gendiff.io.kld_base import pack_row, read, write
from gendiff.run.kld_base import BaseComparer, dequantise, quantise_rows
from gendiff.run.kld_score import Chunks, check_tokens, chunk_ids, read_text

F = np.float32


def hand_built(path, n_ctx=4, n_vocab=3, chunks=1, scale=0.5, low=-3.0, q=(0, 2, 6)):
    # built with struct, independently of the writer: header, ids, then per scored position
    # float32 scale, float32 min_log_prob, uint16 × n_vocab padded to even
    scored = n_ctx - 1 - n_ctx // 2
    body = b"_logits_" + struct.pack("<iii", n_ctx, n_vocab, chunks)
    body += struct.pack(f"<{n_ctx * chunks}i", *[i % n_vocab for i in range(n_ctx * chunks)])
    width = 2 * ((n_vocab + 1) // 2)
    row = struct.pack("<ff", scale, low) + struct.pack(f"<{width}H", *q, *([0] * (width - len(q))))
    body += row * (scored * chunks)
    path.write_bytes(body)
    return body


def llama_row(logits):
    """perplexity.cpp's log_softmax(n_vocab, logits, log_prob, tok), one element at a time in float32."""
    top, low = F(logits[0]), F(logits[0])
    for v in logits[1:]:
        top, low = max(top, F(v)), min(low, F(v))
    low = max(low, F(top - F(16)))
    sum_exp = 0.0
    for v in logits:
        sum_exp += float(np.exp(F(F(v) - top)))
    log_sum_exp = F(np.log(sum_exp))
    min_log_prob = F(F(low - top) - log_sum_exp)
    scale = F(F(top - low) / F(65535))
    inv = F(F(1) / scale) if scale else F(0)

    def nearest_int(x):  # float val = fval + 12582912.f; mantissa bits − 0x00400000
        bits = struct.unpack("<i", struct.pack("<f", F(F(x) + F(12582912))))[0]
        return (bits & 0x007FFFFF) - 0x00400000

    q = [nearest_int(F(inv * F(F(v) - low))) if scale and F(v) > low else 0 for v in logits]
    width = 2 * ((len(logits) + 1) // 2)
    return struct.pack("<ff", scale, min_log_prob) + struct.pack(f"<{width}H", *q, *([0] * (width - len(q))))


def test_hand_packed_file_reads_field_by_field(tmp_path):
    path = tmp_path / "base.kld"
    hand_built(path, n_ctx=6, n_vocab=3, chunks=2)
    base = read(path, n_vocab=3)
    assert (base.n_ctx, base.n_vocab, base.n_chunk, base.scored) == (6, 3, 2, 2)  # positions 3, 4 of 6
    assert base.chunk_tokens(0) == [0, 1, 2, 0, 1, 2] and base.chunk_tokens(1) == [0, 1, 2, 0, 1, 2]
    scale, low, q = base.row(1, 1)
    assert (scale, low, list(q)) == (0.5, -3.0, [0, 2, 6])
    assert dequantise(base.row_bytes(1, 1), 3).tolist() == [[-3.0, -2.0, 0.0]]


def test_rows_are_quantised_byte_for_byte_as_llamacpp_does(tmp_path):
    rng = np.random.default_rng(3)
    n_ctx, vocab = 8, 11  # odd vocabulary: rows padded
    logits = rng.normal(0, 4, (2, n_ctx - 1 - n_ctx // 2, vocab)).astype(np.float32)
    logits[0, 0, 0] = logits[0, 0].max() - 40  # far below the 16-nat window: q = 0
    logits[1, 2, :] = 1.5  # a flat row: scale 0, every q 0
    tokens = rng.integers(0, vocab, (2, n_ctx)).tolist()
    path = tmp_path / "b.kld"
    write(path, n_ctx, vocab, tokens, (quantise_rows(chunk) for chunk in logits))
    expected = b"_logits_" + struct.pack("<iii", n_ctx, vocab, 2) + struct.pack(f"<{2 * n_ctx}i", *sum(tokens, []))
    expected += b"".join(llama_row(row.tolist()) for chunk in logits for row in chunk)
    assert path.read_bytes() == expected
    base = read(path, n_vocab=vocab)
    got = np.stack([dequantise(base.row_bytes(c, j), vocab)[0] for c in range(2) for j in range(3)]).reshape(
        logits.shape
    )
    true = logits.astype(np.float64)
    true -= true.max(-1, keepdims=True) + np.log(np.exp(true - true.max(-1, keepdims=True)).sum(-1, keepdims=True))
    inside = true > true.max(-1, keepdims=True) - 16
    assert np.abs(got - true)[inside].max() <= 0.5 * 16 / 65535 + 1e-5  # half a step, float32 storage
    assert got[0, 0, 0] == pytest.approx(true[0, 0].max() - 16, abs=1e-4)  # clipped to the window floor


def test_pack_row_pads_to_even():
    assert pack_row(0.25, -1.0, [1, 2, 3]) == struct.pack("<ffHHHH", 0.25, -1.0, 1, 2, 3, 0)


def test_comparer_follows_llamacpp_definitions(tmp_path):
    import torch

    rng = np.random.default_rng(7)
    n_ctx, vocab = 10, 40
    base_logits = rng.normal(0, 5, (1, 4, vocab)).astype(np.float32)
    tokens = [rng.integers(0, vocab, n_ctx).tolist()]
    base_logits[0, 1, tokens[0][7]] = base_logits[0, 1].max() - 30  # fed at step 1: far below the window
    path = tmp_path / "b.kld"
    write(path, n_ctx, vocab, tokens, [quantise_rows(base_logits[0])])
    base = read(path)
    targets = {0: tokens[0][6:]}  # positions 5..8 predict tokens 6..9
    comparer = BaseComparer(base, targets)
    q_logits = base_logits[0] + rng.normal(0, 0.3, (4, vocab)).astype(np.float32)
    comparer([0, 0], [0, 1], torch.from_numpy(q_logits[:2]))
    comparer([0, 0], [2, 3], torch.from_numpy(q_logits[2:]))
    kld, dp, same, nll, nll_base = comparer.per_position()
    for j in range(4):  # perplexity.cpp's kl_divergence loop, re-derived in float64
        scale, low, q = base.row(0, j)
        lb = scale * np.array(q, dtype=np.float64) + low
        lq = q_logits[j].astype(np.float64)
        lq -= lq.max() + np.log(np.exp(lq - lq.max()).sum())
        keep = lb > -16
        tok = targets[0][j]
        assert kld[j] == pytest.approx(float((np.exp(lb[keep]) * (lb[keep] - lq[keep])).sum()), abs=1e-6)
        assert nll[j] == pytest.approx(-lq[tok], abs=1e-6) and nll_base[j] == pytest.approx(-lb[tok], abs=1e-6)
        assert dp[j] == pytest.approx(np.exp(lq[tok]) - np.exp(lb[tok]), abs=1e-6)
        assert same[j] == (int(np.argmax(q_logits[j])) == int(np.argmax(lb)))
    # the base keeps a fed token below its 16-nat window at the floor: counted, said in a note
    below = sum(base_logits[0, j, targets[0][j]] < base_logits[0, j].max() - 16 for j in range(4))
    assert below >= 1 and comparer.floored == below
    assert comparer.lowest_kld == min(0.0, *kld)


def test_chunks_are_cut_as_llamacpp_cuts_them():
    ids = list(range(100, 125))  # 25 tokens, n_ctx 8: 3 chunks, the last token left over
    chunks = chunk_ids(ids, 8, 0, "t.txt")
    assert chunks.tokens == [ids[0:8], ids[8:16], ids[16:24]]
    # the first token of each chunk is replaced by BOS; positions 4..6 predict tokens 5..7
    assert chunks.prompts()[1] == [0, 109, 110, 111, 112]
    assert chunks.targets()[1] == [113, 114, 115]
    assert Chunks(8, [ids[0:8]], None).prompts() == [ids[0:5]]  # no BOS: the chunk as it is
    with pytest.raises(InputError, match="15 tokens, fewer than the 16 llama-perplexity needs"):
        chunk_ids(ids[:15], 8, 0, "t.txt")


def test_token_mismatch_names_the_base_and_the_first_position():
    with pytest.raises(InputError, match=r"b\.kld: token 2 is id 9 where gendiff's tokenization of t\.txt gives 3"):
        check_tokens("b.kld", [1, 2, 9, 4], [1, 2, 3, 4, 5], "t.txt")
    with pytest.raises(InputError, match="holds 4 tokens, t.txt tokenizes to only 3"):
        check_tokens("b.kld", [1, 2, 3, 4], [1, 2, 3], "t.txt")
    check_tokens("b.kld", [1, 2, 3, 4], [1, 2, 3, 4, 5], "t.txt")  # a longer text: the floor of chunks


def test_text_is_read_as_llama_perplexity_reads_it(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"one\r\ntwo\n\n")
    assert read_text(path) == "one\r\ntwo\n"  # no newline translation, one trailing \n dropped


@pytest.mark.parametrize(
    "mangle, says",
    [
        (lambda b: b"_logitz_" + b[8:], "no _logits_ magic"),
        (lambda b: b"", "no _logits_ magic"),
        (lambda b: b[:12], "truncated header"),
        (lambda b: b[:-2], "truncated: 50 bytes where n_ctx=4 n_vocab=3 n_chunk=1 need 52"),
        (lambda b: b + b"\0\0", "longer than its header says"),
        (lambda b: b[:8] + struct.pack("<iii", 1, 3, 1) + b[20:], "impossible header"),
        (lambda b: b[:20] + struct.pack("<i", 7) + b[24:], "token 0 is id 7, outside its vocabulary of 3"),
    ],
)
def test_bad_files_are_refused_in_one_line_naming_the_file(tmp_path, mangle, says):
    path = tmp_path / "bad.kld"
    path.write_bytes(mangle(hand_built(tmp_path / "good.kld")))
    with pytest.raises(InputError, match=says) as caught:
        read(path)
    assert str(path) in str(caught.value) and caught.value.exit_code == 2 and "\n" not in str(caught.value)


def test_vocabulary_mismatch_is_refused(tmp_path):
    path = tmp_path / "base.kld"
    hand_built(path)
    with pytest.raises(InputError, match="its vocabulary is 3 tokens where the model's is 5"):
        read(path, n_vocab=5)


def test_cli_refuses_a_bad_base_before_any_model(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("some text\n")
    bad = tmp_path / "bad.kld"
    bad.write_bytes(b"not a base")
    assert main(["score", str(text), "--kl-divergence-base", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gendiff: error: ") and str(bad) in err and "magic" in err and err.count("\n") == 1
    missing = tmp_path / "missing.kld"
    assert main(["score", str(text), "--kl-divergence-base", str(missing)]) == 2
    assert "no such file" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, says",
    [
        (["--kl-divergence-base", "a.kld", "--kl-divergence-base-out", "b.kld"], "not allowed with argument"),
        (["--kl-divergence-base", "a.kld", "--ctx-size", "64"], "the base says its own n_ctx"),
        (["--ctx-size", "64"], "only with --kl-divergence-base-out"),
    ],
)
def test_cli_refuses_contradictory_options(tmp_path, capsys, extra, says):
    text = tmp_path / "t.txt"
    text.write_text("some text\n")
    assert main(["score", str(text), *extra]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1


def demo_base(tmp_path, text, n_vocab=2807, n_ctx=8):
    """A base whose ids are the demo tokenizer's ids of ``text`` (its rows all zero: never read here)."""
    from transformers import AutoTokenizer

    from gendiff.demo import demo_model_path

    tokenizer = AutoTokenizer.from_pretrained(str(demo_model_path()))
    ids = list(tokenizer(text)["input_ids"])
    chunks = [ids[c * n_ctx : (c + 1) * n_ctx] for c in range(len(ids) // n_ctx)]
    path = tmp_path / "demo.kld"
    row = pack_row(0.0, 0.0, [0] * n_vocab)
    write(path, n_ctx, n_vocab, chunks, [row] * ((n_ctx - 1 - n_ctx // 2) * len(chunks)))
    return path, ids, tokenizer


STORY = "Once upon a time, there was a brave fox named Leo. Leo lived in a small house near the river."


def test_cli_refuses_a_base_of_other_text_naming_the_first_differing_token(tmp_path, capsys):
    base, ids, tokenizer = demo_base(tmp_path, STORY)
    other = tmp_path / "other.txt"
    other.write_text(STORY.replace("small", "big") + "\n")
    theirs = list(tokenizer(STORY.replace("small", "big"))["input_ids"])
    first = next(i for i, (a, b) in enumerate(zip(ids, theirs)) if a != b)
    assert main(["score", str(other), "--kl-divergence-base", str(base), "--engines", "hf-single"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(base) in err
    assert f"token {first} is id {ids[first]} where gendiff's tokenization of {other} gives {theirs[first]}" in err


def test_cli_refuses_a_base_of_another_vocabulary(tmp_path, capsys):
    base, _, _ = demo_base(tmp_path, STORY, n_vocab=3000)
    text = tmp_path / "t.txt"
    text.write_text(STORY + "\n")
    assert main(["score", str(text), "--kl-divergence-base", str(base), "--engines", "hf-single"]) == 2
    err = capsys.readouterr().err
    assert "its vocabulary is 3000 tokens where the model's is 2807" in err and err.count("\n") == 1

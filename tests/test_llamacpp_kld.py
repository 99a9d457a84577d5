"""llama.cpp's --kl-divergence-base file between llama-perplexity and gendiff, both ways
(llama-perplexity built by scripts/build_llamacpp.py, the demo model converted to GGUF).

(a) llama-perplexity writes a base from the f32 GGUF: its ids are the demo tokenizer's, and its
logprobs are a plain-torch float32 forward of the demo model written here, within the uint16
step; gendiff scores hf-single against it. (b) gendiff writes a base from hf-single float32:
llama-perplexity reads it (Mean KLD of the f32 GGUF ≈ 0), and the q8_0 GGUF's figures printed
by llama-perplexity equal gendiff's reading of the same base with the q8_0 logprobs (gendiff
runs no GGUF: llama-perplexity writes them as a base of its own). In CI these run, not skip.
"""

import importlib.util
import re
import subprocess
from pathlib import Path

import pytest
from helpers import llamacpp_built

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.llamacpp]
N_CTX = 128  # 2 chunks: 126 scored positions (llama-perplexity prints its summary from 100)
# -ctk/-ctv f32 -fa off: llama.cpp's f32 path as close to HF float32 as it goes (docs/served.md);
# -b N_CTX: one chunk per batch, as gendiff feeds them
FLAGS = ("-c", str(N_CTX), "-b", str(N_CTX), "-t", "2", "-ctk", "f32", "-ctv", "f32", "-fa", "off")
STEP = 16 / 65535  # the base's quantisation step at most (scale = window / 65535)
# f32 GGUF (-fa off, f32 KV cache) vs the plain torch forward: max |Δlogprob| inside the window
# 1.31e-4 measured, half a step (1.22e-4) of rounding + 9e-6 of float32 numerics
NUMERICS = 2e-5


BUILT = llamacpp_built("llama_perplexity", "gguf_f32", "gguf_q8_0")


def report(capsys, line: str) -> None:
    """The measured figures, shown with -s (capsys takes the CLI's output)."""
    with capsys.disabled():
        print(line)


def perplexity(*args: str) -> str:
    """Run llama-perplexity. With --kl-divergence, until its closing summary is printed: its log
    goes through a worker thread that the program does not flush before it exits (common/log.cpp:
    "logs may be lost"), and on this loaded 2-core VM 4 runs of 10 lost the summary."""
    for _ in range(10):
        done = subprocess.run([BUILT["llama_perplexity"], *args], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        output = done.stdout + done.stderr
        if "--kl-divergence" not in args or "Same top p:" in output:
            return output
    raise AssertionError(f"llama-perplexity printed no summary in 10 runs:\n{output[-3000:]}")


def summary(output: str) -> dict[str, float]:
    """llama-perplexity --kl-divergence's closing figures (the ones gendiff's full set repeats)."""
    found = {}
    for key, pattern in {
        "kld_mean": r"Mean\s+KLD:\s+(-?[\d.]+)",
        "kld_max": r"Maximum KLD:\s+(-?[\d.]+)",
        "ppl_q": r"Mean PPL\(Q\)\s+:\s+(-?[\d.]+)",
        "ppl_base": r"Mean PPL\(base\)\s+:\s+(-?[\d.]+)",
        "dp_rms": r"RMS Δp\s+:\s+(-?[\d.]+)",
        "same_top_p": r"Same top p:\s+(-?[\d.]+)",
    }.items():
        match = re.search(pattern, output)
        assert match, f"no {key} in llama-perplexity's output:\n{output[-3000:]}"
        found[key] = float(match.group(1))
    return found


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    """Stories of the demo corpus (scripts/train_demo_model.py), 2 chunks of N_CTX tokens and a bit."""
    from transformers import AutoTokenizer

    from gendiff.demo import demo_model_path

    spec = importlib.util.spec_from_file_location("train_demo_model", REPO / "scripts" / "train_demo_model.py")
    corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(corpus)
    import random

    rng, tokenizer, body = random.Random(5), AutoTokenizer.from_pretrained(str(demo_model_path())), ""
    while len(tokenizer(body)["input_ids"]) < 2 * N_CTX + 40:
        body += corpus.story(rng) + " "
    path = tmp_path_factory.mktemp("kld") / "text.txt"
    path.write_text(body.strip() + "\n")
    return path, list(tokenizer(body.strip())["input_ids"]), tokenizer.bos_token_id


@pytest.fixture(scope="module")
def torch_logprobs(text):
    """The plain float32 forward of each chunk as llama-perplexity feeds it (BOS first), in float64."""
    import torch
    from transformers import AutoModelForCausalLM

    from gendiff.demo import demo_model_path

    _, ids, bos = text
    model = AutoModelForCausalLM.from_pretrained(str(demo_model_path()), dtype=torch.float32).eval()
    out = []
    for chunk in range(len(ids) // N_CTX):
        tokens = [bos] + ids[chunk * N_CTX + 1 : (chunk + 1) * N_CTX]
        with torch.no_grad():
            logits = model(torch.tensor([tokens])).logits[0].double()
        out.append(torch.log_softmax(logits, -1)[N_CTX // 2 : N_CTX - 1].numpy())
    return out


def test_a_base_written_by_llama_perplexity_is_the_demo_model(tmp_path, text, torch_logprobs, capsys):
    import numpy as np

    from gendiff.cli.main import main
    from gendiff.io.kld_base import read

    path, ids, _ = text
    written = tmp_path / "llama.kld"
    perplexity("-m", BUILT["gguf_f32"], "-f", str(path), "--kl-divergence-base", str(written), *FLAGS)
    base = read(written, n_vocab=2807)
    assert (base.n_ctx, base.n_chunk) == (N_CTX, len(ids) // N_CTX)
    assert list(base.token_ids) == ids[: N_CTX * base.n_chunk]  # the demo tokenizer's ids, BOS first
    worst, worst_floor = 0.0, 0.0
    for chunk, expected in enumerate(torch_logprobs):
        for position, true in enumerate(expected):
            scale, low, q = base.row(chunk, position)
            assert 0 < scale <= STEP
            stored = scale * np.array(q, dtype=np.float64) + low
            inside = true > true.max() - 16 + 2 * STEP
            worst = max(worst, float(np.abs(stored - true)[inside].max()))
            below = np.array(q) == 0  # clipped to the window floor: at or below it
            worst_floor = max(worst_floor, float((true[below] - low).max(initial=-np.inf)))
    report(capsys, f"\n(a) llama-perplexity's base vs a plain torch float32 forward: max |Δlogprob| {worst:.3g}")
    assert worst <= 0.5 * STEP + NUMERICS
    assert worst_floor <= 0.5 * STEP + NUMERICS

    code = main(["score", str(path), "--kl-divergence-base", str(written), "--engines", "hf-single", "--quiet"])
    table = capsys.readouterr().out
    assert code == 0, table
    kld_mean = float(re.search(r"KLD mean (\S+) ±", table).group(1))
    report(capsys, f"(a) gendiff hf-single float32 against llama-perplexity's f32 base: Mean KLD {kld_mean:.3g}")
    assert abs(kld_mean) < 1e-6 and "same top p 100.0000" in table


def test_b_a_base_written_by_gendiff_is_read_by_llama_perplexity(tmp_path, text, capsys):
    import torch

    from gendiff.cli.main import main
    from gendiff.io.kld_base import read
    from gendiff.records.llama_stats import full_set
    from gendiff.run.kld_base import BaseComparer, dequantise
    from gendiff.run.kld_score import Chunks

    path, ids, bos = text
    written = tmp_path / "gendiff.kld"
    code = main(
        ["score", str(path), "--kl-divergence-base-out", str(written), "--engines", "hf-single", "-c", str(N_CTX)]
    )
    table = capsys.readouterr().out
    assert code == 0, table
    f32 = summary(perplexity("-m", BUILT["gguf_f32"], "--kl-divergence", "--kl-divergence-base", str(written), *FLAGS))
    report(capsys, f"\n(b) llama-perplexity f32 GGUF against gendiff's base: {f32}")
    assert abs(f32["kld_mean"]) <= 2e-6 and f32["same_top_p"] == 100.0 and f32["dp_rms"] < 0.01
    # PPL(Q) is the engine's own: the f32 GGUF's (llama.cpp) is hf-single's (gendiff, unquantised);
    # PPL(base) is not compared with it: a token below the 16-nat window reads as the window's floor
    assert f32["ppl_q"] == pytest.approx(float(re.search(r"PPL\(Q\) (\S+) ±", table).group(1)), rel=1e-5)

    # this VM's CPU advertises AMX but faults in its q8_0 kernel: --no-repack keeps it off AMX
    q8_flags = ("-m", BUILT["gguf_q8_0"], "--no-repack", *FLAGS)
    llama = summary(perplexity("--kl-divergence", "--kl-divergence-base", str(written), *q8_flags))
    q8_logprobs = tmp_path / "q8_0.kld"
    perplexity("-f", str(path), "--kl-divergence-base", str(q8_logprobs), *q8_flags)
    base, q8 = read(written), read(q8_logprobs)
    assert list(q8.token_ids) == list(base.token_ids)
    chunks = Chunks(N_CTX, [base.chunk_tokens(c) for c in range(base.n_chunk)], bos)
    # the q8_0 logprobs as stored: renormalising would move them by the mass the floor gives the
    # tokens below the window (2807 × e^-16 at most, ~3e-4, and ~1.5e-5 measured here)
    comparer = BaseComparer(base, chunks.targets(), as_logprobs=True)
    for chunk in range(base.n_chunk):
        rows = b"".join(q8.row_bytes(chunk, s) for s in range(base.scored))
        comparer([chunk] * base.scored, list(range(base.scored)), torch.from_numpy(dequantise(rows, base.n_vocab)))
    ours = full_set(*comparer.per_position())
    report(
        capsys,
        f"(b) q8_0 GGUF against gendiff's base: llama-perplexity Mean KLD {llama['kld_mean']:.6f}, "
        f"gendiff {ours['kld_mean']:.6f} (max {llama['kld_max']:.6f} / {ours['kld']['max']:.6f}; "
        f"same top p {llama['same_top_p']:.3f}% / {100 * ours['same_top_p']:.3f}%)",
    )
    assert llama["kld_mean"] > 1e-5  # q8_0 is measurably off, so agreement means something
    # the q8_0 side reaches gendiff through a uint16 base: its logprobs carry ≤ half a step each,
    # which KL(base ‖ Q) feels only as Σ (p − q)·error once Q is renormalised
    assert ours["kld_mean"] == pytest.approx(llama["kld_mean"], abs=2e-6)
    assert ours["kld"]["max"] == pytest.approx(llama["kld_max"], abs=0.5 * STEP)
    assert 100 * ours["same_top_p"] == pytest.approx(llama["same_top_p"], abs=1e-3)
    assert ours["ppl_base"] == pytest.approx(llama["ppl_base"], rel=1e-5)  # the same base, read alike
    # (PPL(Q) is not compared: through a base, q8_0's tokens below its window read as its floor)

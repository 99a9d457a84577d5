"""The numerics of llama.cpp's ``--kl-divergence-base`` rows: quantise logits the way
``llama-perplexity`` writes them, dequantise, and compare an engine's logits with a base the
way ``llama-perplexity --kl-divergence`` does (tools/perplexity/perplexity.cpp).

Writing follows llama.cpp's float32 arithmetic step by step (max, min clipped to max − 16,
Σ expf in double, scale = (max − min)/65535, q = round-half-even((x − min)/scale), 0 at or below
the window), so a row gendiff writes is the row llama.cpp would write from the same logits.
Comparing follows its definitions, not gendiff's own (gendiff.run.statistics): the base's
dequantised logprobs are used as stored, not renormalised; a base logprob ≤ −16 adds nothing
to KL(base ‖ Q); KL is not clamped at 0; same top = argmax Q = argmax base (first of equals).
The engine's side runs in float64 from its float32 (or model-dtype) logits.
"""

from __future__ import annotations

from typing import Any

from gendiff.io.kld_base import WINDOW, KldBase, row_width
from gendiff.records.statistics import Positions


def quantise_rows(logits: Any) -> bytes:
    """Rows of ``logits`` ([n, n_vocab], any float dtype; a torch tensor or numpy array) as
    llama.cpp's ``log_softmax(n_vocab, logits, log_prob, tok)`` stores them, packed."""
    import numpy as np

    x = np.ascontiguousarray(logits.float().cpu().numpy() if hasattr(logits, "float") else logits, dtype=np.float32)
    n, vocab = x.shape
    top = x.max(-1)
    low = np.maximum(x.min(-1), top - np.float32(WINDOW))
    sum_exp = np.exp(x - top[:, None]).astype(np.float64).sum(-1)  # expf, summed in double
    log_sum_exp = np.log(sum_exp).astype(np.float32)
    min_log_prob = (low - top) - log_sum_exp
    scale = (top - low) / np.float32(65535.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.float32(1.0) / scale
        q = np.rint(inv[:, None] * (x - low[:, None]))  # rint: half to even, as nearest_int
    q = np.where((x > low[:, None]) & (scale[:, None] != 0), q, 0).astype("<u2")
    out = np.zeros((n, row_width(vocab)), dtype="<u2")
    out[:, :4] = np.stack([scale, min_log_prob], -1).astype("<f4").view("<u2")
    out[:, 4 : 4 + vocab] = q
    return out.tobytes()


def dequantise(raw: bytes, n_vocab: int) -> Any:
    """Packed rows → float32 logprobs [rows, n_vocab] (numpy): scale·q + min_log_prob."""
    import numpy as np

    rows = np.frombuffer(raw, dtype="<u2").reshape(-1, row_width(n_vocab))
    head = np.ascontiguousarray(rows[:, :4]).view("<f4")  # [rows, 2]: scale, min_log_prob
    return head[:, :1] * rows[:, 4 : 4 + n_vocab].astype(np.float32) + head[:, 1:]


class BaseComparer:
    """The observer of one engine's teacher-forced pass over a base's chunks (row = chunk,
    step = scored position): each position reduced to llama.cpp's numbers against the base.
    ``nll_base``: per chunk and step, −(base logprob of the token fed). ``as_logprobs``: the scores
    are logprobs already and are used as they are (another base's rows, which renormalising would
    move by the mass its floor gives the tokens below its window)."""

    def __init__(self, base: KldBase, targets: dict[int, list[int]], as_logprobs: bool = False) -> None:
        self.base = base
        self.targets = targets
        self.as_logprobs = as_logprobs
        self.positions: dict[int, Positions] = {}
        self.nll_base: dict[int, dict[int, float]] = {}
        self.floored = 0  # scored tokens the base stores at its floor (below its 16-nat window)
        self.lowest_kld = 0.0  # the most negative KL term sum seen (quantisation makes it < 0)

    def __call__(self, prompt_indices: list[int], steps: list[int], logits: Any) -> None:
        import torch

        rows = [i for i, (p, s) in enumerate(zip(prompt_indices, steps)) if s < len(self.targets.get(p, ()))]
        if not rows:
            return
        keys = [(prompt_indices[i], steps[i]) for i in rows]
        mine = logits[rows].float().double()
        if not self.as_logprobs:
            mine = torch.log_softmax(mine, dim=-1)
        raw = b"".join(self.base.row_bytes(chunk, step) for chunk, step in keys)
        base = torch.from_numpy(dequantise(raw, self.base.n_vocab)).to(device=mine.device, dtype=torch.float64)
        target = torch.tensor([self.targets[p][s] for p, s in keys], device=mine.device)[:, None]
        own = mine.gather(-1, target)[:, 0]
        theirs = base.gather(-1, target)[:, 0]
        terms = torch.where(base > -WINDOW, base.exp() * (base - mine), 0.0)  # llama.cpp: p_log_base > -16
        kld = terms.sum(-1).tolist()
        self.floored += int((theirs <= base.max(-1).values - WINDOW + 1e-4).sum())
        self.lowest_kld = min([self.lowest_kld, *kld])
        same = (mine.argmax(-1) == base.argmax(-1)).tolist()
        dp = (own.exp() - theirs.exp()).tolist()
        chose = (mine.argmax(-1) == target[:, 0]).tolist()
        for (chunk, step), k, s, d, lp, lb, c in zip(keys, kld, same, dp, own.tolist(), theirs.tolist(), chose):
            positions = self.positions.setdefault(chunk, Positions())
            positions.kld[step], positions.same[step], positions.dp[step], positions.nll[step] = k, s, d, -lp
            positions.chose_target[step] = c
            self.nll_base.setdefault(chunk, {})[step] = -lb

    def per_position(self) -> tuple[list[float], list[float], list[bool], list[float], list[float]]:
        """kld, dp, same, nll, nll_base over all chunks in order (what llama_stats.full_set takes)."""
        kld, dp, same, nll, nll_base = [], [], [], [], []
        for chunk in sorted(self.positions):
            p = self.positions[chunk]
            for step in sorted(p.kld):
                kld.append(p.kld[step])
                dp.append(p.dp[step])
                same.append(p.same[step])
                nll.append(p.nll[step])
                nll_base.append(self.nll_base[chunk][step])
        return kld, dp, same, nll, nll_base

"""``--stats`` and ``gendiff score`` on an engine that can't replay its decode loop but reports its
logprobs on given tokens (a :class:`~gendiff.records.forced.ForcedPass`): each fed position
reduced to the numbers of :class:`~gendiff.records.statistics.Positions`, against the reference's
full distribution P (kept as float32 logits by the reference's teacher-forced pass).

When the engine reported the whole vocabulary the numbers are those of the replaying engines
(its logprobs renormalised in float64, as logits). When it reported only a set S (its top k and
the fed token), KL(P ‖ Q) is not known; what is computed is the KL of both distributions
coarsened to S and one "rest" bucket, Σ_S p (log p − log q) + p(rest) log(p(rest) / q(rest)),
which is never above the full KL (data processing) and is labelled with k wherever it is shown.
The fed token's logprob (δ, Δp, loss) and the top-1 (same top-1) are exact either way
(δ itself is computed with llama.cpp's set, :mod:`gendiff.records.llama_stats`, from the nll).
"""

from __future__ import annotations

import math
from typing import Any

from gendiff.errors import EngineError
from gendiff.records.forced import ForcedPass, ForcedPosition
from gendiff.records.statistics import Positions

REST_FLOOR = 1e-12  # below this the rest bucket's mass is float32 rounding of the reported logprobs, not mass


def compare_forced(
    reported: ForcedPass, reference_logits: dict[tuple[int, int], Any], label: str
) -> dict[int, Positions]:
    """Per row, the per-position numbers of ``reported`` against the reference's logits
    (``(row, step) -> float32 logits``); a position the reference did not record is skipped.

    Raises:
        EngineError: the engine reported no logprob for a token it was fed.
    """
    import torch

    positions: dict[int, Positions] = {}
    for row, fed in reported.rows.items():
        for step, position in enumerate(fed):
            logits = reference_logits.get((row, step))
            if logits is None:
                continue
            p_log = torch.log_softmax(logits.double(), dim=-1)
            kld, own, top1, full = _against(p_log, position, label, row, step)
            reference_own = float(p_log[position.token])
            record = positions.setdefault(row, Positions())
            if not full:  # the smallest k of any position labels the row's KL
                k = reported.top_k or len(position.ids)
                record.kld_top_k = k if record.kld_top_k is None else min(record.kld_top_k, k)
            record.kld[step] = kld
            record.same[step] = top1 == int(p_log.argmax())
            record.dp[step] = math.exp(own) - math.exp(reference_own)
            record.nll[step] = -own
            record.chose_target[step] = top1 == position.token
    return positions


def _against(p_log: Any, position: ForcedPosition, label: str, row: int, step: int) -> tuple[float, float, int, bool]:
    """(KL or its top-k lower bound, the engine's logprob of the fed token, its top-1 id, whether
    the whole vocabulary was reported)."""
    import torch

    if position.token not in position.ids:
        raise EngineError(
            f"engine {label}: no logprob reported for the fed token {position.token} (prompt {row + 1}, step {step})"
        )
    ids = torch.tensor(position.ids, dtype=torch.long)
    lps = torch.tensor(position.logprobs, dtype=torch.float64)
    best = max(zip(position.logprobs, position.ids), key=lambda c: (c[0], -c[1]))[1]  # ties to the lowest id
    if len(set(position.ids)) == p_log.shape[-1]:
        scores = torch.full_like(p_log, -math.inf)
        scores[ids] = lps
        q_log = torch.log_softmax(scores, dim=-1)  # float32 logprobs renormalised, as logits are
        p = p_log.exp()
        terms = torch.where(p > 0, p * (p_log - q_log), 0.0)
        return max(float(terms.sum()), 0.0), float(q_log[position.token]), int(q_log.argmax()), True
    p_s = p_log[ids].exp()
    terms = torch.where(p_s > 0, p_s * (p_log[ids] - lps), 0.0)
    rest_p = max(1.0 - float(p_s.sum()), 0.0)
    rest_q = max(1.0 - float(lps.exp().sum()), REST_FLOOR)
    rest = rest_p * math.log(rest_p / rest_q) if rest_p > REST_FLOOR else 0.0
    own = float(lps[position.ids.index(position.token)])
    return max(float(terms.sum()) + rest, 0.0), own, best, False

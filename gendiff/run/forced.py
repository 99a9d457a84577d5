"""``--stats`` and ``gendiff score`` on an engine that can't replay its decode loop but reports its
logprobs on given tokens (a :class:`~gendiff.records.forced.ForcedPass`): each fed position
reduced to the numbers of :class:`~gendiff.records.statistics.Positions`, against the reference's
full distribution P (kept as float32 logits by the reference's teacher-forced pass).

When the engine reported the whole vocabulary, KL(P ‖ Q) is that of the replaying engines (its
logprobs renormalised in float64, as logits are). When it reported only a set S (its top k and
the fed token), KL(P ‖ Q) is not known; what is computed is P(S)·KL(P|S ‖ Q|S), both
distributions conditioned on S: by the chain rule KL(P ‖ Q) = KL of the two-bucket coarsening
(S, rest) + P(S)·KL(P|S ‖ Q|S) + P(rest)·KL(P|rest ‖ Q|rest), so it is never above the full KL,
and, unlike the coarsening's own term, a server's float32 normalisation error (every logprob
shifted alike: measured +5e-7 nats on vLLM's server) cancels in it. It is labelled with k wherever
it is shown. The fed token's logprob (δ, Δp, loss: the number the engine reported, not
renormalised) and the top-1 (same top-1) are exact either way; δ itself is computed with
llama.cpp's set (:mod:`gendiff.records.llama_stats`) from the nll of both passes.
"""

from __future__ import annotations

import math
from typing import Any

from gendiff.errors import EngineError
from gendiff.records.forced import ForcedPass, ForcedPosition
from gendiff.records.statistics import Positions


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
    own = position.logprobs[position.ids.index(position.token)]  # as reported
    best = max(zip(position.logprobs, position.ids), key=lambda c: (c[0], -c[1]))[1]  # ties to the lowest id
    if len(set(position.ids)) == p_log.shape[-1]:
        scores = torch.full_like(p_log, -math.inf)
        scores[ids] = lps
        q_log = torch.log_softmax(scores, dim=-1)  # float32 logprobs renormalised, as logits are
        p = p_log.exp()
        terms = torch.where(p > 0, p * (p_log - q_log), 0.0)
        return max(float(terms.sum()), 0.0), own, best, True
    p_in = p_log[ids]
    mass = torch.logsumexp(p_in, dim=-1)  # log P(S)
    p_given = p_in - mass  # log P|S
    q_given = torch.log_softmax(lps, dim=-1)  # log Q|S: a shift shared by every reported logprob cancels
    terms = torch.where(p_given > -math.inf, p_given.exp() * (p_given - q_given), 0.0)
    return max(float(mass.exp() * terms.sum()), 0.0), own, best, False

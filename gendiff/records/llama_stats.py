"""llama.cpp's full ``llama-perplexity --kl-divergence`` statistic set, from per-position numbers.

Formulas as in llama.cpp's tools/perplexity/perplexity.cpp (``kl_divergence``):

- a mean's uncertainty: sqrt((Σx²/n − mean²)/(n − 1)), 0 when that variance is ≤ 0 or n ≤ 10;
- Cov(ln PPL(Q), ln PPL(base)) = (Σ nll·nll_base/n − mean·mean_base)/(n − 1), 0 when n < 10;
  Cor = Cov/(unc(ln PPL(Q))·unc(ln PPL(base)));
- ln(PPL(Q)/PPL(base)) ± sqrt(u_q² + u_b² − 2 Cov); PPL(Q)/PPL(base) = exp of it, ± ratio·that;
- PPL(Q) − PPL(base) ± sqrt(u_Q² + u_B² − 2·PPL(Q)·PPL(base)·Cov) with u_Q = PPL(Q)·u_q;
- RMS Δp = sqrt(mean Δp²), ± 0.5/RMS · unc(Δp²) (from Σ Δp⁴);
- same top p ± sqrt(p(1 − p)/(n − 1)) (binomial);
- percentiles: linear interpolation between closest ranks (numpy's default).

Also the per-token δ = logprob_engine(token) − logprob_reference(token) of the forced token
(= nll_base − nll_q): mean, RMS, percentiles. gendiff's logits are float32; llama.cpp's base
file stores logprobs as uint16 over a 16-nat window (steps of ≈2.4e-4 nats; it skips base
logprobs ≤ −16), so its figures carry that quantisation and gendiff's do not.
"""

from __future__ import annotations

import math

from gendiff.records.statistics import quantile

KLD_LEVELS = (0.999, 0.99, 0.95, 0.90, 0.5, 0.10, 0.05, 0.01, 0.001)
DP_LEVELS = (0.999, 0.99, 0.95, 0.90, 0.75, 0.5, 0.25, 0.10, 0.05, 0.01, 0.001)
PRECISION_NOTE = (
    "gendiff's logits are float32; llama.cpp's --kl-divergence-base file quantises logprobs to "
    "uint16 over a 16-nat window (≈2.4e-4 nats) and skips base logprobs ≤ −16"
)


def mean_and_uncertainty(values: list[float]) -> tuple[float, float]:
    n = len(values)
    if n < 1:
        return 0.0, 0.0
    mean = sum(values) / n
    var = sum(v * v for v in values) / n - mean * mean
    return mean, math.sqrt(var / (n - 1)) if var > 0 and n > 10 else 0.0


def covariance(a: list[float], b: list[float]) -> float:
    n = len(a)
    if n < 10:
        return 0.0
    return (sum(x * y for x, y in zip(a, b)) / n - (sum(a) / n) * (sum(b) / n)) / (n - 1)


def spread(values: list[float], levels: tuple[float, ...]) -> dict[str, float]:
    out = {"max": max(values), "min": min(values)}
    out.update({f"p{level * 100:g}": quantile(values, level) for level in levels})
    return out


def full_set(kld: list[float], dp: list[float], same: list[bool], nll: list[float], nll_base: list[float]) -> dict:
    """Every statistic llama.cpp prints, plus δ; keys are stable (the snapshot stores them)."""
    n = len(kld)
    if n == 0:
        return {"positions": 0}
    lq, uq = mean_and_uncertainty(nll)
    lb, ub = mean_and_uncertainty(nll_base)
    cov = covariance(nll, nll_base)
    ppl_q, ppl_b = math.exp(lq), math.exp(lb)
    ratio_unc = math.sqrt(max(uq * uq + ub * ub - 2.0 * cov, 0.0))
    diff_unc = math.sqrt(max((ppl_q * uq) ** 2 + (ppl_b * ub) ** 2 - 2.0 * ppl_q * ppl_b * cov, 0.0))
    kld_mean, kld_unc = mean_and_uncertainty(kld)
    dp_mean, dp_unc = mean_and_uncertainty(dp)
    mse, mse_unc = mean_and_uncertainty([d * d for d in dp])
    rms = math.sqrt(mse)
    top = sum(same) / n
    delta = [b - q for q, b in zip(nll, nll_base)]
    return {
        "positions": n,
        "ppl_q": ppl_q,
        "ppl_q_unc": ppl_q * uq,
        "ppl_base": ppl_b,
        "ppl_base_unc": ppl_b * ub,
        "ln_ppl_cor": cov / (uq * ub) if uq > 0 and ub > 0 else None,
        "ln_ppl_ratio": lq - lb,
        "ln_ppl_ratio_unc": ratio_unc,
        "ppl_ratio": math.exp(lq - lb),
        "ppl_ratio_unc": math.exp(lq - lb) * ratio_unc,
        "ppl_diff": ppl_q - ppl_b,
        "ppl_diff_unc": diff_unc,
        "kld_mean": kld_mean,
        "kld_mean_unc": kld_unc,
        "kld": spread(kld, KLD_LEVELS),
        "dp_mean": dp_mean,
        "dp_mean_unc": dp_unc,
        "dp": spread(dp, DP_LEVELS),
        "dp_rms": rms,
        "dp_rms_unc": 0.5 / rms * mse_unc if rms > 0 else 0.0,
        "same_top_p": top,
        "same_top_p_unc": math.sqrt(top * (1 - top) / (n - 1)) if n > 1 else 0.0,
        "delta_mean": sum(delta) / n,
        "delta_rms": math.sqrt(sum(d * d for d in delta) / n),
        "delta": spread(delta, DP_LEVELS),
        "note": PRECISION_NOTE,
    }

"""llama.cpp's full --kl-divergence statistic set against numpy and the formulas re-derived here."""

import math

import numpy as np
import pytest

from gendiff.records.llama_stats import full_set


@pytest.fixture
def numbers():
    rng = np.random.default_rng(7)
    n = 257
    nll_base = rng.exponential(2.0, n)
    nll = nll_base + rng.normal(0.01, 0.05, n)
    kld = rng.exponential(0.003, n)
    dp = rng.normal(-0.001, 0.02, n)
    same = rng.random(n) < 0.93
    return kld, dp, same, nll, nll_base


def unc(x):
    # the standard error of the mean with the population variance, as llama.cpp does
    return np.sqrt(np.var(x) / (len(x) - 1))


def test_every_statistic_matches_numpy(numbers):
    kld, dp, same, nll, nll_base = numbers
    n = len(kld)
    got = full_set(list(kld), list(dp), list(same), list(nll), list(nll_base))
    uq, ub = unc(nll), unc(nll_base)
    cov = np.mean(nll * nll_base) - nll.mean() * nll_base.mean()
    cov /= n - 1
    ppl_q, ppl_b = np.exp(nll.mean()), np.exp(nll_base.mean())
    want = {
        "ppl_q": ppl_q,
        "ppl_q_unc": ppl_q * uq,
        "ppl_base": ppl_b,
        "ppl_base_unc": ppl_b * ub,
        "ln_ppl_cor": cov / (uq * ub),
        "ln_ppl_ratio": nll.mean() - nll_base.mean(),
        "ln_ppl_ratio_unc": np.sqrt(uq**2 + ub**2 - 2 * cov),
        "ppl_ratio": ppl_q / ppl_b,
        "ppl_ratio_unc": ppl_q / ppl_b * np.sqrt(uq**2 + ub**2 - 2 * cov),
        "ppl_diff": ppl_q - ppl_b,
        "ppl_diff_unc": np.sqrt((ppl_q * uq) ** 2 + (ppl_b * ub) ** 2 - 2 * ppl_q * ppl_b * cov),
        "kld_mean": kld.mean(),
        "kld_mean_unc": unc(kld),
        "dp_mean": dp.mean(),
        "dp_mean_unc": unc(dp),
        "dp_rms": np.sqrt(np.mean(dp**2)),
        "dp_rms_unc": 0.5 / np.sqrt(np.mean(dp**2)) * unc(dp**2),
        "same_top_p": same.mean(),
        "same_top_p_unc": np.sqrt(same.mean() * (1 - same.mean()) / (n - 1)),
        "delta_mean": np.mean(nll_base - nll),
        "delta_rms": np.sqrt(np.mean((nll_base - nll) ** 2)),
    }
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert 0.9 < got["ln_ppl_cor"] <= 1.0  # nll tracks nll_base closely in this fixture
    for name, values, levels in (
        ("kld", kld, (99.9, 99, 95, 90, 50, 10, 5, 1, 0.1)),
        ("dp", dp, (99.9, 99, 95, 90, 75, 50, 25, 10, 5, 1, 0.1)),
        ("delta", nll_base - nll, (99.9, 99, 95, 90, 75, 50, 25, 10, 5, 1, 0.1)),
    ):
        assert got[name]["max"] == values.max() and got[name]["min"] == values.min()
        for level in levels:
            assert got[name][f"p{level:g}"] == pytest.approx(np.percentile(values, level), abs=1e-15), (name, level)
    assert "float32" in got["note"] and "uint16" in got["note"]


def test_few_positions_have_no_uncertainty():
    # llama.cpp gives ± 0 for n ≤ 10 and covariance 0 for n < 10
    got = full_set([0.1, 0.2, 0.3], [0.01, -0.02, 0.0], [True, False, True], [1.0, 2.0, 3.0], [1.1, 2.2, 2.9])
    assert got["kld_mean_unc"] == 0.0 and got["ppl_q_unc"] == 0.0 and got["ln_ppl_cor"] is None
    assert got["same_top_p"] == pytest.approx(2 / 3)
    assert got["same_top_p_unc"] == pytest.approx(math.sqrt((2 / 3) * (1 / 3) / 2))
    assert got["kld"]["p50"] == pytest.approx(0.2)

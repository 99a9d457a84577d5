"""Printing llama.cpp's whole ``--kl-divergence`` set (gendiff.records.llama_stats), per engine."""

from __future__ import annotations

from typing import Any

from gendiff.display import number


def _pm(full: dict[str, Any], key: str, scale: float = 1.0, digits: int = 6) -> str:
    value, unc = full.get(key), full.get(f"{key}_unc")
    if value is None:
        return "—"
    return f"{number(scale * value, digits)} ± {number(scale * (unc or 0.0), digits)}"


def _spread(values: dict[str, float], scale: float = 1.0, bound: str = "") -> str:
    order = ["max", "p99.9", "p99", "p95", "p90", "p75", "p50", "p25", "p10", "p5", "p1", "p0.1", "min"]
    return "  ".join(f"{k} {bound}{number(scale * values[k], 6)}" for k in order if k in values)


def full_statistics_lines(statistics: dict[str, Any], labels: list[str], base: str = "the reference") -> list[str]:
    """``base``: what the statistics are against (the reference, or a --kl-divergence-base file)."""
    lines: list[str] = []
    side = "reference" if base == "the reference" else "base"
    for label in labels:
        st = statistics.get(label)
        full = getattr(st, "full", None)
        if not full or not full.get("positions"):
            continue
        cor = full.get("ln_ppl_cor")
        bound = "≥" if st.kld_lower_bound else ""  # over the engine's top k only (see statistics_table)
        lines += [
            f"  {label}: {full['positions']} positions (llama.cpp's --kl-divergence set; base = {base})",
            f"    PPL(Q) {_pm(full, 'ppl_q')}  PPL(base) {_pm(full, 'ppl_base')}  "
            f"Cor(ln PPL(Q), ln PPL(base)) {'—' if cor is None else f'{100 * cor:.2f}%'}",
            f"    ln(PPL(Q)/PPL(base)) {_pm(full, 'ln_ppl_ratio')}  PPL(Q)/PPL(base) {_pm(full, 'ppl_ratio')}  "
            f"PPL(Q)−PPL(base) {_pm(full, 'ppl_diff')}",
            f"    KLD mean {bound}{_pm(full, 'kld_mean')}  {_spread(full['kld'], bound=bound)}",
            f"    Δp mean {_pm(full, 'dp_mean', 100, 4)} %  RMS Δp {_pm(full, 'dp_rms', 100, 4)} %  "
            f"same top p {_pm(full, 'same_top_p', 100, 4)} %",
            f"    Δp %: {_spread(full['dp'], 100)}",
            f"    δ = logprob_engine − logprob_{side} (nats): mean {number(full['delta_mean'], 6)}  "
            f"RMS {number(full['delta_rms'], 6)}  {_spread(full['delta'])}",
        ]
    if lines:
        lines.append(
            f"  ({next(statistics[label].full['note'] for label in labels if getattr(statistics.get(label), 'full', None))})"
        )
    return lines

"""The text tables ``gendiff run``, ``compare`` and ``score`` print: the per prompt × engine summary,
the distribution statistics, the repeats, and the bisection charts inside the summary."""

from __future__ import annotations

from typing import Any

from gendiff.cli.full_stats import full_statistics_lines
from gendiff.display import bar, number, one_line, shorten, visible
from gendiff.records.classify import CLASSIFICATIONS


def summary_table(snapshot: Any) -> str:
    """One line per prompt × engine: identical, or where and how it diverged."""

    if snapshot.sources:
        lines = [f"reference: each engine@B against engine@A   model: {snapshot.model['name']}"]
    else:
        lines = [
            f"reference: {snapshot.reference}   model: {snapshot.model['name']}   dtype: {snapshot.model.get('dtype')}"
        ]
    compared = {d.engine for p in snapshot.prompts for d in p.divergences}
    labels = [label for label in snapshot.engine_labels if label in compared]
    width = max((len(label) for label in labels), default=8)
    diverged = total = failed = 0
    if snapshot.shard is not None:
        lines.append(
            f"shard {snapshot.shard.label}: {len(snapshot.prompts)} of {snapshot.shard.total} prompts, "
            "numbered by their position in the prompt file"
        )
    for index, prompt in zip(snapshot.prompt_numbers(), snapshot.prompts, strict=True):
        lines.append(f"{index:>3} {one_line(shorten(prompt.text, 70))}")
        named = {name for d in prompt.divergences for name in (d.engine, d.reference)}
        for label, trace in prompt.traces.items():
            if label not in named and trace.finish_reason == "error":  # no comparison says it: say it here
                failed += 1
                lines.append(f"      {label:<{width}}  FAILED: {one_line(trace.error or 'no reason recorded')}")
        for label in labels:
            d = prompt.divergence_for(label)
            if d is None:
                continue
            total += 1
            if not d.diverged:
                lines.append(f"      {label:<{width}}  identical ({d.agreeing_steps} tokens)")
                continue
            if d.reason == "error":  # a failed engine is not a divergence: say so
                failed += 1
                lines.append(f"      {label:<{width}}  FAILED: {one_line(d.detail)}")
                continue
            diverged += 1
            pad = " " * (width + 8)
            if d.reason == "token":
                lines.append(
                    f"      {label:<{width}}  DIVERGED at step {d.step} [{d.classification}]: "
                    f"{visible(d.reference_step.text)!s} vs {visible(d.other_step.text)!s}  "
                    f"margin ref {number(d.reference_margin)} / {label} {number(d.other_margin)}  "
                    f"flip gap {number(d.flip_gap)}  drift before {number(d.max_drift_before)}  "
                    f"in each other's top {len(d.reference_step.top)}: {'yes' if d.cross_top_k else 'no'}"
                )
                if d.decoding_note:
                    lines.append(f"{pad}penalties differ: {d.decoding_note}")
                if d.conformance_note:
                    lines.append(f"{pad}{d.conformance_note}")
                if d.reconvergence is not None:  # the verdict (does the fork last) before the details
                    lines.append(f"{pad}re-convergence: {d.reconvergence.summary()}")
                if d.bisection is not None:
                    head, *notes = d.bisection.summary_lines()
                    lines.append(f"{pad}bisection: {head}")
                    lines.extend(f"{pad}  {note}" for note in notes)
                    if d.bisection.modules:
                        lines.append(f"{pad}  {layer_chart(d.bisection)}")
                    if d.bisection.key_values:
                        lines.append(f"{pad}  {key_value_chart(d.bisection)}")
            else:
                where = "" if d.step is None else f" at step {d.step}"
                lines.append(f"      {label:<{width}}  DIVERGED{where} ({d.reason}): {one_line(d.detail)}")
                if d.decoding_note:
                    lines.append(f"{pad}penalties differ: {d.decoding_note}")
                if d.conformance_note:
                    lines.append(f"{pad}{d.conformance_note}")
            if d.recheck is not None:
                lines.append(f"{pad}recheck: {d.recheck.summary()}")
    against = "its @A side" if snapshot.sources else snapshot.reference
    lines.append(
        f"{diverged} of {total} prompt×engine pairs diverged from {against}{classification_counts(snapshot)}"
        + (f"; {failed} not compared because an engine failed" if failed else "")
    )
    return "\n".join(lines)


def checked(verdict: Any) -> str:
    """One progress line on an engine's conformance verdict (gendiff.records.conformance)."""
    how = "cached" if verdict.cached else f"{verdict.seconds:.2f}s"
    if verdict.status == "agrees":
        return f"checked on this model: agrees with unpadded in float32 ({how})"
    if verdict.status == "differs":
        return f"checked on this model: {verdict.note or 'differs from unpadded'} ({verdict.where()}; {how})"
    return f"not checked on this model: {verdict.where()}"


def pct(value: float | None) -> float | None:
    return None if value is None else 100 * value


def statistics_table(
    statistics: dict[str, Any], labels: list[str], title: str, loss: bool = False, base: str = "the reference"
) -> str:
    """One line per engine: llama.cpp's --kl-divergence set over all prompts (KL in nats)."""

    labels = [label for label in labels if label in statistics]
    width = max([len(label) for label in labels] + [6])
    lines = [
        title,
        f"  {'engine':<{width}}  {'positions':>9}  {'KLD mean':>9}  {'median':>9}  {'p99':>9}  {'max':>9}  "
        f"{'at':>7}  {'same top1':>9}  {'Δp mean %':>9}  {'Δp rms %':>9}" + (f"  {'loss':>9}" if loss else ""),
    ]
    for label in labels:
        st = statistics[label]
        at = "—" if st.kld_max_prompt is None or not st.kld_max else f"{st.kld_max_prompt + 1}/{st.kld_max_position}"
        same = "—" if st.same_top1 is None else f"{100 * st.same_top1:.2f}%"
        kl = "≥" if st.kld_top_k is not None else ""  # over the top k only: a lower bound
        lines.append(
            f"  {label:<{width}}  {st.positions:>9}  {kl + number(st.kld_mean, 6):>9}  {kl + number(st.kld_median, 6):>9}  "
            f"{kl + number(st.kld_p99, 6):>9}  {kl + number(st.kld_max, 6):>9}  {at:>7}  {same:>9}  "
            f"{number(pct(st.dp_mean), 6):>9}  {number(pct(st.dp_rms), 6):>9}"
            + (f"  {number(st.loss, 6):>9}" if loss else "")
        )
    side = "reference" if base == "the reference" else "base"
    what = "prompt/step" if not loss else "text/token" if side == "reference" else "chunk/step"
    lines.append(
        f"  (at: {what} of the largest KLD, the first counted from 1, the second from 0; Δp: change of the {side} "
        "token's probability, in percentage points)"
    )
    for label in labels:
        k = statistics[label].kld_top_k
        if k is not None:
            lines.append(
                f"  {label}: ≥ marks a lower bound: it reported only its top {k} tokens per position, so its KLD is "
                "the KL of both distributions within those (× their mass under the reference), never above the "
                "full KL (δ, Δp, loss and same top-1 are exact)"
            )
    lines += full_statistics_lines(statistics, labels, base)
    return "\n".join(lines)


def repeats_table(snapshot: Any) -> str:
    """Per engine: how many prompts gave one completion in every run, and the ones that did not."""
    labels = [label for label in snapshot.engine_labels if any(label in p.repeats for p in snapshot.prompts)]
    runs = next(r.runs for p in snapshot.prompts for r in p.repeats.values())
    lines = [f"repeats: {runs} runs, each prompt at another row beside other prompts each time"]
    width = max(len(label) for label in labels)
    for label in labels:
        numbered = zip(snapshot.prompt_numbers(), snapshot.prompts, strict=True)
        found = [(i, p.repeats[label]) for i, p in numbered if label in p.repeats]
        stable = sum(r.deterministic for _, r in found)
        lines.append(f"  {label:<{width}}  {stable} of {len(found)} prompts: 1 unique of {runs}")
        for index, r in found:
            if not r.deterministic:
                lines.append(f"  {'':<{width}}    prompt {index}: {r.summary()}")
    return "\n".join(lines)


def classification_counts(snapshot: Any) -> str:
    """``: 3 exact-tie, 1 wide-flip`` over the snapshot's divergences (empty when none)."""
    from collections import Counter

    # failed engines are counted apart ("not compared"), not as a kind of divergence
    counts = Counter(d.classification for d in snapshot.divergences() if d.reason != "error")
    shown = [f"{counts[kind]} {kind}" for kind in CLASSIFICATIONS if counts[kind]]
    return f": {', '.join(shown)}" if shown else ""


def layer_chart(bisection: Any) -> str:
    """The relative difference of the residual stream after each layer at the divergent position,
    as ``relative difference after each layer at position 14: L1 ▅ 1.2e-03 …`` (bars on a log
    axis from 1e-7 to 1; ``·`` is bitwise equal)."""

    at = f" at position {bisection.position}" if bisection.position is not None else ""
    chart = "  ".join(f"L{m.layer} {bar(m.rel_diff)} {m.rel_diff:.1e}" for m in bisection.layer_outputs())
    return f"relative difference after each layer{at}: {chart}"


def key_value_chart(bisection: Any) -> str:
    """Per layer, how many of the positions before the divergent one have a key or value that
    differs: ``earlier positions whose keys/values differ, of 12: L0 none · L1 3 (positions 0, 1,
    2; up to 4.1e-03 relative difference)``."""
    compared = {}
    for kv in bisection.key_values:
        compared[kv.layer] = max(compared.get(kv.layer, 0), kv.positions)
    earlier = bisection.earlier_positions()
    total = max(compared.values(), default=0) - (1 if bisection.position is not None else 0)
    parts = []
    for layer in sorted(compared):
        found = earlier.get(layer, [])
        if not found:
            parts.append(f"L{layer} none")
            continue
        shown = ", ".join(str(p.position) for p in found[:6]) + (", …" if len(found) > 6 else "")
        worst = max(p.rel_diff for p in found)
        parts.append(f"L{layer} {len(found)} (positions {shown}; up to {worst:.1e} relative difference)")
    return f"earlier positions whose keys/values differ, of {total}: " + " · ".join(parts)

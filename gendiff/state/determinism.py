"""What a nondeterminism protocol's result says, as text (the same for ``gendiff determinism``
and the app's determinism screen): the per-engine table, the token pairs at the splits, the
histogram of the first split positions drawn as bars, the JSON file, and one split as a Workspace of two
columns (the most common completion and the split's trial), so the app's usual divergence view
shows it. Pure functions of :class:`gendiff.records.determinism.Determinism`."""

from __future__ import annotations

import json
from dataclasses import replace

from gendiff.defaults import FRAGILE_THRESHOLD
from gendiff.display import one_line, visible
from gendiff.records.determinism import Determinism, Split, Spread
from gendiff.records.divergence import compare
from gendiff.records.snapshot import Batch, PromptResult
from gendiff.state.cells import Prompt
from gendiff.state.workspace import Workspace

BLOCKS = " ▏▎▍▌▋▊▉█"  # eighths of a cell: a bar's length to 1/8 of a character


def json_text(result: Determinism) -> str:
    """The JSON file of a protocol's result, as ``gendiff determinism --json`` and the screen's
    export (``x``) write it: the record (a cancelled run: ``"partial": true``, ``"planned"``)."""
    return json.dumps(result.to_dict(), indent=1)


def table_lines(result: Determinism) -> list[str]:
    """The per-engine table: unique of N, the most common's count, TARr@N, the split histogram,
    the token pairs at the splits with counts and margin class, the bisection."""
    sizes = sorted({len(t.prompts) for t in result.trials}) or [0]
    lines = [
        f"{result.protocol}: {len(result.trials)} trial{'s' if len(result.trials) != 1 else ''} run (seed {result.seed}, "
        + (f"batch size {sizes[0]}) " if sizes[0] == sizes[-1] else f"batch sizes {sizes[0]}..{sizes[-1]}) ")
        + f'of "{one_line(result.pool[0])[:60]}"'
    ]
    if result.partial:
        lines.append(f"  partial: cancelled after {len(result.trials)} of {result.planned} trials")
    width = max((len(label) for label in result.spreads), default=6)
    lines.append(f"  {'engine':<{width}}  completions         most common  TARr@N  first split (step: n)")
    for label, s in result.spreads.items():
        lines.append(f"  {label:<{width}}  {engine_row(s)}")
        lines.extend(f"  {'':<{width}}    {line}" for line in split_lines(s))
        bisection = result.bisections.get(label)
        if bisection is not None:
            lines.extend(f"  {'':<{width}}    bisection: {line}" for line in bisection.summary_lines())
    return lines


def engine_row(s: Spread) -> str:
    """``3 unique of 8   6  0.7500  5: 2`` (the table's columns after the engine's label)."""
    identical = f"{s.trials} of {s.trials} identical" if s.unique == 1 else f"{s.unique} unique of {s.trials}"
    histogram = ", ".join(f"{step}: {n}" for step, n in sorted(s.split_histogram.items())) or "none"
    return f"{identical:<18}  {s.most_common:>11}  {s.agreement:.4f}  {histogram}"


def common_count(s: Spread, split: Split) -> int:
    """Trials that still follow the most common completion through ``split.step`` (its own count
    in "992 vs 8"): every trial but those that left it at or before that step."""
    return s.trials - sum(x.count for x in s.splits if x.step <= split.step)


def token_label(token: int | None, text: str) -> str:
    """A split's token as shown: its text quoted and made visible, or ``(end)``."""
    return "(end)" if token is None else f'"{visible(text)}"'


def split_lines(s: Spread) -> list[str]:
    """``step 5: "␣the" 6 vs "␣a" 2 (near-tie)``, the most common split first."""
    out_lines = []
    for split in s.splits:
        kind = f" ({split.margin_class})" if split.margin_class else ""
        out_lines.append(
            f"step {split.step}: {token_label(split.common, split.common_text)} {common_count(s, split)} "
            f"vs {token_label(split.other, split.other_text)} {split.count}{kind}"
        )
    return out_lines


def bar(value: int, largest: int, width: int) -> str:
    """``value`` of ``largest`` as a bar of at most ``width`` cells, in eighths; never empty for > 0."""
    if value <= 0 or largest <= 0 or width <= 0:
        return ""
    eighths = max(1, round(value / largest * width * 8))
    full, rest = divmod(eighths, 8)
    return "█" * full + (BLOCKS[rest] if rest else "")


def histogram_lines(s: Spread, width: int) -> list[str]:
    """The first split positions as horizontal bars, one line per step that has any (a full bar is
    every trial, so the bars of two engines of one run compare), then how many trials never left
    the most common completion."""
    if not s.split_histogram:
        return [f"no split: {s.trials} of {s.trials} trials identical"]
    largest = max(s.split_histogram.values())
    step_width = max(len(str(step)) for step in s.split_histogram)
    count_width = len(str(largest))
    room = max(4, width - step_width - count_width - len("step  │  "))
    lines = [
        f"step {step:>{step_width}} │{bar(n, s.trials, room):<{room}} {n:>{count_width}}"
        for step, n in sorted(s.split_histogram.items())
    ]
    lines.append(f"{s.most_common} of {s.trials} trials as the most common (no split)")
    return lines


def trial_label(trial: int, mode: bool = False) -> str:
    """A trial's column label in the divergence view (1-based, as the screen numbers them)."""
    return f"trial {trial + 1}" + (" (most common)" if mode else "")


def split_workspace(
    result: Determinism, label: str, trial: int, fragile_threshold: float = FRAGILE_THRESHOLD
) -> Workspace:
    """One prompt (the watched one), two columns: ``label``'s most common completion (the
    reference) and its completion in ``trial``, each from its own engine call (recorded as a
    Batch, the watched prompt's row in it), and their Divergence; what the app's Workbench shows."""
    s = result.spreads[label]
    traces = result.traces[label]
    reference, other = trial_label(s.mode_trial, mode=True), trial_label(trial)
    ws = Workspace([reference, other], reference, fragile_threshold)
    text = result.pool[0]
    prompt = Prompt(0, text, ws.blank_cells())
    ws.prompts.append(prompt)
    ws.next_id = 1
    ws.saved, ws.replays = True, False  # a view of finished trials: nothing runs or replays here
    kept = {reference: replace(traces[s.mode_trial], engine=reference, prompt_index=0)}
    kept[other] = replace(traces[trial], engine=other, prompt_index=0)
    batches = {}
    for number, (column, index) in enumerate(((reference, s.mode_trial), (other, trial))):
        layout = result.trials[index]
        ids = tuple(0 if row == layout.row else 1000 * (number + 1) + row for row in range(len(layout.prompts)))
        ws.batches[number] = Batch(
            number,
            (column,),
            ids,
            tuple(result.pool[i] for i in layout.prompts),
            tuple(kept[column].prompt_token_ids if row == layout.row else () for row in range(len(layout.prompts))),
        )
        batches[column] = number
    ws.next_batch = 2
    divergence = compare(kept[reference], kept[other], fragile_threshold)
    token_ids = list(kept[reference].prompt_token_ids)
    ws.apply_result(prompt, PromptResult(text, token_ids, kept, [divergence], 0, batches), batches)
    return ws

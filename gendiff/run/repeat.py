"""Run every engine N times, moving each prompt to another row beside other prompts each time.

vLLM's batch-invariance suite calls it "needle in a batch": a deterministic engine gives the
same completion for a prompt whatever row of the batch it sits in and whatever sits next to
it. Run 1 is the run itself (the prompts in their given order); runs 2…N shuffle the order so
that, while it can, no prompt returns to a row it had, and batched engines (hf-left, hf-right,
packed, vLLM) put it in another row, beside other prompts.
"""

from __future__ import annotations

import random

from gendiff.errors import GendiffError
from gendiff.records.events import OnEvent
from gendiff.records.repeats import Repeats, first_split
from gendiff.records.snapshot import Snapshot
from gendiff.run.session import Session

MATCHING_LIMIT = 400


def orders(count: int, runs: int) -> list[list[int]]:
    """``runs`` orders of ``count`` prompts (``order[row] = prompt``): the given one, then random
    ones in which no prompt returns to a row it already had, while there are such rows (after
    r runs the allowed prompt-row pairs form an (n-r)-regular bipartite graph, which always has a
    perfect matching); after that, random."""
    result = [list(range(count))]
    seen = [{row} for row in range(count)]
    for run in range(1, runs):
        rng = random.Random(run)
        # augmenting paths recurse once per prompt: past a few hundred, plain shuffles
        order = _matching(count, seen, rng) if run < count <= MATCHING_LIMIT else None
        if order is None:
            order = list(range(count))
            rng.shuffle(order)
        for row, prompt in enumerate(order):
            seen[prompt].add(row)
        result.append(order)
    return result


def _matching(count: int, seen: list[set[int]], rng: random.Random) -> list[int] | None:
    """A random perfect matching of prompts to rows they have not had (augmenting paths)."""
    prompt_of_row: list[int | None] = [None] * count
    rows = list(range(count))

    def place(prompt: int, visited: set[int]) -> bool:
        rng.shuffle(rows)
        for row in list(rows):
            if row in seen[prompt] or row in visited:
                continue
            visited.add(row)
            holder = prompt_of_row[row]
            if holder is None or place(holder, visited):
                prompt_of_row[row] = prompt
                return True
        return False

    prompts = list(range(count))
    rng.shuffle(prompts)
    for prompt in prompts:
        if not place(prompt, set()):
            return None
    return [p for p in prompt_of_row if p is not None] if None not in prompt_of_row else None


def attach_repeats(session: Session, snapshot: Snapshot, runs: int, on_event: OnEvent | None = None) -> list[str]:
    """``gendiff run --repeat N``: run ``runs - 1`` more times with the prompts reordered and store
    a :class:`Repeats` per prompt and engine; returns notes."""
    if runs < 2:
        raise GendiffError(f"--repeat {runs}: must be at least 2 (the run itself counts as the first)")
    reference = snapshot.reference
    indices = [prompt.traces[reference].prompt_index for prompt in snapshot.prompts]
    completions: dict[tuple[int, str], list[tuple[int, ...]]] = {}
    rows: dict[tuple[int, str], list[int]] = {}
    failed: set[str] = {e["label"] for e in snapshot.engines if e.get("error")}

    def record(result: Snapshot, order: list[int]) -> None:
        for row, prompt in zip(order, result.prompts):
            for label, trace in prompt.traces.items():
                if trace.finish_reason == "error":
                    failed.add(label)
                    continue
                completions.setdefault((row, label), []).append(trace.token_ids)
                rows.setdefault((row, label), []).append(order.index(row))

    every = orders(len(indices), runs)
    record(snapshot, every[0])
    for order in every[1:]:
        result = session.run(on_event, prompt_indices=[indices[position] for position in order])
        # session.run lists prompts in the order run: map each back to its row in the snapshot
        record(result, order)
    for row, prompt in enumerate(snapshot.prompts):
        for label in prompt.traces:
            seen = completions.get((row, label), [])
            if label in failed or len(seen) != runs:
                continue
            prompt.repeats[label] = Repeats(runs, len(set(seen)), first_split(seen), tuple(rows[(row, label)]))
    return [f"--repeat: {label} failed in a repeat run; no repeat counts for it" for label in sorted(failed)]

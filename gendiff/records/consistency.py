"""A snapshot checked against itself before anything it says is shown or believed.

A file is data from elsewhere: its divergence records could say "identical" over two token
streams that differ, or name a step that does not exist. :func:`verify_snapshot` recomputes every
divergence from the two traces it compares (:func:`gendiff.records.divergence.compare`), refuses
a file whose records disagree with its traces, and refuses token ids outside the model's
vocabulary. It takes the in-memory Snapshot, so it applies whatever the file format; the loader
(:func:`gendiff.io.snapshots.snapshot_from_data`) calls it for every snapshot opened.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gendiff.defaults import FRAGILE_THRESHOLD
from gendiff.display import shorten
from gendiff.errors import InputError
from gendiff.records.columns import Columns, StepColumns
from gendiff.records.divergence import ERROR, IDENTICAL, Divergence, compare
from gendiff.records.shard import RULE, shard_of
from gendiff.records.snapshot import PromptResult, Snapshot
from gendiff.records.trace import TokenStep

# without a recorded vocabulary: no model has 2**31 tokens, and a tokenizer can't decode such an id
NO_VOCAB_LIMIT = 2**31


def verify_snapshot(snapshot: Snapshot, source: str) -> Snapshot:
    """``snapshot`` with every divergence recomputed from its traces (the stored bisection,
    re-convergence and recheck records kept; a pair of traces without a record gets one);
    raises InputError naming ``source``, the prompt and the engine when a stored record disagrees
    with the traces (another step, another reason, "identical" over differing tokens) or a token
    id lies outside the vocabulary (``model.vocab_size`` when recorded)."""
    vocab = snapshot.model.get("vocab_size")
    limit = vocab if isinstance(vocab, int) and not isinstance(vocab, bool) and vocab > 0 else NO_VOCAB_LIMIT
    threshold = float(snapshot.decoding.get("fragile_threshold", FRAGILE_THRESHOLD))
    pairs = _expected_pairs(snapshot)
    _check_shard(snapshot, source)
    for number, prompt in enumerate(snapshot.prompts, 1):
        where = f"snapshot {source}: prompt {number} ({shorten(prompt.text, 30)!r})"
        _check_ids(prompt, limit, vocab is not None, where)
        prompt.divergences = _verified(prompt, pairs, threshold, where)
    for b, batch in enumerate(snapshot.batches):
        bad = next((i for ids in batch.token_ids for i in ids if not 0 <= i < limit), None)
        if bad is not None:
            raise InputError(f"snapshot {source}: batches/{b}: token id {bad} {_outside(limit, vocab is not None)}")
    return snapshot


def _check_shard(snapshot: Snapshot, source: str) -> None:
    """A shard record agrees with the prompts: a known rule, shards numbered 1 … count once each,
    every prompt in one of them by its text, every id a position in the list of ``prompts_total``."""
    shard = snapshot.shard
    if shard is None:
        return
    where = f"snapshot {source}: shard"
    if shard.rule != RULE:
        raise InputError(f"{where}.rule {shard.rule!r} is not one this gendiff knows ({RULE}); update gendiff")
    if len(set(shard.indices)) != len(shard.indices) or not all(1 <= i <= shard.count for i in shard.indices):
        raise InputError(f"{where}.indices {list(shard.indices)}: not distinct shards of 1 to {shard.count}{_EDITED}")
    if len(snapshot.prompts) > shard.total:
        raise InputError(
            f"{where}.prompts_total {shard.total}: the file holds {len(snapshot.prompts)} prompts{_EDITED}"
        )
    for number, prompt in enumerate(snapshot.prompts, 1):
        if prompt.id >= shard.total:
            raise InputError(f"{where}: prompt {number} has id {prompt.id}, past the list's {shard.total}{_EDITED}")
        if not shard.selects(prompt.text):
            found = shard_of(prompt.text, shard.count)
            raise InputError(
                f"{where}: prompt {number} ({shorten(prompt.text, 30)!r}) falls in shard {found}/{shard.count}, "
                f"not in {shard.label}{_EDITED}"
            )


def _expected_pairs(snapshot: Snapshot) -> list[tuple[str, str]]:
    """(reference, engine) of every comparison the snapshot should hold where both traces exist."""
    labels = snapshot.engine_labels
    if snapshot.sources:  # gendiff compare: each engine@B against the same engine@A
        return [(label[:-2] + "@A", label) for label in labels if label.endswith("@B")]
    return [(snapshot.reference, label) for label in labels if label != snapshot.reference]


def _verified(prompt: PromptResult, pairs: list[tuple[str, str]], threshold: float, where: str) -> list[Divergence]:
    verified: list[Divergence] = []
    seen: set[tuple[str, str]] = set()
    for stored in prompt.divergences:
        pair = (stored.reference, stored.engine)
        if pair in seen:
            raise InputError(f"{where}: two divergence records of {stored.engine} against {stored.reference}{_EDITED}")
        seen.add(pair)
        reference, other = prompt.traces.get(stored.reference), prompt.traces.get(stored.engine)
        if reference is None or other is None:
            missing = stored.reference if reference is None else stored.engine
            raise InputError(f"{where}: a divergence record names {missing}, which has no trace there{_EDITED}")
        computed = _compare(reference, other, threshold, where)
        problem = _disagreement(stored, computed)
        if problem:
            raise InputError(f"{where}, {stored.engine} against {stored.reference}: {problem}{_EDITED}")
        # the numbers are this gendiff's reading of the traces; the diagnoses can't be recomputed here
        verified.append(
            replace(computed, bisection=stored.bisection, reconvergence=stored.reconvergence, recheck=stored.recheck)
        )
    for reference_label, label in pairs:
        if (reference_label, label) not in seen and reference_label in prompt.traces and label in prompt.traces:
            verified.append(_compare(prompt.traces[reference_label], prompt.traces[label], threshold, where))
    return verified


_EDITED = "; the file was edited or is corrupt"


def _compare(reference: Any, other: Any, threshold: float, where: str) -> Divergence:
    try:
        return compare(reference, other, threshold)
    except ValueError:  # different prompt token ids
        raise InputError(
            f"{where}: {reference.engine} and {other.engine} saw different prompt tokens{_EDITED}"
        ) from None


def _said(d: Divergence) -> str:
    if d.reason == IDENTICAL:
        return f"identical ({d.agreeing_steps} tokens)"
    if d.reason == ERROR:
        return "an engine failed"
    token = ""
    if d.reference_step is not None and d.other_step is not None:
        token = f", token {d.reference_step.token_id} vs {d.other_step.token_id}"
    return f"diverged at step {d.step} ({d.reason}{token})"


def _disagreement(stored: Divergence, computed: Divergence) -> str | None:
    """What the stored record claims that the traces contradict, or None."""
    same = (
        stored.reason == computed.reason
        and stored.step == computed.step
        and stored.agreeing_steps == computed.agreeing_steps
        and stored.prompt_index == computed.prompt_index
        and _token(stored.reference_step) == _token(computed.reference_step)
        and _token(stored.other_step) == _token(computed.other_step)
    )
    if same:
        return None
    if stored.prompt_index != computed.prompt_index and stored.reason == computed.reason:
        return f"the record is of prompt index {stored.prompt_index}, its traces of {computed.prompt_index}"
    return f"the record says {_said(stored)}, its traces say {_said(computed)}"


def _token(step: TokenStep | None) -> int | None:
    return None if step is None else step.token_id


def _bad_column_id(columns: Columns, limit: int) -> int | None:
    """The first id outside ``0 … limit-1`` in a snapshot's id columns (padding slots hold the
    step's own id, so the whole arrays can be checked), or None; computed once per columns."""
    checked = columns.__dict__.setdefault("_bad_ids", {})
    if limit not in checked:
        bad = None
        for name in ("token_id", "top_token_id", "raw_top_token_id"):
            values = columns.arrays.get(name)
            if values is not None and len(values):
                low, high = min(values), max(values)
                if low < 0 or high >= limit:
                    bad = low if low < 0 else high
                    break
        checked[limit] = bad
    return checked[limit]


def _outside(limit: int, recorded: bool) -> str:
    if recorded:
        return f"is outside the model's vocabulary (ids 0 to {limit - 1}){_EDITED}"
    return f"is not a token id (negative or beyond any vocabulary){_EDITED}"


def _check_ids(prompt: PromptResult, limit: int, recorded: bool, where: str) -> None:
    """Every token id of the prompt and its traces is a row of the vocabulary."""
    bad = next((i for i in prompt.token_ids if not 0 <= i < limit), None)
    if bad is not None:
        raise InputError(f"{where}: prompt token id {bad} {_outside(limit, recorded)}")
    for label, trace in prompt.traces.items():
        if isinstance(trace.steps, StepColumns):  # a .gdz: its columns are checked once, as arrays
            bad = _bad_column_id(trace.steps.columns, limit)
            if bad is not None:
                raise InputError(f"{where}, {label}: token id {bad} {_outside(limit, recorded)}")
            continue
        for index, step in enumerate(trace.steps):
            ids = [step.token_id, *(t.token_id for t in step.top)]
            if step.raw_top:
                ids += [t.token_id for t in step.raw_top]
            bad = next((i for i in ids if not 0 <= i < limit), None)
            if bad is not None:
                raise InputError(f"{where}, {label}, step {index}: token id {bad} {_outside(limit, recorded)}")

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
from typing import Any, NamedTuple

from gendiff.defaults import FRAGILE_THRESHOLD
from gendiff.display import shorten
from gendiff.errors import InputError
from gendiff.records.columns import Columns, StepColumns
from gendiff.records.divergence import ERROR, IDENTICAL, LENGTH, TOKEN, Divergence, compare, first_divergence
from gendiff.records.shard import RULE, shard_of
from gendiff.records.snapshot import PromptResult, Snapshot
from gendiff.records.trace import TokenStep

# without a recorded vocabulary: no model has 2**31 tokens, and a tokenizer can't decode such an id
NO_VOCAB_LIMIT = 2**31


def verify_snapshot(snapshot: Snapshot, source: str, recompute: bool = True) -> Snapshot:
    """``snapshot`` with every divergence recomputed from its traces (the stored bisection,
    re-convergence and recheck records kept; a pair of traces without a record gets one);
    raises InputError naming ``source``, the prompt and the engine when a stored record disagrees
    with the traces (another step, another reason, "identical" over differing tokens) or a token
    id lies outside the vocabulary (``model.vocab_size`` when recorded).

    ``recompute=False`` (``gendiff compare``, which computes its own divergences and drops these):
    each stored record is checked against the same facts of its traces (step, reason, tokens) and
    the same refusals made, but kept as stored, its numbers not recomputed; no record is added."""
    vocab = snapshot.model.get("vocab_size")
    limit = vocab if isinstance(vocab, int) and not isinstance(vocab, bool) and vocab > 0 else NO_VOCAB_LIMIT
    threshold = float(snapshot.decoding.get("fragile_threshold", FRAGILE_THRESHOLD))
    pairs = _expected_pairs(snapshot)
    _check_shard(snapshot, source)
    for number, prompt in enumerate(snapshot.prompts, 1):
        where = f"snapshot {source}: prompt {number} ({shorten(prompt.text, 30)!r})"
        _check_ids(prompt, limit, vocab is not None, where)
        if recompute:
            prompt.divergences = _verified(prompt, pairs, threshold, where)
        else:
            _checked(prompt, where)
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


def _checked(prompt: PromptResult, where: str) -> None:
    """Every stored record of the prompt checked against its traces' facts, as :func:`_verified` does."""
    seen: set[tuple[str, str]] = set()
    for stored in prompt.divergences:
        reference, other = _pair(prompt, stored, seen, where)
        problem = _disagreement(_facts(stored), _found(reference, other, where))
        if problem:
            raise InputError(f"{where}, {stored.engine} against {stored.reference}: {problem}{_EDITED}")


def _pair(prompt: PromptResult, stored: Divergence, seen: set[tuple[str, str]], where: str) -> tuple[Any, Any]:
    """The two traces a stored record compares; InputError for a second record of a pair or a missing trace."""
    pair = (stored.reference, stored.engine)
    if pair in seen:
        raise InputError(f"{where}: two divergence records of {stored.engine} against {stored.reference}{_EDITED}")
    seen.add(pair)
    reference, other = prompt.traces.get(stored.reference), prompt.traces.get(stored.engine)
    if reference is None or other is None:
        missing = stored.reference if reference is None else stored.engine
        raise InputError(f"{where}: a divergence record names {missing}, which has no trace there{_EDITED}")
    return reference, other


def _verified(prompt: PromptResult, pairs: list[tuple[str, str]], threshold: float, where: str) -> list[Divergence]:
    verified: list[Divergence] = []
    seen: set[tuple[str, str]] = set()
    for stored in prompt.divergences:
        reference, other = _pair(prompt, stored, seen, where)
        computed = _compare(reference, other, threshold, where)
        problem = _disagreement(_facts(stored), _facts(computed))
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


class _Facts(NamedTuple):
    """What a divergence record says that its traces can confirm or contradict."""

    reason: str
    step: int | None
    agreeing_steps: int
    prompt_index: int
    reference_token: int | None
    other_token: int | None


def _facts(d: Divergence) -> _Facts:
    return _Facts(d.reason, d.step, d.agreeing_steps, d.prompt_index, _token(d.reference_step), _token(d.other_step))


def _found(reference: Any, other: Any, where: str) -> _Facts:
    """The facts :func:`gendiff.records.divergence.compare` finds in two traces, without its numbers."""
    if reference.prompt_token_ids != other.prompt_token_ids:
        raise InputError(f"{where}: {reference.engine} and {other.engine} saw different prompt tokens{_EDITED}")
    step = first_divergence(reference, other)
    agreeing = len(reference.steps) if step is None else step
    if reference.finish_reason == "error" or other.finish_reason == "error":
        return _Facts(ERROR, None, agreeing, reference.prompt_index, None, None)
    if step is None:
        return _Facts(IDENTICAL, None, agreeing, reference.prompt_index, None, None)
    ref_token, other_token = _token_at(reference.steps, step), _token_at(other.steps, step)
    reason = LENGTH if ref_token is None or other_token is None else TOKEN
    return _Facts(reason, step, agreeing, reference.prompt_index, ref_token, other_token)


def _token_at(steps: Any, index: int) -> int | None:
    if index >= len(steps):
        return None
    if isinstance(steps, StepColumns):
        return steps.view("token_id")[index]
    return steps[index].token_id


def _said(d: _Facts) -> str:
    if d.reason == IDENTICAL:
        return f"identical ({d.agreeing_steps} tokens)"
    if d.reason == ERROR:
        return "an engine failed"
    token = ""
    if d.reference_token is not None and d.other_token is not None:
        token = f", token {d.reference_token} vs {d.other_token}"
    return f"diverged at step {d.step} ({d.reason}{token})"


def _disagreement(stored: _Facts, computed: _Facts) -> str | None:
    """What the stored record claims that the traces contradict, or None."""
    if stored == computed:
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
    if limit not in checked and columns.id_range is not None:  # the reader saw every id already
        low, high = columns.id_range
        checked[limit] = low if low < 0 else high if high >= limit else None
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

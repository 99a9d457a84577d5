"""``gendiff score TEXT --kl-divergence-base[-out] FILE``: llama-perplexity's KL layout, on gendiff's engines.

``llama-perplexity -f TEXT -c N`` tokenizes the whole text (BOS first where the model adds one;
one trailing newline of the file dropped), cuts it into ⌊tokens/N⌋ chunks of N tokens (at least
2: it refuses fewer than 2N tokens), feeds each chunk alone with its first token replaced by BOS,
and scores only positions N/2 … N−2 of each (the logits there predict tokens N/2+1 … N−1).
gendiff does the same: each chunk is a row whose prompt is its first N/2+1 tokens (BOS first)
and whose teacher-forced continuation is the rest, so step s is chunk position N/2+s.

``--kl-divergence-base-out``: the reference's logprobs at those positions, quantised as
llama.cpp quantises them, are written as a base file (gendiff.io.kld_base); the other engines
are scored against the reference in float32 as ``gendiff score`` does. ``--kl-divergence-base``:
every engine is scored against the base with llama.cpp's definitions (gendiff.run.kld_base),
after the base's token ids are checked to be gendiff's own tokenization of the text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from gendiff.engines.hf import check_context
from gendiff.errors import GendiffError, InputError
from gendiff.io.kld_base import check_vocabulary, first_scored, read, scored_per_chunk, write
from gendiff.records.llama_stats import full_set
from gendiff.records.statistics import aggregate, from_positions
from gendiff.run.config import RunConfig
from gendiff.run.kld_base import BaseComparer, quantise_rows
from gendiff.run.score import ScoredText, ScoreResult
from gendiff.run.session import Session
from gendiff.run.statistics import full_statistics, teacher_forced


def read_text(path: str | Path) -> str:
    """The text as ``llama-perplexity -f`` reads it: the bytes as UTF-8 (no newline translation),
    one trailing ``\\n`` dropped."""
    file = Path(path).expanduser()
    try:
        text = file.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise InputError(f"text file {file}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"text file {file}: cannot read it as UTF-8 text ({exc})") from None
    return text[:-1] if text.endswith("\n") else text


def bos_id(tokenizer: object) -> int | None:
    """The BOS id when the tokenizer puts one first (llama.cpp's add_bos), else None."""
    hf = tokenizer.hf  # type: ignore[attr-defined]
    bos = hf.bos_token_id
    if bos is None:
        return None
    plain = list(hf("a", add_special_tokens=False)["input_ids"])
    special = tokenizer.encode("a")  # type: ignore[attr-defined]
    return bos if special[:1] == [bos] and plain[:1] != [bos] else None


@dataclass(frozen=True)
class Chunks:
    """The text's tokens cut as llama-perplexity cuts them; ``tokens``: as the file stores them."""

    n_ctx: int
    tokens: list[list[int]]
    bos: int | None

    def prompts(self) -> list[list[int]]:
        first = first_scored(self.n_ctx)
        return [([self.bos] if self.bos is not None else chunk[:1]) + chunk[1 : first + 1] for chunk in self.tokens]

    def targets(self) -> dict[int, list[int]]:
        first = first_scored(self.n_ctx)
        return {row: chunk[first + 1 :] for row, chunk in enumerate(self.tokens)}


def chunk_ids(ids: list[int], n_ctx: int, bos: int | None, text_path: str | Path) -> Chunks:
    if n_ctx < 4:
        raise InputError(f"--ctx-size {n_ctx}: too small; llama-perplexity's chunks need at least 4 tokens")
    if len(ids) < 2 * n_ctx:
        raise InputError(
            f"text file {text_path}: {len(ids)} tokens, fewer than the {2 * n_ctx} llama-perplexity needs "
            f"for --ctx-size {n_ctx}; give more text or a smaller --ctx-size"
        )
    count = len(ids) // n_ctx
    return Chunks(n_ctx, [ids[c * n_ctx : (c + 1) * n_ctx] for c in range(count)], bos)


def check_tokens(base_path: str | Path, base_ids: list[int], ids: list[int], text_path: str | Path) -> None:
    """The base's ids must be gendiff's tokenization of the text: one line naming the first difference."""
    for position, (theirs, mine) in enumerate(zip(base_ids, ids)):
        if theirs != mine:
            raise InputError(
                f"--kl-divergence-base {base_path}: token {position} is id {theirs} where gendiff's tokenization "
                f"of {text_path} gives {mine}; the base was made from other text or another tokenizer"
            )
    if len(ids) < len(base_ids):
        raise InputError(
            f"--kl-divergence-base {base_path}: it holds {len(base_ids)} tokens, {text_path} tokenizes to only "
            f"{len(ids)}; the base was made from a longer text"
        )


def score_against_base(
    config: RunConfig, text_path: str | Path, base_path: str | Path, on_engine: Callable[[str], None] | None = None
) -> ScoreResult:
    """Every engine of ``config``, teacher-forced on the base's chunks, against the base."""
    text = _text(text_path)
    base = read(base_path)  # a bad file is refused before any model work
    session, ids = _tokenized(config, text)
    tokenizer = session.tokenizer
    check_vocabulary(base, tokenizer.model_vocab_size or tokenizer.vocab_size)
    check_tokens(base.path, list(base.token_ids), ids, text_path)
    chunks = Chunks(base.n_ctx, [base.chunk_tokens(c) for c in range(base.n_chunk)], bos_id(tokenizer))
    result, settings = _result(session, config, chunks)
    result.base = _describe(base.path, chunks, base.n_vocab, "read")
    prompts, targets = chunks.prompts(), chunks.targets()
    for label in result.engines:
        engine = session.engines[label]
        if not engine.can_replay:
            result.notes.append(f"{label}: can't be teacher-forced, so it is not scored against the base")
            continue
        if on_engine is not None:
            on_engine(label)
        comparer = BaseComparer(base, targets)
        engine.replay(prompts, settings, targets, observer=comparer)
        result.statistics[label] = replace(aggregate(comparer.positions), full=full_set(*comparer.per_position()))
        for row, positions in comparer.positions.items():
            result.per_text[row][label] = from_positions(positions)
        scored = sum(len(p.kld) for p in comparer.positions.values())
        if comparer.floored and not any("16-nat window" in note for note in result.notes):  # the base's, once
            result.notes.append(
                f"the base: {comparer.floored} of {scored} scored tokens lie below the base's 16-nat window, where "
                "the base stores its floor (top − 16) instead of their logprob: there PPL(base) and δ use the floor "
                "(as llama.cpp does), so they are not the engines' disagreement"
            )
        if comparer.lowest_kld < 0:
            result.notes.append(
                f"{label}: some KLD values are below 0 (down to {comparer.lowest_kld:.2e}): the base's logprobs are "
                "quantised (about 2.4e-4 nats a step) and, as in llama.cpp, the KL is not clamped at 0"
            )
    return result


def write_base(
    config: RunConfig,
    text_path: str | Path,
    base_path: str | Path,
    n_ctx: int,
    on_engine: Callable[[str], None] | None = None,
) -> ScoreResult:
    """Teacher-force every engine on the text's chunks; write the reference's as a base file."""
    session, ids = _tokenized(config, _text(text_path))
    chunks = chunk_ids(ids, n_ctx, bos_id(session.tokenizer), text_path)
    result, settings = _result(session, config, chunks)
    engines = [(label, session.engines[label]) for label in result.engines]
    comparers, notes = teacher_forced(engines, chunks.prompts(), chunks.targets(), settings, on_engine)
    result.notes += notes
    reference = comparers[config.reference]
    scored = scored_per_chunk(n_ctx)
    n_vocab = int(next(iter(reference.logits.values())).shape[-1])
    rows = (
        quantise_rows(_stack([reference.logits[(chunk, step)] for step in range(scored)]))
        for chunk in range(len(chunks.tokens))
    )
    written = write(base_path, n_ctx, n_vocab, chunks.tokens, rows)
    result.base = _describe(written, chunks, n_vocab, "written")
    for label, comparer in comparers.items():
        result.statistics[label] = replace(aggregate(comparer.positions), full=full_statistics(comparer, reference))
        for row, stats in comparer.stats().items():
            result.per_text[row][label] = stats
    return result


def _stack(rows: list) -> object:
    import torch

    return torch.stack(rows)


def _text(text_path: str | Path) -> str:
    text = read_text(text_path)
    if not text.strip():
        raise InputError(f"text file {text_path}: empty; give the text the base is (or was) made from")
    return text


def _tokenized(config: RunConfig, text: str) -> tuple[Session, list[int]]:
    session = Session(config, [])  # the engines and the tokenizer, checked; the text is not a prompt
    return session, session.tokenizer.encode(text)


def _result(session: Session, config: RunConfig, chunks: Chunks) -> tuple[ScoreResult, object]:
    settings = replace(config.settings, max_new_tokens=scored_per_chunk(chunks.n_ctx), stop_at_eos=False)
    prompts, targets = chunks.prompts(), chunks.targets()
    try:
        check_context(prompts, settings, session.tokenizer.max_length)
    except GendiffError:
        raise InputError(
            f"--ctx-size {chunks.n_ctx}: longer than the model's context ({session.tokenizer.max_length} tokens)"
        ) from None
    decode = session.tokenizer.decode
    texts = [ScoredText(decode(prompt), decode(targets[row])) for row, prompt in enumerate(prompts)]
    ids = [(prompt, targets[row]) for row, prompt in enumerate(prompts)]
    result = ScoreResult(config.reference, session.run_order(), texts, ids, notes=list(session.notes))
    result.per_text = [{} for _ in texts]
    return result, settings


def _describe(path: Path, chunks: Chunks, n_vocab: int, how: str) -> dict:
    return {
        "path": str(path),
        "mode": how,
        "n_ctx": chunks.n_ctx,
        "n_vocab": n_vocab,
        "n_chunk": len(chunks.tokens),
        "scored_positions": f"{first_scored(chunks.n_ctx)}…{chunks.n_ctx - 2} of each chunk",
    }

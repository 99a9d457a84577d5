"""``gendiff score FILE``: the distribution statistics on fixed text, no generation.

Each line of FILE is ``{"prompt": "...", "continuation": "..."}``. Every engine is fed the
prompt and then, token by token, the continuation (teacher forcing, each engine's own decode
loop), and its next-token distribution at each continuation token is compared with the
reference's (see :mod:`gendiff.statistics`); the mean per-token loss of each engine on the
continuation is reported too. Seed 001's question, eager vs sdpa attention in fine-tuning:
``gendiff score texts.jsonl --engines hf-single:attn=eager,hf-single:attn=sdpa``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gendiff.engines.hf import check_context
from gendiff.errors import GendiffError
from gendiff.records.statistics import DistributionStats
from gendiff.run.config import RunConfig
from gendiff.run.session import Session
from gendiff.run.statistics import teacher_forced


@dataclass(frozen=True)
class ScoredText:
    prompt: str
    continuation: str


@dataclass
class ScoreResult:
    """Per engine over all texts (``statistics``) and per text (``per_text[i][engine]``)."""

    reference: str
    engines: list[str]
    texts: list[ScoredText]
    token_ids: list[tuple[list[int], list[int]]]
    statistics: dict[str, DistributionStats] = field(default_factory=dict)
    per_text: list[dict[str, DistributionStats]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    base: dict[str, Any] | None = None  # --kl-divergence-base[-out]: the file, n_ctx, n_vocab, n_chunk

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "engines": self.engines,
            "statistics": {label: stats.to_dict() for label, stats in self.statistics.items()},
            "texts": [
                {
                    "prompt": text.prompt,
                    "continuation": text.continuation,
                    "prompt_token_ids": ids[0],
                    "continuation_token_ids": ids[1],
                    "statistics": {label: stats.to_dict() for label, stats in per.items()},
                }
                for text, ids, per in zip(self.texts, self.token_ids, self.per_text)
            ],
            "notes": self.notes,
            **({"kl_divergence_base": self.base} if self.base is not None else {}),
        }


def load_texts(path: str | Path) -> list[ScoredText]:
    """Read a JSONL file of {"prompt", "continuation"}; GendiffError names the file and line."""
    file = Path(path).expanduser()
    try:
        lines = file.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise GendiffError(f"score file {file}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GendiffError(f"score file {file}: cannot read it ({exc})") from None
    texts = []
    shape = 'each line must be {"prompt": "...", "continuation": "..."}'
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GendiffError(f"{file}:{number}: not valid JSON ({exc.msg}); {shape}") from None
        if not isinstance(record, dict) or not all(isinstance(record.get(k), str) for k in ("prompt", "continuation")):
            raise GendiffError(f"{file}:{number}: {shape}")
        if not record["prompt"].strip() or not record["continuation"]:
            raise GendiffError(f"{file}:{number}: empty prompt or continuation; {shape}")
        texts.append(ScoredText(record["prompt"], record["continuation"]))
    if not texts:
        raise GendiffError(f"score file {file}: no texts; {shape}")
    return texts


def split_ids(tokenizer: Any, text: ScoredText) -> tuple[list[int], list[int]]:
    """The prompt's ids as a run tokenizes it, and the continuation's: the tail of the joint
    tokenization when the prompt's ids are its head (as in training on prompt + continuation),
    else the continuation alone without special tokens."""
    prompt = tokenizer.encode(text.prompt)
    joint = tokenizer.encode(text.prompt + text.continuation)
    if joint[: len(prompt)] == prompt and len(joint) > len(prompt):
        return prompt, joint[len(prompt) :]
    return prompt, list(tokenizer.hf(text.continuation, add_special_tokens=False)["input_ids"])


def score(config: RunConfig, texts: list[ScoredText], on_engine: Any = None) -> ScoreResult:
    """Teacher-force every engine of ``config`` on the texts; the reference's distributions are P."""

    session = Session(config, [text.prompt for text in texts])
    ids = [split_ids(session.tokenizer, text) for text in texts]
    for number, (_, continuation) in enumerate(ids, 1):
        if not continuation:
            raise GendiffError(f"text {number}: the continuation gives no tokens; write some text")
    longest = max(len(continuation) for _, continuation in ids)
    settings = replace(config.settings, max_new_tokens=longest, stop_at_eos=False)
    check_context([prompt for prompt, _ in ids], settings, session.tokenizer.max_length)
    labels = session.run_order()
    result = ScoreResult(config.reference, labels, texts, ids, notes=list(session.notes))
    engines = [(label, session.engines[label]) for label in labels]
    targets = {row: continuation for row, (_, continuation) in enumerate(ids)}
    comparers, notes = teacher_forced(engines, [prompt for prompt, _ in ids], targets, settings, on_engine)
    result.notes += notes
    result.per_text = [{} for _ in texts]
    for label, comparer in comparers.items():
        result.statistics[label] = comparer.totals(comparers.get(config.reference))
        for row, stats in comparer.stats().items():
            result.per_text[row][label] = stats
    return result

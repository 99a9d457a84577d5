"""What to run, checked before any model work: :class:`RunConfig` (the model, the engines, the
reference, the decoding settings) and the checks of the tokenized prompts (every id a row of the
model's embedding; the one length rule, said of the prompt itself)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gendiff.defaults import FRAGILE_THRESHOLD, STOP_AT_EOS
from gendiff.display import shorten
from gendiff.engines import engine_class
from gendiff.engines.loading import PromptTokenizer
from gendiff.engines.settings import SPEC_FIELDS, EngineSpec, GenerationSettings
from gendiff.errors import InputError
from gendiff.records.decoding import Decoding
from gendiff.records.snapshot import Snapshot


@dataclass(frozen=True)
class RunConfig:
    """What to run: the model, the engines (the reference among them) and the decoding settings."""

    model_path: str | None
    engines: tuple[EngineSpec, ...]
    reference: str
    settings: GenerationSettings = GenerationSettings()
    fragile_threshold: float = FRAGILE_THRESHOLD

    def validate(self) -> None:
        labels = [spec.label for spec in self.engines]
        if not labels:
            raise InputError("no engines selected; pass --engines hf-single,hf-left (for example)")
        if len(set(labels)) != len(labels):
            raise InputError(f"engines {', '.join(labels)}: each engine may appear once")
        if not (0 <= self.fragile_threshold < float("inf")):  # also refuses NaN
            raise InputError(
                f"--fragile-threshold {self.fragile_threshold}: must be a finite number, 0 or more (e.g. 0.05)"
            )
        if self.reference not in labels:
            raise InputError(
                f"reference {self.reference!r} is not among the engines ({', '.join(labels)}); add it or pick one of them"
            )
        for spec in self.engines:  # before any model work: a setting an engine can't honour is bad input
            engine_class(spec.name).check_options(spec)
            problem = engine_class(spec.name).settings_problem(self.settings)
            if problem:
                raise InputError(f"engine {spec.label}: {problem}")

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot, model_path: str | None = None) -> RunConfig:
        """What ``snapshot`` recorded: its model (or ``model_path``), its engines with the recorded
        settings, its reference and decoding settings."""
        specs = []
        for entry in snapshot.engines:
            settings = entry.get("settings") or {}
            fields = {k: settings[k] for k in SPEC_FIELDS if k in settings}
            specs.append(
                EngineSpec(
                    entry["name"],
                    options=dict(settings.get("options") or {}),
                    label=entry["label"],
                    decoding=Decoding.from_dict(settings.get("decoding")),
                    **fields,
                )
            )
        return cls(
            model_path or snapshot.model.get("path"),
            tuple(specs),
            snapshot.reference,
            GenerationSettings(
                max_new_tokens=int(snapshot.decoding["max_new_tokens"]),
                top_k=int(snapshot.decoding["top_k"]),
                stop_at_eos=bool(snapshot.decoding.get("stop_at_eos", STOP_AT_EOS)),
            ),
            float(snapshot.decoding.get("fragile_threshold", FRAGILE_THRESHOLD)),
        )


def check_token_ids(prompts: list[str], token_ids: list[list[int]], tokenizer: PromptTokenizer) -> None:
    """Every prompt has tokens, and every id is a row of the model's embedding (checked once,
    here, for every engine: vLLM would quietly generate from an id the HF engines crash on)."""

    vocab = tokenizer.model_vocab_size
    for index, (text, ids) in enumerate(zip(prompts, token_ids)):
        if not ids:
            raise InputError(
                f"prompt {index + 1} ({shorten(text, 40)!r}) gives no tokens with the tokenizer of "
                f"{Path(tokenizer.path).name}; write text it can encode, or delete the prompt"
            )
        if vocab is not None and max(ids) >= vocab:
            raise InputError(
                f"prompt {index + 1}: token id {max(ids)} is beyond the model's {vocab} embedding rows "
                f"(the tokenizer has {tokenizer.vocab_size} ids): the tokenizer's and the model's vocabularies "
                "differ; use the tokenizer saved with this model"
            )


def prompt_problem(token_ids: list[int], settings: GenerationSettings, max_length: int | None) -> str | None:
    """Why this prompt can't run (said of the prompt itself, no flag names: the app shows it beside it)."""
    if not token_ids:
        return "the prompt tokenizes to no tokens; write some text"
    problem = settings.context_problem(len(token_ids), max_length)
    return f"too long: {problem}; shorten it or lower max new tokens" if problem else None

"""Decoding penalties: the settings, how each engine applies them (the semantics table), and
the one-line note that names a difference between two engines' semantics. No torch here.

Greedy stays greedy: a penalty only changes the scores the argmax is taken from.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from gendiff.errors import GendiffError

PENALTIES = ("repetition_penalty", "frequency_penalty", "presence_penalty", "no_repeat_ngram_size")
# the value of each setting that leaves the scores unchanged
NEUTRAL: dict[str, float] = {
    "repetition_penalty": 1.0,
    "frequency_penalty": 0.0,
    "presence_penalty": 0.0,
    "no_repeat_ngram_size": 0,
}
DECODING_KEYS = (*PENALTIES, "model_defaults")
_ON_OFF = {"on": True, "off": False, "true": True, "false": False, "1": True, "0": False}


@dataclass(frozen=True)
class Decoding:
    """What the user asked for. None = not set: neutral, or with ``model_defaults`` the model's
    generation_config.json value (as the engine reads it by default)."""

    repetition_penalty: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    no_repeat_ngram_size: int | None = None
    model_defaults: bool = False

    def with_values(self, values: dict[str, Any], where: str) -> Decoding:
        """A copy with ``values`` (strings from the command line or numbers) parsed and checked."""
        changes: dict[str, Any] = {}
        for key, value in values.items():
            if value is None:
                continue
            if key == "model_defaults":
                changes[key] = _parse_on_off(value, where)
            elif key in PENALTIES:
                changes[key] = _parse_number(key, value, where)
            else:
                raise GendiffError(f"{where}: {key!r} is not a decoding setting; known: {', '.join(DECODING_KEYS)}")
        return replace(self, **changes)

    def given(self) -> dict[str, float]:
        """The settings the user set, as numbers."""
        return {key: getattr(self, key) for key in PENALTIES if getattr(self, key) is not None}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Decoding:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})


def _parse_number(key: str, value: Any, where: str) -> float | int:
    try:
        number = int(value) if key == "no_repeat_ngram_size" else float(value)
    except (TypeError, ValueError):
        kind = "a whole number" if key == "no_repeat_ngram_size" else "a number"
        raise GendiffError(f"{where}: {key}={value} must be {kind}") from None
    if not math.isfinite(number):  # NaN/inf would poison every logit (and NaN is not strict JSON)
        raise GendiffError(f"{where}: {key}={value} must be a finite number")
    if key == "repetition_penalty" and not number > 0:
        raise GendiffError(f"{where}: repetition_penalty={value} must be above 0 (1 = off)")
    if key == "no_repeat_ngram_size" and number < 0:
        raise GendiffError(f"{where}: no_repeat_ngram_size={value} must be 0 (off) or more")
    return number


def _parse_on_off(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    parsed = _ON_OFF.get(str(value).lower())
    if parsed is None:
        raise GendiffError(f"{where}: model_defaults={value} must be on or off")
    return parsed


def resolve(
    decoding: Decoding, model_config: dict[str, Any] | None, supported: tuple[str, ...], reads: tuple[str, ...]
) -> dict[str, Any]:
    """The values an engine applies: the user's, else (with model_defaults) the model's
    generation_config.json value for the settings this engine reads from it by default
    (``reads``), else neutral. Returns {setting: value} for every setting in ``supported``,
    plus ``sources`` (setting -> given / generation_config.json / neutral) and ``model_defaults``."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key in supported:
        given = getattr(decoding, key)
        from_model = (model_config or {}).get(key) if decoding.model_defaults and key in reads else None
        if given is not None:
            values[key], sources[key] = given, "given"
        elif from_model is not None:
            values[key], sources[key] = from_model, "generation_config.json"
        else:
            values[key], sources[key] = NEUTRAL[key], "neutral"
    return {**values, "sources": sources, "model_defaults": decoding.model_defaults}


def active(resolved: dict[str, Any] | None) -> dict[str, float]:
    """The settings of a resolved record that change the scores."""
    resolved = resolved or {}
    return {key: resolved[key] for key in PENALTIES if key in resolved and resolved[key] != NEUTRAL[key]}


@dataclass(frozen=True)
class Semantics:
    """How one engine applies one setting."""

    tokens: str  # which tokens count: "prompt+output" or "output only"
    how: str  # "multiplicatively", "additively, per occurrence", "additively, once", "by banning"
    pads_counted: bool  # pad tokens of a padded batch count as seen tokens
    implementation: str

    def phrase(self, setting: str, value: float) -> str:
        pads = ", plus the pad tokens of the rows it left-pads" if self.pads_counted else ""
        if setting == "no_repeat_ngram_size":
            return f"bans repeated {value}-grams over {self.tokens}{pads}"
        return f"applies {setting} {_num(value)} {self.how} over {self.tokens}{pads}"


_HF_REP = "transformers RepetitionPenaltyLogitsProcessor"
_HF_NGRAM = "transformers NoRepeatNGramLogitsProcessor"
_OWN = "gendiff OutputPenaltyProcessor (OpenAI's definition; transformers has none)"
_VLLM = "vLLM SamplingParams"


def _hf(pads: bool) -> dict[str, Semantics]:
    return {
        "repetition_penalty": Semantics("prompt+output", "multiplicatively", pads, _HF_REP),
        "frequency_penalty": Semantics("output only", "additively", False, _OWN),
        "presence_penalty": Semantics("output only", "additively", False, _OWN),
        "no_repeat_ngram_size": Semantics("prompt+output", "by banning", pads, _HF_NGRAM),
    }


# engine × setting. hf-left runs generate() on a left-padded batch: transformers' processors
# gather over input_ids, pads included, so the pad token is penalised in rows that were padded
# (checked in tests/test_penalties.py). hf-right and packed apply the same processors to each
# row's own tokens (prompt + generated, no pads), as generate() on that row alone would.
SEMANTICS: dict[str, dict[str, Semantics]] = {
    "hf-single": _hf(False),
    "hf-left": _hf(True),
    "hf-right": _hf(False),
    "packed": _hf(False),
    "vllm": {
        "repetition_penalty": Semantics("prompt+output", "multiplicatively", False, _VLLM),
        "frequency_penalty": Semantics("output only", "additively", False, _VLLM),
        "presence_penalty": Semantics("output only", "additively", False, _VLLM),
    },
}


# what each engine takes from generation_config.json when left to its defaults: generate()
# merges repetition_penalty and no_repeat_ngram_size (it has no frequency/presence penalty);
# vLLM (generation_config="auto") reads repetition/frequency/presence penalties
READS_FROM_MODEL: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("hf-single", "hf-left", "hf-right", "packed"), ("repetition_penalty", "no_repeat_ngram_size")),
    "vllm": ("repetition_penalty", "frequency_penalty", "presence_penalty"),
}


def supported(engine_name: str) -> tuple[str, ...]:
    """The penalties an engine can apply (unknown engines: none)."""
    return tuple(SEMANTICS.get(engine_name, {}))


def check_supported(engine_name: str, label: str, decoding: Decoding) -> None:
    """Refuse a setting the engine has no implementation of (before any model work)."""
    table = SEMANTICS.get(engine_name, {})
    for key, value in decoding.given().items():
        if value != NEUTRAL[key] and key not in table:
            have = ", ".join(table) or "none"
            raise GendiffError(f"engine {label}: it has no {key}; the penalties it applies: {have}")


def describe(engine_name: str, label: str, resolved: dict[str, Any] | None) -> str:
    """'hf-single applies repetition_penalty 1.2 multiplicatively over prompt+output' (or 'applies no penalty')."""
    table = SEMANTICS.get(engine_name, {})
    parts = [table[key].phrase(key, value) for key, value in active(resolved).items() if key in table]
    return f"{label} {' and '.join(parts) if parts else 'applies no penalty'}"


def _signature(engine_name: str, resolved: dict[str, Any] | None) -> tuple[Any, ...]:
    # what the penalty does, not whose code does it: hf-single and vllm agree on repetition_penalty
    table = SEMANTICS.get(engine_name, {})
    described = {
        key: table[key].phrase(key, value) if key in table else repr(value) for key, value in active(resolved).items()
    }
    return tuple(sorted(described.items()))


def semantics_note(reference: tuple[str, str, Any], other: tuple[str, str, Any]) -> str | None:
    """One line when two engines apply penalties differently, else None. Each side is
    (engine name, label, resolved decoding record)."""
    (ref_name, ref_label, ref_resolved), (name, label, resolved) = reference, other
    if _signature(ref_name, ref_resolved) == _signature(name, resolved):
        return None
    return f"{describe(ref_name, ref_label, ref_resolved)}; {describe(name, label, resolved)}"


def note_for_traces(reference: Any, other: Any) -> str | None:
    """:func:`semantics_note` from two Traces' recorded settings (None if either failed: a failed
    engine's record says nothing about what it would have applied)."""
    if "error" in (reference.finish_reason, other.finish_reason):
        return None

    def side(trace: Any) -> tuple[str, str, Any]:
        settings = trace.settings or {}
        return str(settings.get("name", trace.engine)), trace.engine, settings.get("resolved_decoding")

    return semantics_note(side(reference), side(other))


def table_markdown() -> str:
    """The semantics table as Markdown (docs/penalties.md's copy is checked against it)."""
    lines = [
        "| engine | setting | tokens counted | applied | pads of a padded batch counted | implementation |",
        "|---|---|---|---|---|---|",
    ]
    for engine, table in SEMANTICS.items():
        for setting, s in table.items():
            lines.append(
                f"| {engine} | {setting} | {s.tokens} | {s.how} | {'yes' if s.pads_counted else 'no'} | {s.implementation} |"
            )
    return "\n".join(lines)


def _num(value: float) -> str:
    return f"{value:g}"

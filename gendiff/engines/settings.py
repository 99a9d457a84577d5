"""How an engine runs: the spec the user writes (``NAME:key=value,…``), the run's decoding
settings, and the option types engines declare. Plain data: the bottom of ``gendiff.engines``."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from gendiff import defaults
from gendiff.display import without_userinfo
from gendiff.errors import GendiffError, InputError
from gendiff.records.decoding import DECODING_KEYS, Decoding, check_supported
from gendiff.records.trace import TokenStep

DTYPES, ATTN_IMPLEMENTATIONS = defaults.DTYPES, defaults.ATTN_IMPLEMENTATIONS

OnStep = Callable[[int, int, TokenStep], None]
"""on_step(prompt_index, step_index, step): called as each token is chosen."""


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding settings, identical for every engine in a run (greedy only)."""

    max_new_tokens: int = defaults.MAX_NEW_TOKENS
    top_k: int = defaults.TOP_K
    stop_at_eos: bool = defaults.STOP_AT_EOS

    def validate(self, vocab_size: int | None = None) -> None:
        if self.max_new_tokens < 1:
            raise GendiffError(f"--max-new-tokens {self.max_new_tokens}: must be at least 1")
        if self.top_k < 1:
            raise GendiffError(f"--top-k {self.top_k}: must be at least 1 (2 or more to see margins)")
        if vocab_size is not None and self.top_k > vocab_size:
            raise GendiffError(f"--top-k {self.top_k}: above the vocabulary size {vocab_size}; pick a smaller k")

    def context_problem(self, prompt_tokens: int, max_length: int | None) -> str | None:
        """The one length rule: a prompt and its new tokens must fit the model's context."""
        if max_length is not None and prompt_tokens + self.max_new_tokens > max_length:
            return f"{prompt_tokens} tokens + {self.max_new_tokens} new exceed the model's context of {max_length}"
        return None


@dataclass(frozen=True)
class FreeOption:
    """An engine option whose value is free-form (a URL, a number): ``check(value)`` returns None
    when it is fine, else what is wrong; ``default`` None means the engine has no default."""

    default: str | None
    check: Callable[[str], str | None] = lambda value: None


def whole_number(minimum: int) -> Callable[[str], str | None]:
    """A FreeOption check: a whole number >= ``minimum``."""
    return lambda value: None if value.isdigit() and int(value) >= minimum else f"must be a whole number >= {minimum}"


@dataclass(frozen=True)
class EngineSpec:
    """Which engine and how it runs. On the command line: ``NAME[:key=value,...]``.

    ``label`` names the engine's column and its traces; it is the spec as the user wrote it,
    so ``hf-single`` and ``hf-single:dtype=bfloat16`` can run side by side.
    """

    name: str
    dtype: str = defaults.DTYPE
    attn: str = defaults.ATTN
    device: str = defaults.DEVICE
    batch_size: int = defaults.BATCH_SIZE
    options: dict[str, str] = field(default_factory=dict, hash=False)
    label: str = ""
    decoding: Decoding = Decoding()  # penalties as given (run-wide, then the spec's own)

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.name)

    def settings(self) -> dict[str, Any]:
        """Everything needed to reproduce this engine's run, for traces and snapshots."""
        data = asdict(self)
        data.pop("label")
        return data

    def with_defaults(self, **defaults: Any) -> EngineSpec:
        return replace(self, **defaults)


SPEC_FIELDS = {"dtype", "attn", "device", "batch_size"}


def split_engine_list(text: str) -> list[str]:
    """Split ``a,b:k=v,k2=v2,c`` into engine specs: a ``key=value`` piece (no ``:`` before its
    ``=``, so values may hold one: ``model=llama3:8b``) belongs to the previous one."""
    specs: list[str] = []
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            continue
        if specs and "=" in piece and ":" not in piece.partition("=")[0]:
            specs[-1] += "," + piece
        else:
            specs.append(piece)
    return specs


def parse_engine_spec(text: str, defaults: dict[str, Any] | None = None, known: list[str] | None = None) -> EngineSpec:
    """Parse ``NAME[:key=value,...]``; ``defaults`` are the run-wide dtype/attn/device/batch_size."""
    text = text.strip().removesuffix(":")  # "hf-left:" is hf-left with no options, labelled as such
    check_no_credentials(text)
    name, _, rest = text.partition(":")
    if known is not None and name not in known:
        # a name holding @ may be the tail of a URL password that held a comma: not quoted
        shown = repr(name) if "@" not in name else "(a name holding @: a URL password split at a comma?)"
        raise GendiffError(f"unknown engine {shown}; known engines: {', '.join(known)}")
    values: dict[str, Any] = dict(defaults or {})
    options: dict[str, str] = {}
    decoding: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not value:
            raise GendiffError(f"engine {text!r}: {item!r} is not key=value (e.g. hf-left:batch_size=4)")
        if key in SPEC_FIELDS:
            values[key] = value
        elif key in DECODING_KEYS:
            decoding[key] = value
        else:
            options[key] = value
    base = values.get("decoding") or Decoding()
    spec = EngineSpec(
        name=name,
        options=options,
        label=text,
        decoding=base.with_values(decoding, f"engine {text!r}"),
        **_coerce(values, text),
    )
    check_spec_values(spec)
    return spec


# an @ after :// in the same option: a user name or password (userinfo) in a URL
_CREDENTIALS = re.compile(r"://[^,\s]*@")


def check_no_credentials(text: str) -> None:
    """Refuse a spec whose URL holds a user name or password. The spec is the engine's label:
    it is shown in every surface, recorded in the snapshot and in the engine's settings, so a
    secret in it could not be kept out of them; the key goes in an environment variable instead."""
    if _CREDENTIALS.search(text):
        raise InputError(
            f"engine {without_userinfo(text)!r}: its URL holds a user name or password, which would be shown "
            "and stored with the run; drop it from the URL and give api_key_env=NAME (an environment variable "
            "holding the key, sent as Authorization: Bearer)"
        )


def _coerce(values: dict[str, Any], text: str) -> dict[str, Any]:
    out = {k: v for k, v in values.items() if k in SPEC_FIELDS}
    if "batch_size" in out:
        try:
            out["batch_size"] = int(out["batch_size"])
        except ValueError:
            raise GendiffError(f"engine {text!r}: batch_size must be a whole number") from None
    return out


def check_spec_values(spec: EngineSpec) -> None:
    if spec.dtype not in DTYPES:
        raise GendiffError(f"dtype {spec.dtype!r} for {spec.label}: choose one of {', '.join(DTYPES)}")
    if spec.attn not in ATTN_IMPLEMENTATIONS:
        raise GendiffError(f"attention {spec.attn!r} for {spec.label}: choose one of {', '.join(ATTN_IMPLEMENTATIONS)}")
    if spec.batch_size < 1:
        raise GendiffError(f"batch_size {spec.batch_size} for {spec.label}: must be at least 1")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", spec.device):  # availability: loading.check_device
        raise GendiffError(f"device {spec.device!r} for {spec.label}: use cpu, cuda or cuda:N")
    check_supported(spec.name, spec.label, spec.decoding)

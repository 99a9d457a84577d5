"""The Engine interface shared by every way of running a model, and the settings it takes."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar

from gendiff import options as defaults
from gendiff.errors import GendiffError
from gendiff.trace import TokenStep, Trace

DTYPES = ("float32", "bfloat16", "float16")
ATTN_IMPLEMENTATIONS = ("eager", "sdpa")

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
    """Split ``a,b:k=v,k2=v2,c`` into engine specs: a piece with ``=`` but no ``:`` belongs to the previous one."""
    specs: list[str] = []
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            continue
        if specs and "=" in piece and ":" not in piece:
            specs[-1] += "," + piece
        else:
            specs.append(piece)
    return specs


def parse_engine_spec(text: str, defaults: dict[str, Any] | None = None, known: list[str] | None = None) -> EngineSpec:
    """Parse ``NAME[:key=value,...]``; ``defaults`` are the run-wide dtype/attn/device/batch_size."""
    text = text.strip()
    name, _, rest = text.partition(":")
    if known is not None and name not in known:
        raise GendiffError(f"unknown engine {name!r}; known engines: {', '.join(known)}")
    values: dict[str, Any] = dict(defaults or {})
    options: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not value:
            raise GendiffError(f"engine {text!r}: {item!r} is not key=value (e.g. hf-left:batch_size=4)")
        if key in SPEC_FIELDS:
            values[key] = value
        else:
            options[key] = value
    spec = EngineSpec(name=name, options=options, label=text, **_coerce(values, text))
    check_spec_values(spec)
    return spec


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


class Engine(ABC):
    """One way of running a model greedily. Subclasses set ``name``, ``description``, ``options``."""

    name: ClassVar[str]
    description: ClassVar[str]
    # engine-specific options: key -> allowed values, first is the default
    options: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, spec: EngineSpec, model_path: str) -> None:
        for key, value in spec.options.items():
            allowed = self.options.get(key)
            if allowed is None:
                extra = f"; its options: {', '.join(self.options)}" if self.options else "; it takes no options"
                raise GendiffError(f"engine {spec.label}: unknown option {key!r}{extra}")
            if value not in allowed:
                raise GendiffError(f"engine {spec.label}: {key}={value} is not one of {', '.join(allowed)}")
        self.spec = spec
        self.model_path = model_path

    def option(self, key: str) -> str:
        return self.spec.options.get(key, self.options[key][0])

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when the engine can run here, else a one-line reason with what to do."""
        return None

    def load(self) -> None:  # noqa: B027 — optional hook
        """Load what the engine needs (model weights); called in a worker before generate."""

    def replay(
        self,
        prompts: list[list[int]],
        settings: GenerationSettings,
        forced: dict[int, list[int]],
        probe: Any = None,
    ) -> list[Trace]:
        """Like :meth:`generate`, but prompt ``i`` in ``forced`` is fed ``forced[i]`` (teacher forcing)
        while its trace records the engine's own choices; ``probe`` (an
        :class:`gendiff.engines.probe.Probe`) captures module outputs. Engines that can't: GendiffError."""
        raise GendiffError(
            f"engine {self.spec.label}: cannot replay with forced tokens (needed for bisection and "
            "re-convergence); the hf-single, hf-left, hf-right and packed engines can"
        )

    @abstractmethod
    def generate(
        self,
        prompts: list[list[int]],
        settings: GenerationSettings,
        on_step: OnStep | None = None,
        cancel: threading.Event | None = None,
    ) -> list[Trace]:
        """Greedy-decode every prompt (token ids); return one Trace per prompt, in order."""

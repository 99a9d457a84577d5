"""What to run, as plain values (every default from :mod:`gendiff.defaults`).

The app's launch options, the settings screen and the reloading of a snapshot start from
:class:`RunOptions`; :meth:`RunOptions.config` turns it into the checked
:class:`gendiff.run.session.RunConfig` a Session runs. No heavy imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from gendiff.defaults import (
    ATTN,
    BATCH_SIZE,
    DEFAULT_ENGINES,
    DEVICE,
    DTYPE,
    FRAGILE_THRESHOLD,
    MAX_NEW_TOKENS,
    STOP_AT_EOS,
    TOP_K,
)
from gendiff.engines import engine_names
from gendiff.engines.settings import GenerationSettings, parse_engine_spec
from gendiff.errors import GendiffError
from gendiff.records.decoding import Decoding
from gendiff.records.snapshot import Snapshot
from gendiff.run.config import RunConfig


@dataclass(frozen=True)
class RunOptions:
    """The model, the engines (as the user wrote them), the reference (None: the first engine),
    the settings every engine shares unless its spec overrides them, and the decoding."""

    model: str | None = None
    engines: tuple[str, ...] = DEFAULT_ENGINES
    reference: str | None = None
    dtype: str = DTYPE
    attn: str = ATTN
    device: str = DEVICE
    batch_size: int = BATCH_SIZE
    max_new_tokens: int = MAX_NEW_TOKENS
    top_k: int = TOP_K
    stop_at_eos: bool = STOP_AT_EOS
    fragile_threshold: float = FRAGILE_THRESHOLD
    decoding: Decoding = field(default_factory=Decoding)  # penalties, run-wide (a spec may add its own)

    @property
    def reference_label(self) -> str:
        return self.reference or (self.engines[0] if self.engines else "")

    @property
    def labels(self) -> list[str]:
        """The columns: the reference first, then the others in the order given."""
        ref = self.reference_label
        return [ref] + [label for label in self.engines if label != ref]

    def spec_defaults(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype,
            "attn": self.attn,
            "device": self.device,
            "batch_size": self.batch_size,
            "decoding": self.decoding,
        }

    def with_changes(self, **changes: Any) -> RunOptions:
        return replace(self, **changes)

    def config(self) -> RunConfig:
        """The checked RunConfig; GendiffError names the first bad value."""
        if not self.engines:
            raise GendiffError("no engines selected; pass --engines hf-single,hf-left (for example)")
        known = engine_names()
        specs = tuple(parse_engine_spec(text, self.spec_defaults(), known) for text in self.engines)
        settings = GenerationSettings(self.max_new_tokens, self.top_k, self.stop_at_eos)
        settings.validate()
        # the reference may be written as the user wrote the engine, or as its label
        reference = self.reference_label
        config = RunConfig(self.model, specs, reference, settings, self.fragile_threshold)
        config.validate()
        return config

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot, model: str | None = None) -> RunOptions:
        """The options a snapshot was made with: its engine labels, dtype, attention and decoding
        (each engine's own recorded settings are restored by ``Session.from_snapshot``)."""
        decoding = snapshot.decoding
        return cls(
            model=model or snapshot.model.get("path"),
            engines=tuple(snapshot.engine_labels),
            reference=snapshot.reference,
            dtype=str(snapshot.model.get("dtype", DTYPE)),
            attn=str(snapshot.model.get("attn", ATTN)),
            max_new_tokens=int(decoding["max_new_tokens"]),
            top_k=int(decoding["top_k"]),
            stop_at_eos=bool(decoding.get("stop_at_eos", STOP_AT_EOS)),
            fragile_threshold=float(decoding.get("fragile_threshold", FRAGILE_THRESHOLD)),
        )

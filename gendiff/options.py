"""What to run, as plain values, with every default defined here once.

The CLI's option defaults, the app's launch options, the settings screen, the sweep and the
reloading of a snapshot all start from :class:`RunOptions`; :meth:`RunOptions.config` turns it
into the checked :class:`gendiff.session.RunConfig` a Session runs. No heavy imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from gendiff.decoding import Decoding

if TYPE_CHECKING:
    from gendiff.session import RunConfig
    from gendiff.snapshot import Snapshot

DEFAULT_ENGINES = ("hf-single", "hf-left", "hf-right", "packed")
DTYPE = "float32"
ATTN = "sdpa"
DEVICE = "cpu"
BATCH_SIZE = 16
MAX_NEW_TOKENS = 32
TOP_K = 5
STOP_AT_EOS = True
FRAGILE_THRESHOLD = 0.05


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
        from gendiff.engines import engine_names
        from gendiff.engines.base import GenerationSettings, parse_engine_spec
        from gendiff.errors import GendiffError
        from gendiff.session import RunConfig

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
    def from_args(cls, args: Any) -> RunOptions:
        """From ``gendiff``/``gendiff run`` arguments (see cli.add_run_options)."""
        from gendiff.cli import decoding_from_args, engine_list
        from gendiff.errors import InputError

        engines = tuple(engine_list(args.engines)) or DEFAULT_ENGINES
        if args.reference is not None and not args.reference.strip():
            raise InputError("--reference is empty; name one of the engines (or leave it out for the first)")
        return cls(
            model=args.model,
            engines=engines,
            reference=args.reference,
            dtype=args.dtype,
            attn=args.attn,
            device=args.device,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            top_k=args.top_k,
            stop_at_eos=not args.no_stop_at_eos,
            fragile_threshold=args.fragile_threshold,
            decoding=decoding_from_args(args),
        )

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

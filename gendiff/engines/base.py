"""The Engine interface shared by every way of running a model, and the settings it takes."""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

from gendiff import options as defaults
from gendiff.decoding import DECODING_KEYS, Decoding, check_supported
from gendiff.errors import GendiffError
from gendiff.trace import TokenStep, Trace

if TYPE_CHECKING:
    from gendiff.engines.probe import Probe
    from gendiff.engines.steps import TraceBuilder

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
    name, _, rest = text.partition(":")
    if known is not None and name not in known:
        raise GendiffError(f"unknown engine {name!r}; known engines: {', '.join(known)}")
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


class Engine(ABC):
    """One way of running a model greedily: the plugin API of gendiff.

    An engine author subclasses this, sets the class attributes below and implements
    :meth:`decode` (and usually :meth:`load`). gendiff does the rest: it tokenizes the prompts
    once, builds a :class:`~gendiff.engines.steps.TraceBuilder` for each run (the prompts, the
    decoding settings, EOS, cancellation, progress callbacks, teacher forcing and the bisection
    probe) and hands it to :meth:`decode`; the engine only feeds the builder one
    :class:`~gendiff.trace.TokenStep` per prompt and step. Third-party engines register under
    the ``gendiff.engines`` entry-point group (see ``examples/gendiff-example-engine``).

    Capabilities are declared, never guessed: gendiff reads only these class attributes.
    """

    name: ClassVar[str]
    """The name on the command line (``--engines NAME``); unique among the registered engines."""
    description: ClassVar[str]
    """One line for ``gendiff engines`` and the settings screen."""
    options: ClassVar[dict[str, tuple[str, ...] | FreeOption]] = {}
    """Engine-specific options (``NAME:key=value``): key -> allowed values, the first is the
    default; or a :class:`FreeOption` for a free-form value (a URL, a number)."""

    can_replay: ClassVar[bool] = False
    """True if :meth:`decode` honours ``builder.forced`` (feeds each row the token
    ``builder.next_inputs`` returns, not its own choice) and attaches ``builder.probing`` around
    its forward passes. Bisection and re-convergence replay only engines that can."""
    isolates_prompts: ClassVar[bool] = False
    """True if each prompt's computation is independent of the others run with it (one prompt
    at a time): a replay then needs only that prompt, not the whole batch."""
    uses_batch_size: ClassVar[bool] = False
    """True if ``spec.batch_size`` changes what the engine computes; a sweep over batch sizes
    reuses one run of engines that ignore it."""
    runs_last: ClassVar[bool] = False
    """True if loading the engine changes process-wide state (in-process vLLM pins torch to one
    thread): the session runs it after every other engine."""

    def __init__(self, spec: EngineSpec, model_path: str) -> None:
        """Check ``spec.options`` against :attr:`options`; load nothing yet.

        Args:
            spec: the engine as the user wrote it (dtype, attention, device, batch size, options).
            model_path: the model folder, already checked to exist.

        Raises:
            GendiffError: an unknown option or a value it does not allow.
        """
        for key, value in spec.options.items():
            allowed = self.options.get(key)
            if allowed is None:
                extra = f"; its options: {', '.join(self.options)}" if self.options else "; it takes no options"
                raise GendiffError(f"engine {spec.label}: unknown option {key!r}{extra}")
            if isinstance(allowed, FreeOption):
                problem = allowed.check(value)
                if problem:
                    raise GendiffError(f"engine {spec.label}: {key}={value}: {problem}")
            elif value not in allowed:
                raise GendiffError(f"engine {spec.label}: {key}={value} is not one of {', '.join(allowed)}")
        self.spec = spec
        self.model_path = model_path

    def option(self, key: str) -> str | None:
        """The value of option ``key``: the spec's, else its default (None only for a
        FreeOption without one)."""
        allowed = self.options[key]
        default = allowed.default if isinstance(allowed, FreeOption) else allowed[0]
        return self.spec.options.get(key, default)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this engine cannot run here (a missing package), checked before anything loads.

        Returns:
            None when it can run; else one line saying what is missing and what to do.
        """
        return None

    @classmethod
    def settings_problem(cls, settings: GenerationSettings) -> str | None:
        """Why this engine cannot honour the run's settings (e.g. more top-k candidates than it
        returns), checked with the options before anything loads.

        Returns:
            None when it can; else one line naming the setting and what to do.
        """
        return None

    def load(self) -> None:  # noqa: B027 — optional hook
        """Load what the engine needs (model weights). Called in a worker before :meth:`decode`,
        possibly more than once: cache what you load.

        Raises:
            GendiffError: the model cannot be loaded (one line naming the model and why).
        """

    def settings_record(self) -> dict[str, Any]:
        """Everything needed to reproduce this engine's run, stored with each trace.

        Returns:
            The spec's settings with every option (defaults included); override to add versions.
        """
        record = self.spec.settings()
        record["options"] = {key: self.option(key) for key in self.options}
        return record

    @abstractmethod
    def decode(self, builder: TraceBuilder) -> None:
        """Greedy-decode ``builder.prompts`` (token ids, already tokenized by gendiff).

        For every prompt row and step, compute the next-token logits, turn them into a
        :class:`~gendiff.trace.TokenStep` (:func:`~gendiff.engines.steps.steps_from_logits` does
        it for a batch of raw logits) and call ``builder.add(row, step)`` (or ``add_rows``);
        stop when ``builder.done`` (every row has hit EOS or ``max_new_tokens``, or the run was
        cancelled). The token to feed back is ``builder.next_inputs(steps)``, not necessarily the
        step's own choice: under teacher forcing it is the forced token.

        Args:
            builder: the run's prompts (``builder.prompts``), decoding settings
                (``builder.settings``), EOS, cancellation, teacher forcing (``builder.forced``)
                and probe (``builder.probing(model, locate)``: wrap the forward passes in it).
                ``builder.batches(size)`` splits it into views that share its state.

        Returns:
            Nothing: gendiff collects the traces from the builder (a row left unfinished by
            cancellation gets finish reason ``cancelled``).

        Raises:
            GendiffError: the engine cannot run this model or these settings (one line, what to
                do). Any other exception marks the engine failed for this run; the other
                engines still run.
        """

    def generate(
        self,
        prompts: list[list[int]],
        settings: GenerationSettings,
        on_step: OnStep | None = None,
        cancel: threading.Event | None = None,
    ) -> list[Trace]:
        """Run :meth:`decode` on ``prompts`` outside a session (the engine must be loaded).

        Returns:
            One Trace per prompt, in order; ``prompt_index`` is the position in ``prompts``.
        """
        from gendiff.engines.steps import run_engine

        return run_engine(self, prompts, settings, on_step=on_step, cancel=cancel)

    def replay(
        self,
        prompts: list[list[int]],
        settings: GenerationSettings,
        forced: dict[int, list[int]],
        probe: Probe | None = None,
        observer: Any = None,
    ) -> list[Trace]:
        """Like :meth:`generate`, but prompt ``i`` in ``forced`` is fed ``forced[i]`` (teacher
        forcing) while its trace records the engine's own choices; ``probe`` captures module
        outputs (see :mod:`gendiff.engines.probe`); ``observer`` (a
        :data:`gendiff.engines.steps.DistributionObserver`) sees each step's full raw scores
        (``gendiff run --stats``). Loads the engine first.

        Raises:
            GendiffError: the engine does not declare :attr:`can_replay`.
        """
        from gendiff.engines.steps import run_engine

        self.check_replay()
        self.load()
        return run_engine(self, prompts, settings, forced=forced, probe=probe, observer=observer)

    def check_replay(self) -> None:
        """Raises GendiffError unless this engine declares :attr:`can_replay`."""
        if not self.can_replay:
            raise GendiffError(
                f"engine {self.spec.label}: cannot replay with forced tokens (needed for bisection and "
                "re-convergence); the hf-single, hf-left, hf-right and packed engines can"
            )

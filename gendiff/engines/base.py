"""The Engine interface shared by every way of running a model (the plugin API), and
``run_engine``, the framework's half of the contract: builder in, traces out."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from gendiff.engines.loading import load_tokenizer
from gendiff.engines.probe import Probe
from gendiff.engines.settings import SPEC_FIELDS, EngineSpec, FreeOption, GenerationSettings, OnStep
from gendiff.engines.steps import DistributionObserver, TraceBuilder
from gendiff.errors import GendiffError
from gendiff.records.chat import ChatMessage
from gendiff.records.conformance import Verdict
from gendiff.records.forced import ForcedPass
from gendiff.records.trace import Trace


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
    forced_logprobs: ClassVar[bool] = False
    """True if :meth:`forced_pass` returns the engine's own logprobs on given tokens (prompt +
    tokens fed in one pass, e.g. vLLM's ``prompt_logprobs``): ``--stats`` and ``gendiff score``
    then compare it although it can't replay. An engine that can replay needs neither."""
    isolates_prompts: ClassVar[bool] = False
    """True if each prompt's computation is independent of the others run with it (one prompt
    at a time): a replay then needs only that prompt, not the whole batch."""
    applies: ClassVar[frozenset[str]] = frozenset({"dtype", "attn", "device"})
    """The run settings (of ``dtype``, ``attn``, ``device``, ``batch_size``) this engine applies.
    Only these are recorded with its traces (a served engine's server decides its dtype: it
    applies none); a sweep over batch sizes reuses one run of an engine without ``batch_size``;
    a float32 re-check re-runs only engines that apply ``dtype``."""
    runs_last: ClassVar[bool] = False
    """True if loading the engine changes process-wide state (in-process vLLM pins torch to one
    thread): the session runs it after every other engine."""
    runs_apart: ClassVar[bool] = False
    """True if :meth:`decode` mostly waits on another process or machine (a server, vLLM's worker
    process) rather than computing in this one: the session starts it at once, in a thread of its
    own, while the in-process engines run one after another (see :meth:`lane`). Its ``decode``
    then runs beside another engine's: it must not change process-wide state, and what it shares
    (the run's tokenizer) is made safe for that by gendiff."""
    conformance: ClassVar[str | None] = None
    """How gendiff checks this engine on each model before it runs it (see
    :mod:`gendiff.engines.conformance`): a float32 copy of the engine (same class, built with
    the spec at ``dtype=float32``) decodes a few prompts of different lengths, and its logits are
    compared with plain unpadded forward passes of each prompt through transformers.
    ``"refuse"``: the decode loop is the engine's own (hf-right, packed): if it differs or
    crashes the engine is refused, one line. ``"label"``: the engine is a library's own batched
    path (hf-left: transformers' ``generate``): a difference is that library's behaviour on the
    model, recorded as :attr:`conformance_note` on its divergences. None (default): not
    checked. Needs a model folder transformers loads; the verdict is cached per model."""
    conformance_note: ClassVar[str] = "this engine's padded batches differ from unpadded in float32 on this model"
    """The line a ``"label"`` engine's divergences carry when the probe finds its padded batch
    differs from unpadded while a batch of equal-length prompts (no padding) agrees."""
    conformance_batch_note: ClassVar[str] = (
        "the prompts of a batch leak into each other on this model: this engine's batches differ from "
        "one prompt at a time in float32 even without padding"
    )
    """The line when a batch differs even without padding (the batch itself is at fault)."""
    deliberate_options: ClassVar[frozenset[str]] = frozenset()
    """Options whose values change the computation on purpose (packed's ``positions=continuous``):
    the conformance probe runs the engine with them at their defaults."""

    def __init__(self, spec: EngineSpec, model_path: str) -> None:
        """Check ``spec.options`` against :attr:`options`; load nothing yet.

        Args:
            spec: the engine as the user wrote it (dtype, attention, device, batch size, options).
            model_path: the model folder, already checked to exist.

        Raises:
            GendiffError: an unknown option or a value it does not allow.
        """
        self.check_options(spec)
        self.spec = spec
        self.model_path = model_path
        self.verdict: Verdict | None = None  # set by the session from the conformance probe

    @classmethod
    def check_options(cls, spec: EngineSpec) -> None:
        """Refuse an option this engine does not take or a value it does not allow (the
        command line, the settings screen and the constructor all ask here).

        Raises:
            GendiffError: an unknown option or a value it does not allow.
        """
        for key, value in spec.options.items():
            allowed = cls.options.get(key)
            if allowed is None:
                extra = f"; its options: {', '.join(cls.options)}" if cls.options else "; it takes no options"
                raise GendiffError(f"engine {spec.label}: unknown option {key!r}{extra}")
            if isinstance(allowed, FreeOption):
                problem = allowed.check(value)
                if problem:
                    raise GendiffError(f"engine {spec.label}: {key}={value}: {problem}")
            elif value not in allowed:
                raise GendiffError(f"engine {spec.label}: {key}={value} is not one of {', '.join(allowed)}")

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

    def lane(self) -> str | None:
        """Which engines this one runs beside: None (in-process engines, and any engine that does
        not declare :attr:`runs_apart`) runs in the session's own thread, one after another in run
        order; engines with the same lane name run one after another in a thread of that lane,
        and the lanes run at the same time. Override to put engines that share something (one
        server, one worker process) on one lane, or to withdraw from overlapping in a setting
        where it is unsafe.

        Returns:
            None, or the lane's name (default: the engine's :attr:`name` when it runs apart).
        """
        return self.name if self.runs_apart else None

    def declared_settings(self) -> dict[str, Any]:
        """What the spec asks of this engine that it applies (see :attr:`applies`), with every
        option (defaults included): known before anything loads."""
        record = {k: v for k, v in self.spec.settings().items() if k not in SPEC_FIELDS or k in self.applies}
        record["options"] = {key: self.option(key) for key in self.options}
        if self.verdict is not None:  # the probe's verdict on this model (conformance)
            record["conformance"] = self.verdict.to_dict()
        return record

    def settings_record(self) -> dict[str, Any]:
        """Everything needed to reproduce this engine's run, stored with each trace (called after
        :meth:`load`).

        Returns:
            :meth:`declared_settings`; override to add what loading resolved (versions, the
            penalties applied, what a server reports).
        """
        return self.declared_settings()

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
        self.check_replay()
        self.load()
        return run_engine(self, prompts, settings, forced=forced, probe=probe, observer=observer)

    def forced_problem(self) -> str | None:
        """Why :meth:`forced_pass` can't run here (e.g. a server without prompt logprobs), as one
        line naming what to do, or None. Called before any model work; may contact a server."""
        return None

    def forced_pass(self, prompts: list[list[int]], targets: dict[int, list[int]], top_k: int) -> ForcedPass:
        """Feed each ``prompts[row] + targets[row]`` in one pass and return, per row and fed token,
        the engine's logprobs of the whole vocabulary when it has at most ``top_k`` tokens, else of
        its top ``top_k`` and the fed token (see :class:`~gendiff.records.forced.ForcedPass`).

        Raises:
            GendiffError: the engine does not declare :attr:`forced_logprobs`, or the pass failed.
        """
        raise GendiffError(f"engine {self.spec.label}: reports no logprobs on given tokens")

    def check_replay(self) -> None:
        """Raises GendiffError unless this engine declares :attr:`can_replay`."""
        if not self.can_replay:
            raise GendiffError(
                f"engine {self.spec.label}: cannot replay with forced tokens (needed for bisection and "
                "re-convergence); the hf-single, hf-left, hf-right and packed engines can"
            )


def run_engine(
    engine: Engine,
    prompts: list[list[int]],
    settings: GenerationSettings,
    *,
    on_step: OnStep | None = None,
    cancel: threading.Event | None = None,
    forced: dict[int, list[int]] | None = None,
    probe: Probe | None = None,
    observer: DistributionObserver | None = None,
    on_finish: Callable[[Trace], None] | None = None,
    chats: dict[int, tuple[ChatMessage, ...]] | None = None,
) -> list[Trace]:
    """The framework's half of the Engine contract: build the TraceBuilder for ``prompts``,
    hand it to ``engine.decode`` (already loaded) and collect one Trace per prompt, in order.

    ``forced`` (prompt index -> tokens), ``probe`` and ``observer`` (see :mod:`gendiff.run.statistics`)
    need an engine that declares ``can_replay``; ``on_finish(trace)`` gets each prompt's trace as
    soon as that prompt is done (row-numbered, like the returned traces); ``chats`` (prompt index ->
    messages) marks the chat prompts, whose ids are the rendered template (``builder.chat(row)``).
    """
    if (forced or probe is not None or observer is not None) and not engine.can_replay:
        engine.check_replay()
    eos = load_tokenizer(engine.model_path).eos_token_id
    builder = TraceBuilder(
        engine.spec.label,
        engine.settings_record(),
        list(range(len(prompts))),
        prompts,
        settings,
        eos,
        on_step,
        cancel,
        forced,
        probe,
        observer,
        on_finish,
        chats,
    )
    if prompts and not builder.cancelled:
        engine.decode(builder)
    return builder.traces()

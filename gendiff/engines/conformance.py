"""Verify, don't enumerate: check an engine's batched decode on the model itself before trusting it.

A list of known layer kinds (:mod:`architecture`) catches what configs say; what no config says
(a model that builds ALiBi from the slot index, a window applied by cache slot, a state the pads
leak into, an engine bug) is found by running the engine. :func:`verify` runs a float32 copy of
the engine on :data:`LENGTHS` prompts of different lengths (so hf-right pads its rows and packed
packs its segments; plus two around the sliding window when the model has a short one) for
:data:`NEW_TOKENS` tokens, and compares every step's logits with plain forward passes of each
prompt alone, unpadded, along the engine's own tokens. When they differ, the same engine runs
once more on prompts of one length (no padding), to tell padding from the batch itself (rows
that leak into each other: transformers' RWKV). The verdict is cached on disk by the model's
fingerprint, the engine's code and the library versions, so it costs once per model.

The tolerance is relative to the step's logit scale (max |logit| of the unpadded computation,
at least 1): :data:`RELATIVE_TOLERANCE` = 1e-4, i.e. ~840 float32 ulps of the largest logit.
Padding, packing and a KV cache change only the shapes and the order of float32 sums, whose
rounding grows with depth and width (measured on the tiny suite and the demo model: at most
~3e-6 of the scale); a wrong position, mask, window or state moves logits by 1e-2 of the scale
and more (measured: 4e-3…0.6).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import sys
import threading
import time
import weakref
from dataclasses import replace
from pathlib import Path
from typing import Any

from gendiff import __version__
from gendiff.engines.architecture import architecture_of
from gendiff.engines.base import Engine, run_engine
from gendiff.engines.loading import is_loaded, load_model, load_tokenizer, model_fingerprint, release_model
from gendiff.engines.settings import GenerationSettings
from gendiff.errors import InputError, describe
from gendiff.records.conformance import AGREES, DIFFERS, ERROR, LABEL, REFUSE, Verdict

PROBE_VERSION = 2  # bump when what the probe checks changes: cached verdicts are then redone
NEW_TOKENS = 4
LENGTHS = (19, 3, 11, 6)  # different lengths: hf-right pads rows, packed packs segments
WINDOW_CAP = 1024  # windows up to this many tokens get prompts that cross them
TOP_K = 5
RELATIVE_TOLERANCE = 1e-4
PASSAGE = (
    "The river rose quickly after three days of rain, and by morning the lower fields were under water. "
    "Farmers moved their animals to the hill, while the children watched boats drift past the old mill. "
    "In the town, the baker kept his ovens going all night so that nobody would go without bread. "
)

_memo: dict[str, Verdict] = {}
_memo_lock = threading.Lock()
_differing: dict[str, set[str]] = {}  # resolved model folder -> engine names not agreeing there
# model object -> {(token ids, first row): unpadded float32 logits}: gone with the model
_rows_by_model: weakref.WeakKeyDictionary[Any, dict[tuple[tuple[int, ...], int], Any]] = weakref.WeakKeyDictionary()


def verify(engine: Engine, keep_loaded: bool = False) -> Verdict | None:
    """The verdict on ``engine`` for its model (None when it declares no ``conformance`` check):
    from this process, else the disk cache, else the probe (and cached). ``keep_loaded``: leave
    the float32 model the probe loads in the model cache (a float32 engine of the run uses it).

    Raises:
        InputError: a ``refuse``-mode engine that differs or crashes on the model, one line
            naming the engine, the model, where it differed and what to use instead.
        GendiffError: loading the model failed (its own message).
    """
    mode = engine.conformance
    if mode not in (REFUSE, LABEL):
        return None
    key, material = cache_key(engine)
    with _memo_lock:
        verdict = _memo.get(key)
    if verdict is None:
        verdict = _read_cache(key)
    if verdict is None:
        verdict = probe(engine, key, material, keep_loaded)
        if verdict.status != ERROR:  # a crash may be the machine's (memory): tried again next time
            _write_cache(key, material, verdict)
    with _memo_lock:
        _memo[key] = verdict
        if not verdict.agrees:
            _differing.setdefault(str(Path(engine.model_path).resolve()), set()).add(engine.spec.name)
    if mode == REFUSE and not verdict.agrees:
        raise InputError(refusal(engine, verdict))
    return verdict


def found_to_differ(model_path: str) -> frozenset[str]:
    """The engine names the probe found to differ (or fail) on this model in this process: no
    refusal recommends them."""
    with _memo_lock:
        return frozenset(_differing.get(str(Path(model_path).resolve()), ()))


def refusal(engine: Engine, verdict: Verdict) -> str:
    """The one line that refuses a ``refuse``-mode engine the probe did not clear."""
    arch = architecture_of(str(engine.model_path))
    model = arch.name if arch is not None else Path(engine.model_path).name
    what = "failed in gendiff's check" if verdict.status == ERROR else "differs from the unpadded model in float32"
    return f"engine {engine.spec.label}: on model {model} its decode loop {what} ({verdict.where()}); use hf-single"


def probe(engine: Engine, key: str = "", material: dict[str, Any] | None = None, keep_loaded: bool = False) -> Verdict:
    """Run the probe now (no cache): a float32 copy of ``engine`` against plain forward passes."""
    started = time.perf_counter()
    spec = engine.spec
    options = {k: v for k, v in spec.options.items() if k not in engine.deliberate_options}
    twin_spec = replace(spec, dtype="float32", options=options)
    prompts = probe_prompts(engine.model_path)
    twin_spec = replace(twin_spec, batch_size=len(prompts))  # one batch: every row but the longest padded
    base = dict(
        engine=spec.name,
        mode=engine.conformance or REFUSE,
        tolerance=RELATIVE_TOLERANCE,
        prompt_lengths=tuple(len(p) for p in prompts),
        new_tokens=NEW_TOKENS,
        options=options,
        key=key,
    )
    loaded_before = is_loaded(engine.model_path, "float32", spec.attn, spec.device)
    try:
        # a model that doesn't load is the model's problem (the run's own load says so): raised
        reference = load_model(engine.model_path, "float32", spec.attn, spec.device)
        twin = type(engine)(twin_spec, engine.model_path)
        twin.load()
        settings = GenerationSettings(max_new_tokens=NEW_TOKENS, top_k=TOP_K, stop_at_eos=False)
        traces = run_engine(twin, prompts, settings)
        found = compare_with_unpadded(reference.model, prompts, traces)
        if found["differs"] and "error" not in found:
            # padding, or the batch itself? the same engine on prompts of one length (no pads)
            even = probe_prompts(engine.model_path, equal=True)
            alone = compare_with_unpadded(reference.model, even, run_engine(twin, even, settings))
            found["without_padding"] = bool(alone["differs"])
    except InputError:
        raise
    except Exception as exc:  # the engine's failure on this model (or out of memory) is the verdict
        return Verdict(status=ERROR, error=describe(exc), seconds=time.perf_counter() - started, **base)
    finally:
        if not (keep_loaded or loaded_before):
            release_model(engine.model_path, "float32", spec.attn, spec.device)
    status = DIFFERS if found.pop("differs") else AGREES
    if "error" in found:
        status = ERROR
    note = None
    if status == DIFFERS and engine.conformance == LABEL:
        note = engine.conformance_batch_note if found.get("without_padding") else engine.conformance_note
    return Verdict(status=status, note=note, seconds=time.perf_counter() - started, **base, **found)


def compare_with_unpadded(model: Any, prompts: list[list[int]], traces: list[Any]) -> dict[str, Any]:
    """Each trace's step logits against one unpadded forward pass of its prompt plus the tokens the
    engine chose (teacher forcing by construction). Returns the Verdict's measured fields and
    ``differs``."""

    worst = dict(worst_prompt=None, worst_step=None, worst_scale=None, worst_diff=None)
    worst_ratio, max_diff = -1.0, 0.0
    for index, (prompt, trace) in enumerate(zip(prompts, traces)):
        if trace.finish_reason == "error" or len(trace.steps) != NEW_TOKENS:
            detail = trace.error or f"{len(trace.steps)} of {NEW_TOKENS} steps"
            return dict(error=f"probe prompt {index + 1}: {detail}", differs=True)
        ids = tuple(prompt) + tuple(step.token_id for step in trace.steps[:-1])
        rows = _unpadded_rows(model, ids, len(prompt) - 1)
        for step_index, step in enumerate(trace.steps):
            expected = rows[step_index]
            diff, scale = _step_difference(step, expected)
            max_diff = max(max_diff, diff)
            if diff / scale > worst_ratio:
                worst_ratio = diff / scale
                worst = dict(worst_prompt=index, worst_step=step_index, worst_scale=scale, worst_diff=diff)
    return dict(max_logit_diff=max_diff, differs=worst_ratio > RELATIVE_TOLERANCE, **worst)


def _unpadded_rows(model: Any, ids: tuple[int, ...], first: int) -> Any:
    """Float32 logits of one plain forward pass over ``ids`` (batch 1, no padding), rows
    ``first`` on. Kept per model object: the engines checked in one run mostly choose the same
    tokens, so their probes share these passes."""
    import torch

    known = _rows_by_model.setdefault(model, {})
    rows = known.get((ids, first))
    if rows is None:
        keep = len(ids) - first
        extra = {"logits_to_keep": keep} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
        with torch.inference_mode():  # the LM head on the rows read only, where the model allows it
            logits = model(input_ids=torch.tensor([list(ids)], device=model.device), **extra).logits[0, -keep:]
        rows = known[(ids, first)] = logits.float()
    return rows


def _step_difference(step: Any, expected: Any) -> tuple[float, float]:
    """(largest |difference|, logit scale) of one step against the unpadded logits: at each
    recorded candidate (raw scores, before any penalty) and at the top-1 value."""
    import torch

    candidates = step.raw_top if step.raw_top is not None else step.top
    if candidates and all(c.logit is not None for c in candidates):
        values, scale = expected, max(1.0, float(expected.abs().max()))
        got = [c.logit for c in candidates]
    else:  # an engine that gives only logprobs
        values = torch.log_softmax(expected, -1)
        got = [c.logprob for c in candidates]
        scale = max([1.0, *(abs(v) for v in got)])
    diffs = [abs(value - float(values[c.token_id])) for c, value in zip(candidates, got)]
    if got:
        diffs.append(abs(got[0] - float(values.max())))
    return max(diffs, default=0.0), scale


def probe_prompts(model_path: str, equal: bool = False) -> list[list[int]]:
    """The probe's prompts: :data:`PASSAGE` in the model's own tokens, cut at other offsets to
    :data:`LENGTHS` (and, with a sliding window of at most :data:`WINDOW_CAP`, to one length that
    crosses the window while decoding and one past it), within the model's context. ``equal``:
    as many prompts, all of the second-longest length (a batch without padding)."""
    tokenizer = load_tokenizer(model_path)
    arch = architecture_of(str(model_path))
    lengths = list(LENGTHS)
    windows = [] if arch is None else [w for w in (arch.sliding_window, *arch.windows) if isinstance(w, int)]
    window = min(windows, default=None)
    if window is not None and 2 < window <= WINDOW_CAP:
        lengths = [window - 2, LENGTHS[1], window + 5, LENGTHS[2]]
    if tokenizer.max_length is not None:
        lengths = [max(1, min(n, tokenizer.max_length - NEW_TOKENS)) for n in lengths]
    if equal:
        lengths = [sorted(lengths)[-2]] * len(lengths)
    tokens = tokenizer.encode(PASSAGE)
    special = {tokenizer.pad_token_id, tokenizer.eos_token_id}
    tokens = [t for t in tokens if t not in special] or [tokenizer.pad_token_id + 1]
    vocab = tokenizer.model_vocab_size
    if vocab is not None:
        tokens = [t for t in tokens if t < vocab] or [0]
    needed = max(lengths) + 7 * len(lengths)
    stream = (tokens * (needed // len(tokens) + 1))[:needed]
    return [stream[7 * i : 7 * i + n] for i, n in enumerate(lengths)]


def cache_key(engine: Engine) -> tuple[str, dict[str, Any]]:
    """(key, what it is made of): the model (fingerprint, each weight file's size and mtime),
    the engine's class and the source of every module its class is built from, the options the
    probe runs with, attention, device kind, library versions and the probe's version."""
    import torch
    import transformers

    model_dir = Path(engine.model_path)
    weights = sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.bin"))
    cls = type(engine)
    sources = hashlib.sha256()
    for module in dict.fromkeys(k.__module__ for k in cls.__mro__ if k.__module__ not in ("builtins", "abc")):
        try:
            sources.update(inspect.getsource(sys.modules[module]).encode())
        except (OSError, TypeError, KeyError):
            sources.update(module.encode())
    material = {
        "probe": PROBE_VERSION,
        "model": str(model_dir.resolve()),
        "fingerprint": model_fingerprint(model_dir),
        "weights": [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in weights],
        "engine": f"{cls.__module__}.{cls.__qualname__}",
        "engine_source": sources.hexdigest()[:16],
        "options": {k: v for k, v in engine.spec.options.items() if k not in engine.deliberate_options},
        "attn": engine.spec.attn,
        "device": engine.spec.device.partition(":")[0],
        "versions": {"gendiff": __version__, "torch": torch.__version__, "transformers": transformers.__version__},
    }
    key = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:32]
    return key, material


def cache_dir() -> Path:
    """Where verdicts are kept: ``$XDG_CACHE_HOME/gendiff/verify`` (default ``~/.cache``)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "gendiff" / "verify"


def _read_cache(key: str) -> Verdict | None:
    file = cache_dir() / f"{key}.json"
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        return replace(Verdict.from_dict(data["verdict"]), cached=True)
    except (OSError, ValueError, KeyError, TypeError):  # absent or unreadable: probe again
        return None


def _write_cache(key: str, material: dict[str, Any] | None, verdict: Verdict) -> None:
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{key}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps({"key": material, "verdict": verdict.to_dict()}, indent=1), encoding="utf-8")
        temporary.replace(folder / f"{key}.json")
    except OSError:  # a read-only cache costs a probe next time, nothing else
        pass


def clear_memo() -> None:
    """Forget this process's verdicts (tests; the disk cache stays)."""
    with _memo_lock:
        _memo.clear()
        _differing.clear()

"""Variant sweep: run the engines under every combination of some settings and count divergences.

``gendiff run --sweep dtype=float32,bfloat16 attn=eager,sdpa batch_size=1,4,16`` makes 12
variants; a penalty (``repetition_penalty=1,1.2``) is an axis too, applied to every engine. In each, every engine runs with that variant's settings and is compared with the
reference run under the same variant; the reference itself is also compared with the first
variant's reference, so a setting that changes *everything* (dtype) is told apart from one
that splits the engines (batch size). Runs whose effective settings repeat (hf-single ignores
the batch size) are reused, not recomputed.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from gendiff.engines import engine_class
from gendiff.engines.settings import SPEC_FIELDS, EngineSpec, check_spec_values
from gendiff.errors import GendiffError
from gendiff.records.decoding import DECODING_KEYS
from gendiff.records.divergence import compare
from gendiff.records.events import OnEvent
from gendiff.records.trace import Trace
from gendiff.run.config import RunConfig
from gendiff.run.session import Session

SCHEMA_ID = "gendiff.sweep/1"


@dataclass(frozen=True)
class Variant:
    settings: dict[str, str]
    diverged: dict[str, list[int]]  # engine -> prompt indices diverging from the variant's reference
    reference_vs_first: list[int] | None  # prompt indices where the reference differs from variant 1's
    errors: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "diverged": self.diverged,
            "reference_vs_first": self.reference_vs_first,
            "errors": self.errors,
        }


def parse_sweep(items: list[str], specs: tuple[EngineSpec, ...]) -> dict[str, list[str]]:
    """``["dtype=float32,bfloat16", "batch_size=1,4"]`` -> {"dtype": [...], "batch_size": [...]}."""
    options = {key for spec in specs for key in engine_class(spec.name).options}
    sweepable = sorted(SPEC_FIELDS) + sorted(options) + list(DECODING_KEYS)
    axes: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        chosen = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not chosen:
            raise GendiffError(f"--sweep {item!r}: write KEY=V1,V2 (e.g. dtype=float32,bfloat16)")
        if key not in sweepable:
            raise GendiffError(f"--sweep {key!r}: not a setting of these engines; sweepable: {', '.join(sweepable)}")
        if key in axes:
            raise GendiffError(f"--sweep {key!r}: given twice; list every value once (e.g. {key}=a,b)")
        axes[key] = chosen
    return axes


def variant_specs(specs: tuple[EngineSpec, ...], settings: dict[str, str]) -> tuple[EngineSpec, ...]:
    """The engines with one variant's settings applied (options only to engines that take them);
    labels are kept, so the table's columns line up across variants."""
    out = []
    for spec in specs:
        fields: dict[str, Any] = {}
        options = dict(spec.options)
        penalties = {key: value for key, value in settings.items() if key in DECODING_KEYS}
        if penalties:  # a penalty axis applies to every engine, as the run-wide option does
            fields["decoding"] = spec.decoding.with_values(penalties, f"--sweep {spec.label}")
        for key, value in settings.items():
            if key in SPEC_FIELDS:
                if key == "batch_size":
                    try:
                        fields[key] = int(value)
                    except ValueError:
                        raise GendiffError(f"--sweep batch_size={value}: must be a whole number") from None
                else:
                    fields[key] = value
            elif key in engine_class(spec.name).options:
                options[key] = value
        new = replace(spec, options=options, **fields)
        check_spec_values(new)
        out.append(new)
    return tuple(out)


def _run_key(spec: EngineSpec) -> tuple[Any, ...]:
    """What decides an engine's output: its settings, minus the batch size where it has no effect."""
    settings = spec.settings()
    if "batch_size" not in engine_class(spec.name).applies:
        settings.pop("batch_size")
    return spec.name, tuple(sorted((k, str(v)) for k, v in settings.items()))


def run_sweep(
    config: RunConfig,
    prompts: list[str],
    axes: dict[str, list[str]],
    on_variant: Callable[[int, int, dict[str, str]], None] | None = None,
    on_event: OnEvent | None = None,
    cancel: threading.Event | None = None,
) -> list[Variant]:
    """Run every variant through :meth:`Session.run` (events and ``cancel`` passed on); a
    cancelled sweep returns the variants finished so far."""
    combos = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
    # check every variant before running any
    sessions = [Session(replace(config, engines=variant_specs(config.engines, combo)), prompts) for combo in combos]
    cache: dict[tuple[Any, ...], tuple[list[Trace], str | None]] = {}
    variants: list[Variant] = []
    first_reference: list[Trace] | None = None
    cancel = cancel or threading.Event()
    for number, (combo, session) in enumerate(zip(combos, sessions)):
        if cancel.is_set():
            break
        if on_variant:
            on_variant(number, len(combos), combo)
        keys = {label: _run_key(engine.spec) for label, engine in session.engines.items()}
        todo = [label for label in session.run_order() if keys[label] not in cache]
        if todo:
            # an engine whose settings repeat an earlier run is taken from the cache, not re-run
            todo = [label for n, label in enumerate(todo) if keys[label] not in {keys[t] for t in todo[:n]}]
            snapshot = session.run(on_event, cancel, engines=todo)
            if cancel.is_set():
                break
            errors_of = {entry["label"]: entry.get("error") for entry in snapshot.engines}
            for label in todo:
                cache[keys[label]] = ([p.traces[label] for p in snapshot.prompts], errors_of.get(label))
        traces: dict[str, list[Trace]] = {}
        errors: dict[str, str] = {}
        for label in session.run_order():
            engine_traces, error = cache[keys[label]]
            if error is not None:
                errors[label] = error
            else:
                traces[label] = engine_traces
        reference = traces.get(config.reference)
        diverged: dict[str, list[int]] = {}
        for label, engine_traces in traces.items():
            if label == config.reference or reference is None:
                continue
            diverged[label] = [i for i, (r, o) in enumerate(zip(reference, engine_traces)) if compare(r, o).diverged]
        vs_first = None
        if reference is not None:
            if first_reference is None:
                first_reference = reference
            elif number:
                vs_first = [i for i, (r, o) in enumerate(zip(first_reference, reference)) if r.token_ids != o.token_ids]
        variants.append(Variant(combo, diverged, vs_first, errors))
    return variants


def sweep_table(
    variants: list[Variant], axes: dict[str, list[str]], labels: list[str], reference: str, prompts: int
) -> str:
    """Rows: variants; columns: the settings, then per engine the prompts diverging from the reference."""
    others = [label for label in labels if label != reference]
    head = list(axes) + others + [f"{reference} vs row 1"]
    rows = []
    for v in variants:
        cells = [v.settings[k] for k in axes]
        for label in others:
            cells.append("failed" if label in v.errors else f"{len(v.diverged.get(label, []))}/{prompts}")
        cells.append("—" if v.reference_vs_first is None else f"{len(v.reference_vs_first)}/{prompts}")
        rows.append(cells)
    widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head] + rows]
    lines.insert(1, "  ".join("─" * w for w in widths))
    lines.append("")
    lines.append(
        f"cells: prompts (of {prompts}) where the engine's greedy tokens differ from {reference} run with the same row's settings"
    )
    for key, values in axes.items():
        if len(values) < 2:
            continue
        means = []
        for value in values:
            counts = [sum(len(d) for d in v.diverged.values()) for v in variants if v.settings[key] == value]
            means.append(f"{value} {sum(counts) / max(1, len(counts)):.1f}")
        lines.append(f"by {key}: " + " · ".join(means) + "  (mean diverging prompt×engine pairs per row)")
    for v in variants:
        for label, error in v.errors.items():
            lines.append(f"{', '.join(f'{k}={x}' for k, x in v.settings.items())}: {label} failed: {error}")
    return "\n".join(lines)


def sweep_json(variants: list[Variant], axes: dict[str, list[str]], config: RunConfig, prompts: int) -> dict[str, Any]:
    return {
        "schema": SCHEMA_ID,
        "axes": axes,
        "reference": config.reference,
        "engines": [s.label for s in config.engines],
        "prompts": prompts,
        "max_new_tokens": config.settings.max_new_tokens,
        "variants": [v.to_dict() for v in variants],
    }

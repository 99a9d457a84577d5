"""The bisection record a diagnosis leaves next to a Divergence: where in the network two engines
part, down to projections and earlier positions' keys/values (:class:`Bisection`). Plain frozen
data, no torch; it goes into snapshots and loads back. Below :mod:`gendiff.divergence`, which
holds it (the other record, :class:`gendiff.reconvergence.Reconvergence`, says whether the split lasts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

LAYER_OUTPUT = "layer output"
QUERY_SOURCES = ("query projection", "fused q/k/v projection")
ATTENTION_ROLES = ("attention", "attention output projection")

# snapshots written before roles were recorded named modules Llama-style
_OLD_ROLES = {
    "embed_tokens": "token embedding",
    "input_layernorm": "input norm",
    "self_attn": "attention",
    "attn_residual": "residual after attention",
    "post_attention_layernorm": "pre-mlp norm",
    "mlp": "mlp",
    "norm": "final norm",
    "logits": "logits",
}


@dataclass(frozen=True)
class ModuleDiff:
    """One module's output at the divergent position, reference vs other.

    ``name`` is the model's own module path (``model.layers.0.self_attn.q_proj``; a residual
    stream is named after the module it feeds, ``…post_attention_layernorm:input``); ``role``
    says what it computes (``query projection``, ``post-attention norm``, ``layer output``…);
    ``layer`` is its decoder layer, None outside the stack."""

    name: str
    equal: bool  # bitwise
    rel_diff: float  # ||other - reference|| / ||reference||
    max_abs_diff: float
    role: str = ""
    layer: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "layer": self.layer,
            "equal": self.equal,
            "rel_diff": self.rel_diff,
            "max_abs_diff": self.max_abs_diff,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModuleDiff:
        name = str(data["name"])
        role, layer = data.get("role"), data.get("layer")
        if role is None:  # an older snapshot: "layers.N.child", "embed_tokens", "norm", "logits"
            role, layer = _old_label(name)
        return cls(
            name,
            bool(data["equal"]),
            float(data["rel_diff"]),
            float(data["max_abs_diff"]),
            str(role),
            None if layer is None else int(layer),
        )

    def label(self) -> str:
        """``name (role)``, for one-line reports."""
        return f"{self.name} ({self.role})" if self.role else self.name


def _old_label(name: str) -> tuple[str, int | None]:
    match = re.fullmatch(r"layers\.(\d+)(?:\.(\w+))?", name)
    if match is None:
        return _OLD_ROLES.get(name, "module"), None
    child = match.group(2)
    return (_OLD_ROLES.get(child, "module") if child else LAYER_OUTPUT), int(match.group(1))


@dataclass(frozen=True)
class PositionDiff:
    """One sequence position (0 = the prompt's first token) whose key or value differs."""

    position: int
    rel_diff: float
    max_abs_diff: float

    def to_dict(self) -> dict[str, Any]:
        return {"position": self.position, "rel_diff": self.rel_diff, "max_abs_diff": self.max_abs_diff}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PositionDiff:
        return cls(int(data["position"]), float(data["rel_diff"]), float(data["max_abs_diff"]))


@dataclass(frozen=True)
class KeyValueDiff:
    """One layer's key or value source (``k_proj``, ``v_proj``, a fused qkv) at every position of
    the prompt's row up to the divergent one: which positions differ, and by how much."""

    layer: int
    name: str
    role: str
    positions: int  # positions compared
    differing: tuple[PositionDiff, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "name": self.name,
            "role": self.role,
            "positions": self.positions,
            "differing": [p.to_dict() for p in self.differing],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KeyValueDiff:
        return cls(
            int(data["layer"]),
            str(data["name"]),
            str(data["role"]),
            int(data["positions"]),
            tuple(PositionDiff.from_dict(p) for p in data["differing"]),
        )


@dataclass(frozen=True)
class PositionSplit:
    """An earlier position of the prompt's row and the first module (in execution order) whose
    output at that position differs between the engines."""

    position: int
    name: str
    role: str
    layer: int | None
    rel_diff: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "name": self.name,
            "role": self.role,
            "layer": self.layer,
            "rel_diff": self.rel_diff,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PositionSplit:
        layer = data.get("layer")
        return cls(
            int(data["position"]),
            str(data["name"]),
            str(data["role"]),
            None if layer is None else int(layer),
            float(data["rel_diff"]),
        )


@dataclass(frozen=True)
class Bisection:
    """Every module's output at the divergent step's position, compared in execution order,
    and per layer the earlier positions whose keys or values differ.

    A bisection that could not run keeps ``error`` (why) and no modules: the run it explains
    is kept all the same."""

    reference: str
    engine: str
    prompt_index: int
    step: int
    tolerance: float
    modules: tuple[ModuleDiff, ...]
    reproduced: bool  # the replay chose the same tokens at the step as the run did
    position: int | None = None  # sequence position whose logits give the step (prompt length + step - 1)
    key_values: tuple[KeyValueDiff, ...] = ()
    error: str | None = None
    # earlier positions that differ somewhere in the layers, earliest module first (then by position)
    position_splits: tuple[PositionSplit, ...] = ()

    @property
    def first_bitwise(self) -> ModuleDiff | None:
        """The first module whose output is not bitwise identical."""
        return next((m for m in self.modules if not m.equal), None)

    @property
    def first_over_tolerance(self) -> ModuleDiff | None:
        return next((m for m in self.modules if m.rel_diff > self.tolerance), None)

    def layer_outputs(self) -> list[ModuleDiff]:
        """The residual stream after each decoder layer: the per-layer chart."""
        return [m for m in self.modules if m.role == LAYER_OUTPUT]

    def earlier_positions(self) -> dict[int, list[PositionDiff]]:
        """Per layer, the positions before the divergent one whose key or value differs (largest
        difference of the layer's key/value sources at each position)."""
        out: dict[int, dict[int, PositionDiff]] = {}
        for kv in self.key_values:
            layer = out.setdefault(kv.layer, {})
            for p in kv.differing:
                if self.position is not None and p.position >= self.position:
                    continue
                if p.position not in layer or p.rel_diff > layer[p.position].rel_diff:
                    layer[p.position] = p
        return {layer: sorted(found.values(), key=lambda p: p.position) for layer, found in sorted(out.items())}

    def summary(self) -> str:
        """The findings in one line (the divergence panel); :meth:`summary_lines` for one per finding."""
        return "; ".join(self.summary_lines())

    def summary_lines(self) -> list[str]:
        """The first differing module, then what the positions are, then the notes on earlier
        positions' keys/values and splits. Every number says what it is: a relative difference
        is ||other - reference|| / ||reference|| of a module's output; a position counts the
        prompt's and the generated tokens from 0."""
        if self.error is not None:
            return [f"failed: {self.error}"]
        first = self.first_bitwise
        at = f" at position {self.position}" if self.position is not None else ""
        if first is None:
            return [f"every module's output is bitwise identical{at or ' at the divergent position'}"]
        over = self.first_over_tolerance
        text = f"first differs at {first.label()}, relative difference {first.rel_diff:.2e}{at}"
        if self.position is not None:
            text += f" (the output that picks step {self.step}'s token)"
        tolerance = f"the tolerance ({self.tolerance:g} relative difference)"
        if over is None:
            text += f"; no module exceeds {tolerance} before the logits"
        elif over.name != first.name:
            text += f"; exceeds {tolerance} from {over.label()} ({over.rel_diff:.2e})"
        notes = [self.key_value_note(), self.position_note()]
        legend = self.positions_legend() if any(notes) else None
        return [line for line in (text, legend, *notes) if line]

    def positions_legend(self) -> str | None:
        """Which positions are the prompt's and which the generated tokens before the step."""
        if self.position is None:
            return None
        prompt_tokens = self.position - self.step + 1  # position = prompt length + step - 1
        text = f"positions count the prompt's and the generated tokens from 0: {_span(0, prompt_tokens - 1)} are the prompt"
        if self.step > 0:
            text += f", {_span(prompt_tokens, self.position)} the tokens generated at steps {_span(0, self.step - 1)}"
        return text

    def position_note(self) -> str | None:
        """Where the earliest-parting earlier positions first differ: ``earlier positions first
        differ at model.layers.0.self_attn.q_proj (query projection): 3 of them (…)``."""
        if not self.position_splits:
            return None
        first = self.position_splits[0]
        same = [s for s in self.position_splits if s.name == first.name]
        shown = ", ".join(str(s.position) for s in same[:8]) + (", …" if len(same) > 8 else "")
        text = (
            f"earlier positions first differ at {first.name} ({first.role}): {len(same)} of them ({shown}), "
            f"up to {max(s.rel_diff for s in same):.2e} relative difference"
        )
        sources = [kv for kv in self.key_values if kv.layer == first.layer]
        if first.role in ATTENTION_ROLES and sources and not any(kv.differing for kv in sources):
            # q (before it in execution order) is equal there, and every key and value of the layer
            text += ", with its queries, keys and values bitwise equal: the attention computation itself differs"
        return text

    def key_value_note(self) -> str | None:
        """Where earlier positions' keys/values first differ, up to the first differing layer; or,
        when attention is the first to differ with all its inputs equal, that it is the kernel."""
        first = self.first_bitwise
        limit = first.layer if first is not None and first.layer is not None else None
        if first is not None and limit is not None and first.role in ATTENTION_ROLES:
            sources = [kv for kv in self.key_values if kv.layer == limit]
            queries = [m for m in self.modules if m.layer == limit and m.role in QUERY_SOURCES]
            if sources and queries and not any(kv.differing for kv in sources) and all(m.equal for m in queries):
                return (
                    f"queries, keys and values of every position are bitwise equal in layer {limit}: "
                    "the attention computation itself differs (its kernel over this batch shape and mask)"
                )
        for layer, positions in self.earlier_positions().items():
            if positions and (limit is None or layer <= limit):
                worst = max(p.rel_diff for p in positions)
                of = f" of {self.position}" if self.position is not None else ""
                return (
                    f"keys/values differ from layer {layer} at {len(positions)}{of} earlier positions "
                    f"({_positions(positions)}), up to {worst:.2e} relative difference"
                )
        return None

    def to_dict(self) -> dict[str, Any]:
        first, over = self.first_bitwise, self.first_over_tolerance
        return {
            "reference": self.reference,
            "engine": self.engine,
            "prompt_index": self.prompt_index,
            "step": self.step,
            "position": self.position,
            "tolerance": self.tolerance,
            "first_bitwise": first.name if first else None,
            "first_over_tolerance": over.name if over else None,
            "reproduced": self.reproduced,
            "error": self.error,
            "modules": [m.to_dict() for m in self.modules],
            "key_values": [kv.to_dict() for kv in self.key_values],
            "position_splits": [s.to_dict() for s in self.position_splits],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Bisection:
        return cls(
            reference=str(data["reference"]),
            engine=str(data["engine"]),
            prompt_index=int(data["prompt_index"]),
            step=int(data["step"]),
            tolerance=float(data["tolerance"]),
            modules=tuple(ModuleDiff.from_dict(m) for m in data["modules"]),
            reproduced=bool(data.get("reproduced", True)),
            position=None if data.get("position") is None else int(data["position"]),
            key_values=tuple(KeyValueDiff.from_dict(kv) for kv in data.get("key_values") or ()),
            error=data.get("error"),
            position_splits=tuple(PositionSplit.from_dict(s) for s in data.get("position_splits") or ()),
        )


def _positions(positions: list[PositionDiff]) -> str:
    shown = ", ".join(str(p.position) for p in positions[:8])
    return shown + (", …" if len(positions) > 8 else "")


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}–{last}"

"""Capture every module's output at one token position in one forward pass (for bisection).

A :class:`Probe` names a prompt and a step. The engine that runs that prompt attaches it to
its model around its decode loop (``TraceBuilder.probing``), saying where the prompt's last
token sits in each forward call's input; the probe counts the decoder's forward calls (call
``step`` produces the logits of step ``step``) and, in that call only, copies the hidden state
at that position out of every module on the way, under the model's own module names:

- the embeddings (token, and position where the model has them: gpt2, opt);
- per decoder layer (the stack is found whatever it is called: ``model.layers``,
  ``model.decoder.layers``, ``transformer.h``, ``gpt_neox.layers``…): each child, labelled by
  what it does in this forward pass (see :func:`_child_role`), the residual stream after
  attention where the model has one (not on parallel-residual layers), and the layer output;
- one level deeper: the projections inside attention (q/k/v/o, or the fused qkv) and the MLP;
- the final norm (``norm``, ``final_layernorm``, ``final_layer_norm``, ``ln_f``…) and the LM head.

Roles come from the data flow observed in the call (which tensor each module was given), not
from module names, so post-norm (gemma2, olmo2) and parallel-residual (gpt_neox, phi, falcon)
layers are labelled by what they compute. Entries are kept in execution order, so the first
entry that differs between two engines is the first module where their computations part.

The outputs of the modules inside the layers are also kept for *every* position of the prompt's
row up to that step (as computed when each position was first fed), so that a divergent
position whose own inputs are equal can be traced to earlier positions' keys or values (the
padded prefill), and each earlier position to the first module where it parts. Past
POSITION_BUDGET floats only the key/value sources are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from gendiff.errors import GendiffError

# leaf projections by their usual names: what they compute
PROJECTIONS = {
    "q_proj": "query projection",
    "query": "query projection",
    "k_proj": "key projection",
    "key": "key projection",
    "v_proj": "value projection",
    "value": "value projection",
    "c_attn": "fused q/k/v projection",
    "query_key_value": "fused q/k/v projection",
    "qkv_proj": "fused q/k/v projection",
    "Wqkv": "fused q/k/v projection",
    "o_proj": "attention output projection",
    "out_proj": "attention output projection",
    "gate_proj": "mlp gate projection",
    "up_proj": "mlp up projection",
    "gate_up_proj": "mlp fused gate/up projection",
    "down_proj": "mlp down projection",
    "fc1": "mlp input projection",
    "c_fc": "mlp input projection",
    "fc_in": "mlp input projection",
    "dense_h_to_4h": "mlp input projection",
    "fc2": "mlp output projection",
    "fc_out": "mlp output projection",
    "dense_4h_to_h": "mlp output projection",
}
# in attention, these names are its output projection; in the MLP, its output projection
CONTEXT_PROJECTIONS = {"dense", "c_proj"}
KEY_VALUE_SOURCES = {"k_proj", "v_proj", "key", "value", "c_attn", "query_key_value", "qkv_proj", "Wqkv"}

LAYER_OUTPUT = "layer output"
POSITION_BUDGET = 1 << 26  # floats (256 MiB) of every-position outputs kept per probe; keys/values always
RESIDUAL = "residual after attention"
FINAL_NORM = "final norm"
LOGITS = "logits"


@dataclass(frozen=True)
class Captured:
    """What one probe entry is: its role, and its decoder layer (None outside the stack)."""

    role: str
    layer: int | None


class Probe:
    def __init__(self, prompt_index: int, step: int) -> None:
        self.prompt_index = prompt_index
        self.step = step
        self.captured: dict[str, Any] = {}  # name -> float32 vector, in execution order
        self.labels: dict[str, Captured] = {}  # name -> its role and layer
        # in-layer module name -> {sequence position of the prompt's row -> vector}, in execution order
        self.positions: dict[str, dict[int, Any]] = {}
        self.key_value_sources: list[str] = []  # the names in ``positions`` that give keys/values
        self.position_values = 0  # floats kept in ``positions``: past POSITION_BUDGET only keys/values are
        self.calls = 0

    @property
    def keys_values(self) -> dict[str, dict[int, Any]]:
        """Per key/value source, its output at every position of the row up to the probed step."""
        return {name: self.positions[name] for name in self.key_value_sources if name in self.positions}

    @contextmanager
    def attach(
        self, model: Any, row: int, prompt_length: int, locate: Callable[[int], tuple[int, int]]
    ) -> Iterator[None]:
        """Hook ``model`` for the duration of the block.

        Args:
            model: the ``*ForCausalLM`` module the engine runs.
            row: the prompt's index among the positions the LM head is applied to, when an
                engine applies it to the selected positions only (2D hidden states).
            prompt_length: the prompt's token count (its prefill occupies the ``prompt_length``
                positions ending at the located one).
            locate: ``locate(call)`` -> (batch row, position) of the prompt's last token in
                that forward call's input.
        """
        base = model.base_model
        stack_name, layers = decoder_layers(model)
        # count the calls of the module that runs the stack: OPTForCausalLM skips its base model's forward
        owner = model.get_submodule(stack_name.rpartition(".")[0])
        handles = [owner.register_forward_pre_hook(self._count)]
        names = {module: name for name, module in model.named_modules()}
        in_stack = {m for layer in layers for m in layer.modules()}

        def vector(value: Any, call: int) -> Any:
            if isinstance(value, tuple):
                value = value[0]
            if not hasattr(value, "dim"):
                return None
            if value.dim() == 3:
                batch_row, position = locate(call)
                # one row broadcast to the batch (position embeddings); one position kept (logits_to_keep)
                position = 0 if value.shape[1] == 1 else position
                return value[min(batch_row, value.shape[0] - 1), position]
            if value.dim() == 2:  # LM head applied to the selected positions only
                return value[row]
            return None

        def keep(name: str, value: Any, role: str, layer: int | None) -> None:
            v = vector(value, self.step)
            if v is not None:
                self.captured[name] = v.detach().float().clone()
                self.labels[name] = Captured(role, layer)

        def output_hook(name: str, role: str, layer: int | None, inside: bool = False) -> Callable[..., None]:
            def hook(module: Any, args: Any, output: Any) -> None:
                if self.calls - 1 != self.step:
                    return
                value = output[0] if isinstance(output, tuple) else output
                if inside and getattr(value, "dim", lambda: 0)() != 3:
                    return  # 2D inside a layer: tokens flattened (MoE routing), not one row per sequence
                keep(name, value, role, layer)

            return hook

        def position_hook(name: str, key_value: bool) -> Callable[..., None]:
            def hook(module: Any, args: Any, output: Any) -> None:
                call = self.calls - 1
                output = output[0] if isinstance(output, tuple) else output
                if call > self.step or getattr(output, "dim", lambda: 0)() != 3:
                    return
                if not key_value and self.position_values > POSITION_BUDGET:
                    return
                batch_row, last = locate(call)
                batch_row = min(batch_row, output.shape[0] - 1)  # one row broadcast to the batch (positions)
                last = last if last >= 0 else output.shape[1] + last
                # the prefill feeds the whole prompt; each later call one new token
                first = last - prompt_length + 1 if call == 0 else last
                start = 0 if call == 0 else prompt_length + call - 1
                stored = self.positions.setdefault(name, {})
                for offset, position in enumerate(range(first, last + 1)):
                    stored[start + offset] = output[batch_row, position].detach().float().clone()
                self.position_values += (last + 1 - first) * output.shape[-1]

            return hook

        for name, module in model.named_modules():
            if module in in_stack or module is layers:
                continue
            if _is_embedding(module) and name:
                role = "token embedding" if module is base.get_input_embeddings() else "position embedding"
                handles.append(module.register_forward_hook(output_hook(name, role, None)))
                # earlier positions too: a dtype split starts here at every position, not at layer 0
                handles.append(module.register_forward_hook(position_hook(name, False)))
        for index, layer in enumerate(layers):
            handles += self._hook_layer(layer, f"{stack_name}.{index}", index, output_hook, position_hook, keep)
        for module in base.modules():
            if module in in_stack or not _is_norm(module) or not _own_params(module):
                continue
            handles.append(module.register_forward_hook(self._norm_hook(names[module], keep)))
        head = model.get_output_embeddings()
        handles.append(head.register_forward_hook(output_hook(names.get(head, "lm_head"), LOGITS, None)))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _hook_layer(
        self,
        layer: Any,
        prefix: str,
        index: int,
        output_hook: Callable[..., Callable[..., None]],
        position_hook: Callable[[str, bool], Callable[..., None]],
        keep: Callable[[str, Any, str, int | None], None],
    ) -> list[Any]:
        """Hooks on one decoder layer: its children (roles from the data flow), their projections,
        the residual after attention, the layer output, and the key/value sources."""
        flow: dict[str, Any] = {"input": None, "attention": None, "mlp": None, "outputs": [], "residual": False}
        handles = []

        def layer_input(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
            if self.calls - 1 == self.step:
                flow.update(input=args[0] if args else kwargs.get("hidden_states"), attention=None, mlp=None)
                flow.update(outputs=[], residual=False)

        def child_input(child_name: str, kind: str) -> Callable[..., None]:
            def hook(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
                if self.calls - 1 != self.step:
                    return
                given = args[0] if args else next(iter(kwargs.values()), None)
                role = _child_role(child_name, kind, given, flow)
                flow.setdefault("roles", {})[child_name] = role
                produced = any(given is out for out in flow["outputs"])
                if (
                    flow["attention"] is not None
                    and not flow["residual"]
                    and not produced
                    and given is not flow["input"]
                ):
                    # a tensor no module made: the residual add after attention
                    flow["residual"] = True
                    keep(f"{prefix}.{child_name}:input", given, RESIDUAL, index)

            return hook

        def child_output(child_name: str, kind: str) -> Callable[..., None]:
            def hook(module: Any, args: Any, output: Any) -> None:
                if self.calls - 1 != self.step:
                    return
                value = output[0] if isinstance(output, tuple) else output
                flow["outputs"].append(value)
                if kind in ("attention", "mlp"):
                    flow[kind] = value
                keep(f"{prefix}.{child_name}", value, flow.get("roles", {}).get(child_name, kind), index)

            return hook

        handles.append(layer.register_forward_pre_hook(layer_input, with_kwargs=True))
        for child_name, child in layer.named_children():
            if not _own_params(child):
                continue  # dropout, rotary embeddings: nothing to compare
            kind = _kind(child_name, child)
            handles.append(child.register_forward_pre_hook(child_input(child_name, kind), with_kwargs=True))
            for leaf_name, leaf in _projections(child_name, child):
                role = _projection_role(leaf_name, kind)
                name = f"{prefix}.{leaf_name}"
                handles.append(leaf.register_forward_hook(output_hook(name, role, index, inside=True)))
                key_value = leaf_name.rsplit(".", 1)[-1] in KEY_VALUE_SOURCES
                if key_value:
                    self.key_value_sources.append(name)
                handles.append(leaf.register_forward_hook(position_hook(name, key_value)))
            handles.append(child.register_forward_hook(child_output(child_name, kind)))
            handles.append(child.register_forward_hook(position_hook(f"{prefix}.{child_name}", False)))
        handles.append(layer.register_forward_hook(output_hook(prefix, LAYER_OUTPUT, index)))
        handles.append(layer.register_forward_hook(position_hook(prefix, False)))
        return handles

    def _norm_hook(self, name: str, keep: Callable[[str, Any, str, int | None], None]) -> Callable[..., None]:
        """A norm outside the layer stack: the final norm, or (before any layer ran) an embedding norm."""

        def hook(module: Any, args: Any, output: Any) -> None:
            if self.calls - 1 == self.step:
                after = any(label.role == LAYER_OUTPUT for label in self.labels.values())
                keep(name, output, FINAL_NORM if after else "embedding norm", None)

        return hook

    def _count(self, module: Any, args: Any) -> None:
        self.calls += 1


def decoder_layers(model: Any) -> tuple[str, Any]:
    """The model's stack of decoder layers and its path, whatever it is called: the shallowest
    list of ``num_hidden_layers`` modules of one class (any list of one class if the config
    does not say). Raises GendiffError if the model has none."""
    import torch

    count = getattr(model.config, "num_hidden_layers", None)
    lists = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.ModuleList) and len(module) and len({type(m) for m in module}) == 1
    ]
    exact = [(name, module) for name, module in lists if len(module) == count]
    found = exact or lists
    if not found:
        raise GendiffError(f"bisection: {type(model).__name__} has no list of decoder layers to probe")
    return min(found, key=lambda item: (item[0].count("."), item[0]))


def _kind(name: str, module: Any) -> str:
    """attention, mlp, norm or module, from the child's class (and name, for plain Linear layers)."""
    cls = type(module).__name__.lower()
    if _is_norm(module):
        return "norm"
    if "attention" in cls or "attn" in cls or name in ("self_attn", "attn", "attention", "self_attention"):
        return "attention"
    if any(word in cls for word in ("mlp", "feedforward", "moe", "experts")) or name in ("mlp", "feed_forward"):
        return "mlp"
    if name in PROJECTIONS:
        return "projection"
    return "module"


def _child_role(name: str, kind: str, given: Any, flow: dict[str, Any]) -> str:
    """A norm's role from what it is given; the other kinds are what they are."""
    if kind == "projection":  # a projection straight in the layer (opt's fc1, fc2)
        return PROJECTIONS[name]
    if kind != "norm":
        return kind
    if flow["mlp"] is not None and given is flow["mlp"]:
        return "post-mlp norm"
    if flow["attention"] is not None and given is flow["attention"]:
        return "post-attention norm"  # post-norm layers (gemma2, olmo2): the attention output is normalized
    if given is flow["input"]:
        # before attention: its input norm; after it, the MLP branch of a parallel-residual layer
        return "input norm" if flow["attention"] is None else "pre-mlp norm (parallel branch)"
    if flow["attention"] is not None and flow["mlp"] is None:
        return "pre-mlp norm"
    return "norm"


def _projections(child_name: str, child: Any) -> list[tuple[str, Any]]:
    """The leaf modules with weights inside a layer's child (the child itself if it is a leaf)."""
    if not list(child.children()):
        return []
    return [
        (f"{child_name}.{name}", leaf)
        for name, leaf in child.named_modules()
        if name and not list(leaf.children()) and _own_params(leaf) and not _is_norm(leaf)
    ]


def _projection_role(name: str, kind: str) -> str:
    short = name.rsplit(".", 1)[-1]
    if short in PROJECTIONS:
        return PROJECTIONS[short]
    if short in CONTEXT_PROJECTIONS:
        return "attention output projection" if kind == "attention" else "mlp output projection"
    return f"{kind} projection"


def _is_norm(module: Any) -> bool:
    return "norm" in type(module).__name__.lower()


def _is_embedding(module: Any) -> bool:
    import torch

    return isinstance(module, torch.nn.Embedding)


def _own_params(module: Any) -> bool:
    return any(True for _ in module.parameters())

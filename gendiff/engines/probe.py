"""Capture every module's output at one token position in one forward pass (for bisection).

A :class:`Probe` names a prompt and a step. The engine that runs that prompt attaches it to
its model around its decode loop, saying where the prompt's last token sits in each forward
call's input; the probe counts the decoder's forward calls (call ``step`` produces the logits
of step ``step``) and, in that call only, copies the hidden state at that position out of:

- ``embed_tokens``;
- per decoder layer ``layers.N``: ``input_layernorm``, ``self_attn``, the residual stream after
  attention (``attn_residual``: the input of ``post_attention_layernorm``), the
  ``post_attention_layernorm``, ``mlp`` and the layer output (the residual after the MLP);
- the final ``norm`` and the LM head's ``logits``.

Entries are kept in the order the model ran them, so the first entry that differs between two
engines is the first module where their computations part.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from gendiff.errors import GendiffError


class Probe:
    def __init__(self, prompt_index: int, step: int) -> None:
        self.prompt_index = prompt_index
        self.step = step
        self.captured: dict[str, Any] = {}  # name -> float32 vector, in execution order
        self.calls = 0

    @contextmanager
    def attach(self, model: Any, row: int, locate: Callable[[int], tuple[int, int]]) -> Iterator[None]:
        """``locate(call)``: (batch row, position) of the prompt's last token in that forward call's
        input; ``row``: its index among the positions the LM head is applied to, when only those are."""
        base = model.base_model
        layers = getattr(base, "layers", None)
        if layers is None:
            raise GendiffError(
                f"bisection: {type(model).__name__} has no decoder `layers` list; Llama-style models are supported"
            )
        handles = [base.register_forward_pre_hook(self._count)]

        def capture(name: str, take_input: bool = False) -> Callable[..., None]:
            def hook(module: Any, args: Any, output: Any = None) -> None:
                if self.calls - 1 != self.step:
                    return
                value = args[0] if take_input else output
                if isinstance(value, tuple):
                    value = value[0]
                if value.dim() == 3:
                    vector = value[locate(self.step)]
                elif value.dim() == 2:  # LM head applied to the selected positions only
                    vector = value[row]
                else:
                    return
                self.captured[name] = vector.detach().float().clone()

            return hook

        def watch(module: Any, name: str) -> None:
            handles.append(module.register_forward_hook(capture(name)))

        embed = base.get_input_embeddings()
        watch(embed, "embed_tokens")
        for index, layer in enumerate(layers):
            prefix = f"layers.{index}"
            for child_name, child in layer.named_children():
                if child_name == "post_attention_layernorm":
                    handles.append(child.register_forward_pre_hook(capture(f"{prefix}.attn_residual", take_input=True)))
                watch(child, f"{prefix}.{child_name}")
            watch(layer, prefix)
        if getattr(base, "norm", None) is not None:
            watch(base.norm, "norm")
        watch(model.get_output_embeddings(), "logits")
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _count(self, module: Any, args: Any) -> None:
        self.calls += 1

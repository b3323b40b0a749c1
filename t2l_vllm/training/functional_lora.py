"""Apply generated LoRA factors to a frozen transformers base model, per example.

During SFT every example in a batch has its own adapter (its own description),
so PEFT's one-adapter-per-module layers do not fit, and re-instantiating PEFT
each step would be slow. Instead a forward hook on every target module adds

    y[b] += scaling * (x[b] @ A[b, l].T) @ B[b, l].T

for layer l, with A: [batch, layers, r, d_in] and B: [batch, layers, d_out, r]
straight from the hypernetwork, so gradients flow back into it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from t2l_vllm.hypernet import LoraFactors
from t2l_vllm.peft_format import module_path
from t2l_vllm.target_spec import TargetSpec


def target_modules(model: nn.Module, spec: TargetSpec) -> dict[tuple[str, int], nn.Module]:
    """(module name, layer) -> the nn.Linear the adapter patches, checked against the spec's shapes."""
    found = {}
    for m in spec.modules:
        for layer in range(spec.num_layers):
            path = module_path(layer, m.parent, m.name)
            try:
                mod = model.get_submodule(path)
            except AttributeError:
                raise ValueError(f"base model has no module {path}; is it the model the hypernetwork was made for?") from None
            if (mod.in_features, mod.out_features) != (m.in_features, m.out_features):
                raise ValueError(
                    f"{path} is {mod.in_features}->{mod.out_features}, the spec says {m.in_features}->{m.out_features}"
                )
            found[(m.name, layer)] = mod
    return found


@contextmanager
def lora_applied(
    modules: dict[tuple[str, int], nn.Module], lora: LoraFactors
) -> Iterator[None]:
    """Within the block, the base model computes with the batch's adapters added."""
    handles = []

    def make_hook(a: torch.Tensor, b: torch.Tensor):
        # a: [batch, r, d_in], b: [batch, d_out, r]
        def hook(module, inputs, output):
            x = inputs[0]  # [batch, seq, d_in]
            if x.shape[0] != a.shape[0]:
                raise ValueError(f"batch of {x.shape[0]} inputs but {a.shape[0]} adapters")
            h = torch.einsum("bsi,bri->bsr", x.to(a.dtype), a)
            delta = torch.einsum("bsr,bor->bso", h, b) * lora.scaling
            return output + delta.to(output.dtype)

        return hook

    try:
        for (name, layer), mod in modules.items():
            a, b = lora.factors[name]
            handles.append(mod.register_forward_hook(make_hook(a[:, layer], b[:, layer])))
        yield
    finally:
        for h in handles:
            h.remove()

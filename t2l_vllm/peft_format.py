"""PEFT's on-disk LoRA layout, in one place: file names, tensor names, config.

Both PEFT (`PeftModel.from_pretrained`) and vLLM (`LoRAModel.from_local_checkpoint`)
read a folder with

    adapter_config.json          the LoraConfig (rank, alpha, rsLoRA, target modules)
    adapter_model.safetensors    base_model.model.<module path>.lora_{A|B}.weight
                                 A: [r, d_in], B: [d_out, r]

for decoder layouts `model.layers.{layer}.{self_attn|mlp}.{module}` (target_spec.py).
"""

from __future__ import annotations

from typing import Any

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
# PeftModel wraps the base model as `base_model.model`.
KEY_PREFIX = "base_model.model."


def module_path(layer: int, parent: str, module: str) -> str:
    """The transformers submodule path of one target linear, e.g. model.layers.3.self_attn.q_proj."""
    return f"model.layers.{layer}.{parent}.{module}"


def tensor_key(layer: int, parent: str, module: str, ab: str) -> str:
    """PEFT's tensor name for one LoRA factor, `ab` being "A" or "B"."""
    if ab not in ("A", "B"):
        raise ValueError(f"a LoRA factor is 'A' or 'B', got {ab!r}")
    return f"{KEY_PREFIX}{module_path(layer, parent, module)}.lora_{ab}.weight"


def lora_kwargs(rank: int, alpha: float, use_rslora: bool, target_modules: list[str]) -> dict[str, Any]:
    """The LoraConfig fields that decide what an adapter computes: `peft.LoraConfig(**lora_kwargs(...))`."""
    return {
        "r": rank,
        "lora_alpha": alpha,
        "use_rslora": use_rslora,
        "target_modules": list(target_modules),
        "lora_dropout": 0.0,
        "bias": "none",
        "task_type": "CAUSAL_LM",
    }


def adapter_config(rank: int, alpha: float, use_rslora: bool, target_modules: list[str],
                   base_model_name: str) -> dict[str, Any]:
    """The full `adapter_config.json` of an emitted adapter, saying exactly how it applies.

    vLLM's PEFTHelper rejects DoRA, LoRA bias and modules_to_save, so they are off.
    """
    return {
        "peft_type": "LORA",
        "base_model_name_or_path": base_model_name,
        **lora_kwargs(rank, alpha, use_rslora, target_modules),
        "fan_in_fan_out": False,
        "use_dora": False,
        "modules_to_save": None,
        "init_lora_weights": True,
        "inference_mode": True,
    }

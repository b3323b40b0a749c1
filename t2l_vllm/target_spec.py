"""Which linear layers of a base model an adapter targets, and their shapes.

Everything here is derived from the base model's `config.json` alone: the
hypernetwork needs shapes, never weights, so no base model is loaded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from . import peft_format

# Decoder families whose layer layout is `model.layers.{i}.self_attn.{q,k,v,o}_proj`
# and `model.layers.{i}.mlp.{gate,up,down}_proj`.
SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2")

ATTENTION_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_MODULES = ("gate_proj", "up_proj", "down_proj")
DEFAULT_TARGET_MODULES = ("q_proj", "v_proj")
# transformers' model config file in a base (or encoder) model folder.
MODEL_CONFIG_FILE = "config.json"

# Fields that decide every target shape; their values form the base fingerprint.
_SHAPE_FIELDS = (
    "model_type",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
)


@dataclass(frozen=True)
class ModuleShape:
    """One target module type: `y = W x` with W of shape [out_features, in_features]."""

    name: str
    parent: str  # "self_attn" or "mlp"
    in_features: int
    out_features: int


@dataclass(frozen=True)
class TargetSpec:
    """Shapes of every module an adapter touches, identical across layers."""

    model_type: str
    num_layers: int
    modules: tuple[ModuleShape, ...]
    base_fingerprint: str

    def __post_init__(self) -> None:
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")
        if not self.modules:
            raise ValueError("a target spec needs at least one module")
        names = [m.name for m in self.modules]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate target modules: {names}")

    @property
    def module_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.modules)

    def module(self, name: str) -> ModuleShape:
        for m in self.modules:
            if m.name == name:
                return m
        raise ValueError(f"module {name!r} is not in this target spec {self.module_names}")

    def peft_key(self, layer: int, module: str, ab: str) -> str:
        """PEFT's tensor name for one LoRA factor, `ab` being "A" or "B"."""
        return peft_format.tensor_key(layer, self.module(module).parent, module, ab)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_type": self.model_type,
            "num_layers": self.num_layers,
            "modules": [
                {
                    "name": m.name,
                    "parent": m.parent,
                    "in_features": m.in_features,
                    "out_features": m.out_features,
                }
                for m in self.modules
            ],
            "base_fingerprint": self.base_fingerprint,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TargetSpec":
        try:
            return cls(
                model_type=str(d["model_type"]),
                num_layers=int(d["num_layers"]),
                modules=tuple(
                    ModuleShape(
                        name=str(m["name"]),
                        parent=str(m["parent"]),
                        in_features=int(m["in_features"]),
                        out_features=int(m["out_features"]),
                    )
                    for m in d["modules"]
                ),
                base_fingerprint=str(d["base_fingerprint"]),
            )
        except (KeyError, TypeError) as e:
            raise ValueError(f"malformed target spec {dict(d)!r}: {e}") from e


def _head_dim(cfg: Mapping[str, Any]) -> int:
    head_dim = cfg.get("head_dim")
    if head_dim:
        return int(head_dim)
    return int(cfg["hidden_size"]) // int(cfg["num_attention_heads"])


# (in_features, out_features) of each module type, as a function of config.json.
_SHAPES: dict[str, tuple[str, Callable[[Mapping[str, Any]], tuple[int, int]]]] = {
    "q_proj": ("self_attn", lambda c: (c["hidden_size"], c["num_attention_heads"] * _head_dim(c))),
    "k_proj": ("self_attn", lambda c: (c["hidden_size"], c["num_key_value_heads"] * _head_dim(c))),
    "v_proj": ("self_attn", lambda c: (c["hidden_size"], c["num_key_value_heads"] * _head_dim(c))),
    "o_proj": ("self_attn", lambda c: (c["num_attention_heads"] * _head_dim(c), c["hidden_size"])),
    "gate_proj": ("mlp", lambda c: (c["hidden_size"], c["intermediate_size"])),
    "up_proj": ("mlp", lambda c: (c["hidden_size"], c["intermediate_size"])),
    "down_proj": ("mlp", lambda c: (c["intermediate_size"], c["hidden_size"])),
}


def base_fingerprint(cfg: Mapping[str, Any]) -> str:
    """Short hash of the config fields that fix every target shape and the vocabulary."""
    fields = {k: cfg.get(k) for k in _SHAPE_FIELDS}
    if not fields.get("head_dim"):
        fields["head_dim"] = _head_dim(cfg)
    if not fields.get("num_key_value_heads"):
        fields["num_key_value_heads"] = cfg.get("num_attention_heads")
    blob = json.dumps(fields, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def read_base_config(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / MODEL_CONFIG_FILE
    if not path.is_file():
        raise ValueError(f"base model folder {str(model_dir)!r} has no {MODEL_CONFIG_FILE}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e


def target_spec_from_config(
    cfg: Mapping[str, Any], target_modules: tuple[str, ...] | list[str] = DEFAULT_TARGET_MODULES
) -> TargetSpec:
    """Derive the target spec from a base model's parsed `config.json`."""
    model_type = cfg.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"unsupported base model type {model_type!r}; supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    cfg = dict(cfg)
    cfg.setdefault("num_key_value_heads", cfg.get("num_attention_heads"))
    if not target_modules:
        raise ValueError("target_modules is empty; name at least one of " + ", ".join(_SHAPES))
    modules = []
    for name in target_modules:
        if name not in _SHAPES:
            raise ValueError(f"unknown target module {name!r}; choose from {', '.join(_SHAPES)}")
        parent, shape_fn = _SHAPES[name]
        try:
            d_in, d_out = shape_fn(cfg)
        except KeyError as e:
            raise ValueError(f"base config lacks field {e} needed for {name}") from e
        modules.append(ModuleShape(name, parent, int(d_in), int(d_out)))
    return TargetSpec(
        model_type=str(model_type),
        num_layers=int(cfg["num_hidden_layers"]),
        modules=tuple(modules),
        base_fingerprint=base_fingerprint(cfg),
    )


def target_spec_from_dir(
    model_dir: str | Path, target_modules: tuple[str, ...] | list[str] = DEFAULT_TARGET_MODULES
) -> TargetSpec:
    return target_spec_from_config(read_base_config(model_dir), target_modules)

"""Every environment variable t2l-vllm reads is read here.

Library code calls these functions at the moment it needs a value; nothing is
read at import time, so tests can set variables per test. The serving
settings' variables (T2L_VLLM_ADAPTER_DIR, ...) are declared with their
defaults on `serving.config.ServeConfig` and read through `get`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping


def get(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The variable's value, or None when it is unset or empty."""
    value = (os.environ if environ is None else environ).get(name)
    return value if value not in (None, "") else None


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Root folder for converted default models, adapters and other derived files.

    `T2L_VLLM_CACHE` overrides the default `~/.cache/t2l_vllm`.
    """
    override = get("T2L_VLLM_CACHE", environ)
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "t2l_vllm"


def lora_ops() -> str:
    """`T2L_VLLM_LORA_OPS`: "t2l" (default) installs our grouped CPU LoRA ops, "vllm" keeps vLLM's."""
    value = (get("T2L_VLLM_LORA_OPS") or "t2l").lower()
    if value not in ("t2l", "vllm"):
        raise ValueError(f"T2L_VLLM_LORA_OPS must be 't2l' or 'vllm', got {value!r}")
    return value


def fused_lora() -> bool:
    """`T2L_VLLM_FUSED`: "1" (default) uses the compiled LoRA op where it is built, "0" the torch ops."""
    value = get("T2L_VLLM_FUSED") or "1"
    if value not in ("0", "1"):
        raise ValueError(f"T2L_VLLM_FUSED must be '0' or '1', got {value!r}")
    return value == "1"

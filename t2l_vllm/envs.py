"""Every environment variable t2l-vllm reads, in one place.

Library code calls these functions at the moment it needs a value; nothing is
read at import time, so tests can set variables per test.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_dir() -> Path:
    """Root folder for converted default models and other derived files.

    `T2L_VLLM_CACHE` overrides the default `~/.cache/t2l_vllm`.
    """
    override = os.environ.get("T2L_VLLM_CACHE")
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "t2l_vllm"


def _get(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def _int(name: str, default: int) -> int:
    raw = _get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from None


def hypernet_dir() -> str | None:
    """`T2L_VLLM_HYPERNET`: the checkpoint the server loads (default: the embedded one)."""
    return _get("T2L_VLLM_HYPERNET")


def adapter_dir() -> Path:
    """`T2L_VLLM_ADAPTER_DIR`: durable adapter folder (default: cache/adapters)."""
    raw = _get("T2L_VLLM_ADAPTER_DIR")
    return Path(raw).expanduser() if raw else cache_dir() / "adapters"


def fast_dir(durable: Path) -> Path | None:
    """`T2L_VLLM_FAST_DIR`: tmpfs folder vLLM reads adapters from ("none" turns the tier off).

    The default is private to the durable folder, so two servers with different
    adapter folders never evict each other's fast copies.
    """
    raw = _get("T2L_VLLM_FAST_DIR")
    if raw == "none":
        return None
    if raw:
        return Path(raw).expanduser()
    shm = Path("/dev/shm")
    if not shm.is_dir():
        return None
    tag = hashlib.sha256(str(durable.resolve()).encode()).hexdigest()[:12]
    return shm / f"t2l_vllm-{os.getuid()}" / tag


def max_disk_adapters() -> int:
    return _int("T2L_VLLM_MAX_DISK_ADAPTERS", 1024)


def max_engine_adapters() -> int:
    return _int("T2L_VLLM_MAX_ENGINE_ADAPTERS", 32)


def max_description_chars() -> int:
    return _int("T2L_VLLM_MAX_DESCRIPTION_CHARS", 4000)


def device() -> str | None:
    """`T2L_VLLM_DEVICE`: where the hypernetwork runs (default: cuda when present, else cpu)."""
    return _get("T2L_VLLM_DEVICE")


def lora_ops() -> str:
    """`T2L_VLLM_LORA_OPS`: "t2l" (default) installs our grouped CPU LoRA ops, "vllm" keeps vLLM's."""
    value = (_get("T2L_VLLM_LORA_OPS") or "t2l").lower()
    if value not in ("t2l", "vllm"):
        raise ValueError(f"T2L_VLLM_LORA_OPS must be 't2l' or 'vllm', got {value!r}")
    return value

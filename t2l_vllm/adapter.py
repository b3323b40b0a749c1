"""Generated LoRA factors as PEFT adapters: naming, validation, tensors, folders.

An adapter folder holds `adapter_config.json` + `adapter_model.safetensors`, the
layout both PEFT and vLLM (`LoRAModel.from_local_checkpoint`) read. Its id is a
content hash of the normalised description and the hypernetwork digest, so no
user text ever reaches a path and the same inputs always name the same adapter.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import unicodedata
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import save_file

from . import peft_format
from .config import HypernetConfig
from .hypernet import LoraFactors
from .peft_format import CONFIG_FILE, WEIGHTS_FILE

ADAPTER_PREFIX = "t2l-"
ID_HEX_CHARS = 32
ADAPTER_ID_RE = re.compile(rf"^{ADAPTER_PREFIX}[0-9a-f]{{{ID_HEX_CHARS}}}$")
DEFAULT_MAX_DESCRIPTION_CHARS = 4000


def normalize_description(text: object, max_chars: int = DEFAULT_MAX_DESCRIPTION_CHARS) -> str:
    """Validate a task description and return its canonical form.

    Canonical: Unicode NFC, whitespace runs collapsed to one space, trimmed.
    Two descriptions that differ only in those respects name the same adapter.
    """
    if not isinstance(text, str):
        raise ValueError(f"task_description must be a string, got {type(text).__name__}")
    norm = " ".join(unicodedata.normalize("NFC", text).split())
    if not norm:
        raise ValueError("task_description is empty or whitespace only; describe the task in words")
    if len(norm) > max_chars:
        raise ValueError(f"task_description is {len(norm)} characters long; the limit is {max_chars}")
    return norm


def adapter_id(normalized_description: str, hypernet_digest: str) -> str:
    """`t2l-<32 hex>`: sha256 of (description, checkpoint digest)."""
    h = hashlib.sha256()
    h.update(hypernet_digest.encode())
    h.update(b"\0")
    h.update(normalized_description.encode("utf-8"))
    return ADAPTER_PREFIX + h.hexdigest()[:ID_HEX_CHARS]


def validate_adapter_id(name: str) -> str:
    """Reject anything but `t2l-` + lowercase hex before it is used in a path."""
    if not isinstance(name, str) or not ADAPTER_ID_RE.match(name):
        raise ValueError(f"invalid adapter id {name!r}: expected {ADAPTER_PREFIX} followed by {ID_HEX_CHARS} hex digits")
    return name


def adapter_tensors(factors: LoraFactors, config: HypernetConfig, dtype: torch.dtype,
                    to_host: Callable[[list[torch.Tensor], torch.dtype], list[torch.Tensor]] | None = None
                    ) -> dict[str, torch.Tensor]:
    """PEFT-named tensors of the single adapter in `factors` (batch size 1).

    Keys: `peft_format.tensor_key`, with A: [r, d_in] and B: [d_out, r].
    `to_host` brings factors from an accelerator (default: a `HostCopier` of its own).
    """
    if factors.batch_size != 1:
        raise ValueError(f"adapter_tensors takes one adapter, got a batch of {factors.batch_size}")
    spec = config.target
    host = (to_host or HostCopier())([t[0].detach() for pair in factors.factors.values() for t in pair], dtype)
    out = {}
    for module, a, b in zip(factors.factors, host[0::2], host[1::2]):  # a: [L, r, d_in], b: [L, d_out, r]
        for layer in range(spec.num_layers):
            out[spec.peft_key(layer, module, "A")] = a[layer].contiguous()
            out[spec.peft_key(layer, module, "B")] = b[layer].contiguous()
    return out


class HostCopier:
    """Brings tensors to the CPU in a dtype; from an accelerator, through one reused pinned buffer.

    Cast on the device, one flat copy into page-locked memory (DMA), then one
    CPU copy into memory the caller owns. Measured on an H200 for a
    7B-shaped adapter (6.8 MB bf16, benchmarks/gpu_check.py): a copy straight
    into fresh pageable memory took ~4 ms while earlier adapters were still
    held (as a batch holds them), this way 0.71 ms; a fresh pinned buffer per
    adapter would be faster still but keeps page-locked memory for every
    adapter in flight. The results are non-overlapping views of one buffer,
    which safetensors writes as separate tensors. Thread-safe.
    """

    def __init__(self):
        self._staging: torch.Tensor | None = None  # [numel] pinned, grown on demand
        self._lock = threading.Lock()

    def __call__(self, tensors: list[torch.Tensor], dtype: torch.dtype) -> list[torch.Tensor]:
        if all(t.device.type == "cpu" for t in tensors):
            return [t.to(dtype) for t in tensors]
        flat = torch.cat([t.to(dtype).reshape(-1) for t in tensors])  # [sum of numels], on the device
        with self._lock:
            if self._staging is None or self._staging.dtype != dtype or self._staging.numel() < flat.numel():
                self._staging = torch.empty(flat.numel(), dtype=dtype, pin_memory=True)
            staged = self._staging[: flat.numel()]
            staged.copy_(flat)  # synchronous: returns once the data is on the host
            host = staged.clone()
        return [part.view(t.shape) for part, t in zip(host.split([t.numel() for t in tensors]), tensors)]


def adapter_config(config: HypernetConfig, base_model_name: str) -> dict[str, Any]:
    """The PEFT LoraConfig that says exactly how the tensors were trained to be applied."""
    return peft_format.adapter_config(
        config.rank, config.alpha, config.use_rslora, list(config.target.module_names), base_model_name
    )


def write_adapter(
    tensors: dict[str, torch.Tensor],
    peft_config: dict[str, Any],
    out_dir: str | Path,
    extra_files: Callable[[Path], dict[str, bytes]] | None = None,
) -> Path:
    """Write an adapter folder atomically: a reader sees all of it or none of it.

    extra_files: called with the finished temp folder, returns more files to put
    in it before the rename (the store's metadata, which records a digest of the
    PEFT files). An existing complete folder is left as it is: with
    content-addressed ids the same name always holds the same bytes.
    """
    out_dir = Path(out_dir)
    if (out_dir / WEIGHTS_FILE).is_file() and (out_dir / CONFIG_FILE).is_file():
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes 0700; a server under another user must read it
    try:
        # One metadata key only: safetensors orders several keys arbitrarily,
        # which would break byte-identical files for identical adapters.
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        (tmp / CONFIG_FILE).write_text(json.dumps(peft_config, indent=2, sort_keys=True) + "\n")
        for name, data in (extra_files(tmp) if extra_files else {}).items():
            (tmp / name).write_bytes(data)
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
        try:
            os.rename(tmp, out_dir)
        except OSError:
            # Another writer won the race with identical content; keep theirs.
            if not (out_dir / WEIGHTS_FILE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir

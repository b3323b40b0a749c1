"""Hypernetwork checkpoints: a folder with `config.json` and `model.safetensors`.

`load_hypernet(dir)` returns one ready `HyperLoRA` (eval mode, float32).
`hypernet_digest(net)` is the content hash that, with a description, names an
adapter: any change to config or weights changes every adapter id.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import HypernetConfig
from .confidence import ConfidenceIndex
from .hypernet import HyperLoRA
from .target_spec import base_fingerprint

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def hypernet_digest(net: HyperLoRA) -> str:
    """sha256 over the canonical config and every tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256()
    h.update(json.dumps(net.config.to_dict(), sort_keys=True).encode())
    for name, t in sorted(net.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_hypernet(
    net: HyperLoRA, out_dir: str | Path, dtype: torch.dtype = torch.float32, metadata: Mapping[str, Any] | None = None,
    confidence: ConfidenceIndex | None = None,
) -> Path:
    """Write `config.json` + `model.safetensors` (+ `confidence.safetensors`) atomically (temp folder, then rename)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
    cfg = net.config.to_dict()
    if metadata:
        cfg["metadata"] = dict(metadata)
    (tmp / CONFIG_NAME).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    if confidence is not None:
        confidence.save(tmp)
    # mkdtemp makes the folder private; a checkpoint is meant to be read by others (servers, installs).
    os.chmod(tmp, 0o755)
    for f in tmp.iterdir():
        os.chmod(f, 0o644)
    if out_dir.exists():
        # Replace an older checkpoint: move it aside first so a reader never sees half of each.
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
        os.rename(out_dir, old / "ckpt")
        os.rename(tmp, out_dir)
        for p in (old / "ckpt").iterdir():
            p.unlink()
        (old / "ckpt").rmdir()
        old.rmdir()
    else:
        os.rename(tmp, out_dir)
    return out_dir


def read_hypernet_config(ckpt_dir: str | Path) -> tuple[HypernetConfig, dict[str, Any]]:
    """Parse a checkpoint's config.json: (config, metadata)."""
    path = Path(ckpt_dir) / CONFIG_NAME
    if not path.is_file():
        raise ValueError(f"{str(ckpt_dir)!r} is not a hypernetwork checkpoint: no {CONFIG_NAME}")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"corrupt checkpoint config {path}: {e}") from e
    if not isinstance(raw, dict):
        raise ValueError(f"corrupt checkpoint config {path}: expected a JSON object")
    metadata = raw.pop("metadata", {}) or {}
    return HypernetConfig.from_dict(raw), metadata


def load_hypernet(ckpt_dir: str | Path, device: str | torch.device = "cpu") -> HyperLoRA:
    """Load a checkpoint folder into an eval-mode float32 `HyperLoRA` on `device`."""
    config, _ = read_hypernet_config(ckpt_dir)
    weights = Path(ckpt_dir) / WEIGHTS_NAME
    if not weights.is_file():
        raise ValueError(f"checkpoint {str(ckpt_dir)!r} has no {WEIGHTS_NAME}")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ValueError(f"corrupt checkpoint weights {weights}: {e}") from e
    net = HyperLoRA(config)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {weights} does not match its config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise ValueError(f"checkpoint tensor {k} has shape {tuple(v.shape)}, config implies {tuple(expected[k].shape)}")
    net.load_state_dict({k: v.float() for k, v in state.items()})
    return net.to(device).eval()


def check_base_compatible(config: HypernetConfig, base_config: Mapping[str, Any], base_name: str = "base model") -> None:
    """Raise ValueError when a checkpoint was made for a different base architecture."""
    found = base_fingerprint(base_config)
    if found != config.target.base_fingerprint:
        raise ValueError(
            f"hypernetwork was made for a {config.target.model_type} base with fingerprint "
            f"{config.target.base_fingerprint} ({config.target.num_layers} layers); {base_name} has "
            f"model_type={base_config.get('model_type')!r}, {base_config.get('num_hidden_layers')} layers, "
            f"fingerprint {found}. Use a checkpoint trained for this base model."
        )

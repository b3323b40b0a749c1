"""Adapter files on disk: a durable tier and an optional tmpfs tier.

    <durable root>/<adapter_id>/adapter_config.json, adapter_model.safetensors, t2l.json
    <fast root>/<adapter_id>/   the same PEFT files, in memory (/dev/shm)

vLLM's worker reads adapters inside the engine loop, so it is pointed at the
fast tier: registration is a memory copy, not a disk read that stalls the batch.
The durable tier survives restarts. Ids are validated before they touch a path.
Synchronous and thread-safe per adapter (writes are atomic renames).
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..adapter import validate_adapter_id, write_adapter
from ..peft_format import CONFIG_FILE, WEIGHTS_FILE

META_FILE = "t2l.json"


@dataclass(frozen=True)
class StoredAdapter:
    adapter_id: str
    description: str
    created: float
    size_bytes: int


class AdapterStore:
    """Content-addressed adapter folders under one durable root (+ one fast root)."""

    def __init__(self, durable_root: Path, fast_root: Path | None = None):
        self.durable_root = Path(durable_root)
        self.fast_root = Path(fast_root) if fast_root else None
        self.durable_root.mkdir(parents=True, exist_ok=True)
        if self.fast_root:
            self.fast_root.mkdir(parents=True, exist_ok=True)

    def _durable(self, adapter_id: str) -> Path:
        return self.durable_root / validate_adapter_id(adapter_id)

    def exists(self, adapter_id: str) -> bool:
        d = self._durable(adapter_id)
        return (d / WEIGHTS_FILE).is_file() and (d / META_FILE).is_file()

    def put(self, adapter_id: str, tensors: dict, peft_config: dict, description: str) -> Path:
        """Write the adapter to both tiers; returns the folder vLLM should load."""
        d = self._durable(adapter_id)
        write_adapter(tensors, peft_config, d)
        if not (d / META_FILE).is_file():
            meta = {"adapter_id": adapter_id, "description": description, "created": time.time()}
            tmp = d / f".{META_FILE}.tmp"
            tmp.write_text(json.dumps(meta, indent=2) + "\n")
            tmp.rename(d / META_FILE)
        if self.fast_root:
            write_adapter(tensors, peft_config, self.fast_root / adapter_id)
            return self.fast_root / adapter_id
        return d

    def load_path(self, adapter_id: str) -> Path:
        """The folder vLLM should load, restoring the fast copy from the durable one if needed."""
        d = self._durable(adapter_id)
        if not self.exists(adapter_id):
            raise KeyError(adapter_id)
        if not self.fast_root:
            return d
        fast = self.fast_root / adapter_id
        if not (fast / WEIGHTS_FILE).is_file():
            tmp = self.fast_root / f".{adapter_id}.restore"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            for name in (CONFIG_FILE, WEIGHTS_FILE):
                shutil.copyfile(d / name, tmp / name)
            try:
                tmp.rename(fast)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)  # a concurrent restore won
        return fast

    def info(self, adapter_id: str) -> StoredAdapter:
        d = self._durable(adapter_id)
        try:
            meta = json.loads((d / META_FILE).read_text())
            size = sum((d / n).stat().st_size for n in (CONFIG_FILE, WEIGHTS_FILE))
        except (OSError, json.JSONDecodeError) as e:
            raise KeyError(adapter_id) from e
        return StoredAdapter(adapter_id, meta.get("description", ""), float(meta.get("created", 0.0)), size)

    def ids(self) -> list[str]:
        """Stored adapters, oldest use first (by folder mtime, which `touch` refreshes)."""
        found = []
        for d in self.durable_root.iterdir():
            try:
                validate_adapter_id(d.name)
            except ValueError:
                continue  # temp folders and anything else that is not ours
            if (d / META_FILE).is_file():
                found.append((d.stat().st_mtime, d.name))
        return [name for _, name in sorted(found)]

    def touch(self, adapter_id: str) -> None:
        """Record a use, so LRU order survives a restart."""
        try:
            self._durable(adapter_id).touch()
        except OSError:
            pass

    def delete(self, adapter_id: str) -> None:
        validate_adapter_id(adapter_id)
        for root in (self.fast_root, self.durable_root):
            if root is None:
                continue
            folder = root / adapter_id
            if folder.exists():
                # Rename first so no reader ever sees a half-deleted folder.
                trash = root / f".{adapter_id}.deleted-{time.monotonic_ns()}"
                folder.rename(trash)
                shutil.rmtree(trash, ignore_errors=True)

    def archive(self, adapter_id: str) -> bytes:
        """A .tar.gz of the PEFT folder (`<adapter_id>/adapter_config.json`, weights)."""
        d = self._durable(adapter_id)
        if not self.exists(adapter_id):
            raise KeyError(adapter_id)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name in (CONFIG_FILE, WEIGHTS_FILE):
                tar.add(d / name, arcname=f"{adapter_id}/{name}")
        return buf.getvalue()

"""A folder of adapters several servers share: each adapter generated once, loaded by all.

    <root>/adapters/<adapter_id>/   complete adapter folders in the durable tier's layout (t2l.json included)
    <root>/locks/<00..ff>.lock      flock stripes: who is generating an id right now, across processes and hosts

Every server keeps its private adapter folder as before (its own LRU, fast tier and
ownership lock); the shared folder is what they have in common
(`t2l-vllm serve --shared-adapter-dir`, set for every replica by `serve-cluster`).
The adapter service consults it before generating:

    private copy?  -> use it
    shared copy?   -> adopt it into the private folder (verified copy, atomic rename)
    neither        -> take the id's lock; shared copy now? adopt it. Still none:
                      generate, write the private copy, publish it here, release.

The lock only saves work: correctness comes from content addressing (one id, one
content) and atomic renames (a reader sees a whole folder or none), so two writers
of one id, or a writer that gave up waiting (`LOCK_TIMEOUT_S`), write the same bytes.
The kernel drops a lock when its holder dies, `kill -9` too.
Locks are striped by id (`LOCK_STRIPES` files, never deleted, so no unlink race):
two new ids in one stripe generate one after the other, a few hundred ms at most.

Nobody owns the folder: the sweep removes only temp entries older than
STALE_TEMP_SECONDS, and nothing is evicted (size it like a database of adapters).
Needs a file system every server sees with working `flock`: a local disk for the
servers of one host; NFSv4, CephFS or similar across hosts.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..adapter import validate_adapter_id
from .store import AdapterStore, StoredAdapter

ADAPTERS = "adapters"
LOCKS = "locks"
LOCK_STRIPES = 256
# Longest wait for another server's generation of an id before generating it too.
LOCK_TIMEOUT_S = 60.0
LOCK_POLL_S = 0.05


class SharedAdapterStore:
    """Adapters published by every server of a cluster, and the locks that make generation happen once."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.store = AdapterStore(self.root / ADAPTERS)  # never claimed, no fast tier
        self.lock_dir = self.root / LOCKS
        self.lock_dir.mkdir(parents=True, exist_ok=True)

    def has(self, adapter_id: str) -> bool:
        return self.store.exists(adapter_id)

    def folder(self, adapter_id: str) -> Path:
        return self.store.durable_root / validate_adapter_id(adapter_id)

    def import_into(self, adapter_id: str, local: AdapterStore) -> bool:
        """Copy the shared adapter into `local` (False: not here; StoredAdapterInvalid: corrupt here)."""
        return local.adopt(adapter_id, self.folder(adapter_id))

    def publish(self, adapter_id: str, local: AdapterStore) -> None:
        """Copy `local`'s stored adapter here, verified and atomically (a no-op when already here)."""
        if not self.store.adopt(adapter_id, local.durable_root / validate_adapter_id(adapter_id)):
            raise KeyError(adapter_id)

    def info(self, adapter_id: str) -> StoredAdapter:
        return self.store.info(adapter_id)

    def archive(self, adapter_id: str) -> bytes:
        return self.store.archive(adapter_id)

    def delete(self, adapter_id: str) -> None:
        self.store.delete(adapter_id)

    def sweep(self) -> list[str]:
        """Temp entries killed writers left, older than STALE_TEMP_SECONDS (younger ones may be in use)."""
        return self.store.sweep()

    # ---- the generation lock ---------------------------------------------------

    def lock_path(self, adapter_id: str) -> Path:
        stripe = int(validate_adapter_id(adapter_id)[4:8], 16) % LOCK_STRIPES
        return self.lock_dir / f"{stripe:02x}.lock"

    def try_lock(self, adapter_id: str) -> int | None:
        """An exclusive flock on the id's stripe, without waiting: its fd, or None when another holds it."""
        fd = os.open(self.lock_path(adapter_id), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return fd

    @staticmethod
    def unlock(fd: int) -> None:
        os.close(fd)  # closing the last fd of the open file drops the flock

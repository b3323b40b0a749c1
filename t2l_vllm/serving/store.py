"""Adapter files on disk: a durable tier and an optional tmpfs tier.

    <durable root>/<adapter_id>/adapter_config.json, adapter_model.safetensors, t2l.json
    <fast root>/<adapter_id>/   the same PEFT files, in memory (/dev/shm)

vLLM's worker reads adapters inside the engine loop, so it is pointed at the
fast tier: registration is a memory copy, not a disk read that stalls the batch.
The durable tier survives restarts. Ids are validated before they touch a path.
Synchronous and thread-safe per adapter (writes are atomic renames).

Trust: `t2l.json` records the SHA-256 of the two PEFT files. `verified_path`
checks the folder it hands to vLLM against it, so neither a planted fast copy
(/dev/shm is shared by every local user) nor a corrupt durable one is ever
registered. The fast root is created private (0700) and refused when it is
not ours.

Ownership: a serving process `claim()`s the durable root (an exclusive flock on
`.owner.lock`, released by the kernel when the process dies, `kill -9` too).
Only the owner may sweep young temp entries and empty the fast root, so a
leftover of a killed writer is cleaned on the next start, not 60 s later.
The fast tier is a cache of what the engine holds: the service drops a copy
when it unregisters the adapter, and the owner removes the whole fast root at
exit (`release_fast_root`).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..adapter import validate_adapter_id, write_adapter
from ..peft_format import CONFIG_FILE, WEIGHTS_FILE

META_FILE = "t2l.json"
OWNER_LOCK = ".owner.lock"
PEFT_FILES = (CONFIG_FILE, WEIGHTS_FILE)
# Temp entries a killed writer can leave behind (write_adapter's mkdtemp, restores,
# deletes): every one starts with a dot. Only those older than this are swept, so
# a second server writing into the same folder right now is left alone.
STALE_TEMP_SECONDS = 60.0


class StoredAdapterInvalid(Exception):
    """The stored files do not match their recorded digest (corrupt, planted or half written)."""


@dataclass(frozen=True)
class StoredAdapter:
    adapter_id: str
    description: str
    created: float
    size_bytes: int
    confidence: float | None = None
    pinned: bool = False
    # "generated" (from one description), "blend" (blend.py) or "library" (uploaded, library.py).
    kind: str = "generated"
    # Kind-specific metadata: a blend's members and approximation error, a library adapter's name.
    extra: dict | None = None


def files_digest(folder: Path) -> str:
    """SHA-256 over the PEFT files of `folder`, in a fixed order."""
    h = hashlib.sha256()
    for name in PEFT_FILES:
        h.update(name.encode() + b"\0")
        with open(folder / name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def private_dir(path: Path) -> Path:
    """Create `path` as a 0700 folder owned by us, on a chain of folders nobody else controls.

    Refuses (ValueError) a folder that exists but is a symlink, someone else's or
    open to group/others, and any ancestor that another user could rename it out
    of (owned by neither us nor root, or writable by others without the sticky
    bit): whoever controls it controls what vLLM loads.
    """
    path = Path(path).absolute()
    for d in [*reversed(path.parents), path]:
        if not d.exists() and not d.is_symlink():
            try:
                d.mkdir(mode=0o700)
            except FileExistsError:
                pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise ValueError(
            f"refusing adapter folder {path}: it must be a directory (not a symlink) owned by uid {os.getuid()} "
            f"with mode 0700, found uid {st.st_uid} and mode {oct(st.st_mode)}; remove it or choose another --fast-dir"
        )
    for d in path.parents:
        st = os.stat(d)
        open_to_others = st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX
        if st.st_uid not in (os.getuid(), 0) or open_to_others:
            raise ValueError(
                f"refusing adapter folder {path}: its ancestor {d} (uid {st.st_uid}, mode {oct(st.st_mode)}) "
                "lets another user replace it; choose another --fast-dir"
            )
    return path


class AdapterFolderInUse(RuntimeError):
    """Another live process owns this durable adapter folder."""


class AdapterStore:
    """Content-addressed adapter folders under one durable root (+ one private fast root)."""

    def __init__(self, durable_root: Path, fast_root: Path | None = None):
        self.durable_root = Path(durable_root)
        self.fast_root = private_dir(fast_root) if fast_root else None
        self.durable_root.mkdir(parents=True, exist_ok=True)
        self._owner_fd: int | None = None

    # ---- ownership ------------------------------------------------------------

    def claim(self) -> None:
        """Become the only server of this durable folder (AdapterFolderInUse if another process is).

        Two servers on one folder would each keep their own LRU and delete files
        the other serves. The lock dies with its process, so a crash never
        leaves the folder claimed.
        """
        if self._owner_fd is not None:
            return
        fd = os.open(self.durable_root / OWNER_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise AdapterFolderInUse(
                f"adapter folder {self.durable_root} is served by another process (pid {holder}); "
                "give each server its own --adapter-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._owner_fd = fd

    @property
    def owned(self) -> bool:
        return self._owner_fd is not None

    def release_fast_root(self) -> None:
        """At exit: remove the fast root (tmpfs is RAM) and give up the claim."""
        if self._owner_fd is None:
            return
        if self.fast_root is not None:
            shutil.rmtree(self.fast_root, ignore_errors=True)
        os.close(self._owner_fd)
        self._owner_fd = None

    def _durable(self, adapter_id: str) -> Path:
        return self.durable_root / validate_adapter_id(adapter_id)

    def exists(self, adapter_id: str) -> bool:
        d = self._durable(adapter_id)
        return (d / WEIGHTS_FILE).is_file() and (d / META_FILE).is_file()

    def put(self, adapter_id: str, tensors: dict, peft_config: dict, description: str,
            confidence: float | None = None, kind: str = "generated", extra: dict | None = None) -> Path:
        """Write the adapter to both tiers; returns the folder vLLM should load.

        The metadata is written inside the folder before its atomic rename, so a
        kill at any point leaves either a complete adapter or a swept temp entry.
        """
        d = self.put_durable(adapter_id, tensors, peft_config, description, confidence, kind, extra)
        if not self.fast_root:
            return d
        fast = self.fast_root / adapter_id
        if fast.exists() or fast.is_symlink():
            return self.verified_path(adapter_id)  # a copy we did not just write: check it
        write_adapter(tensors, peft_config, fast)
        return fast

    def put_fast(self, adapter_id: str, tensors: dict, peft_config: dict) -> Path | None:
        """Write only the fast copy, so the engine can load it before the durable copy exists.

        The caller writes the durable copy next (`put_durable`) and treats the
        adapter as stored only once that is done; a kill in between leaves a
        fast copy that the next start sweeps. None without a fast tier, or when
        a copy is there already (one we did not just write: `put` checks it).
        """
        if not self.fast_root:
            return None
        fast = self.fast_root / validate_adapter_id(adapter_id)
        if fast.exists() or fast.is_symlink():
            return None
        return write_adapter(tensors, peft_config, fast)

    def put_durable(self, adapter_id: str, tensors: dict, peft_config: dict, description: str,
                    confidence: float | None = None, kind: str = "generated", extra: dict | None = None) -> Path:
        """Write the durable copy with its metadata (atomic); returns its folder."""
        d = self._durable(adapter_id)

        def meta(folder: Path) -> dict[str, bytes]:
            record = {"adapter_id": adapter_id, "description": description, "created": time.time(),
                      "confidence": confidence, "sha256": files_digest(folder)}
            if kind != "generated":
                record.update(kind=kind, extra=extra or {})
            return {META_FILE: (json.dumps(record, indent=2) + "\n").encode()}

        write_adapter(tensors, peft_config, d, extra_files=meta)
        if not (d / META_FILE).is_file():  # a folder left without metadata: write it anew
            _remove(d, self.durable_root, adapter_id)
            write_adapter(tensors, peft_config, d, extra_files=meta)
        return d

    def adopt(self, adapter_id: str, source: Path) -> bool:
        """Copy a stored adapter folder of another store (`source`, with its t2l.json) into this one.

        Atomic like `put`: the copy is verified against the recorded digest in a
        temp folder, then renamed in. Returns False when `source` holds no
        complete adapter (also when it disappears while we copy);
        StoredAdapterInvalid when its files do not match their digest (nothing
        is written). An adapter already here is kept: same id, same bytes.
        The pin is not copied: pins belong to one server.
        """
        d = self._durable(adapter_id)
        if self.exists(adapter_id):
            return True
        source = Path(source)
        tmp = Path(tempfile.mkdtemp(prefix=f".{adapter_id}.adopt-", dir=self.durable_root))
        try:
            try:
                meta = json.loads((source / META_FILE).read_text())
                for name in PEFT_FILES:
                    shutil.copyfile(source / name, tmp / name)
            except FileNotFoundError:
                return False
            except ValueError as e:
                raise StoredAdapterInvalid(f"stored adapter {adapter_id} has unreadable metadata") from e
            expected = meta.get("sha256") if isinstance(meta, dict) else None
            if meta.get("adapter_id") != adapter_id or not isinstance(expected, str) or not _matches(tmp, expected):
                raise StoredAdapterInvalid(f"stored adapter {adapter_id} does not match its recorded digest")
            meta.pop("pinned", None)
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
            os.chmod(tmp, 0o755)
            for f in tmp.iterdir():
                os.chmod(f, 0o644)
            try:
                tmp.rename(d)
            except OSError:
                if not self.exists(adapter_id):  # not a concurrent adopt or put of the same bytes
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return True

    def _meta(self, adapter_id: str) -> dict:
        try:
            meta = json.loads((self._durable(adapter_id) / META_FILE).read_text())
        except (OSError, ValueError) as e:
            raise KeyError(adapter_id) from e
        if not isinstance(meta, dict):
            raise KeyError(adapter_id)
        return meta

    def description(self, adapter_id: str) -> str | None:
        """The description an adapter was made from (None when its metadata is unreadable)."""
        try:
            text = self._meta(adapter_id).get("description")
        except KeyError:
            return None
        return text if isinstance(text, str) and text else None

    def verified_path(self, adapter_id: str) -> Path:
        """The folder vLLM should load, its files checked against the recorded digest.

        Restores the fast copy from the durable one when it is missing, and
        replaces it when it does not match. KeyError: not stored.
        StoredAdapterInvalid: the durable copy itself does not match (or has no digest).
        """
        d = self._durable(adapter_id)
        if not self.exists(adapter_id):
            raise KeyError(adapter_id)
        expected = self._meta(adapter_id).get("sha256")
        if not isinstance(expected, str) or not _matches(d, expected):
            raise StoredAdapterInvalid(f"stored adapter {adapter_id} does not match its recorded digest")
        if not self.fast_root:
            return d
        fast = self.fast_root / adapter_id
        if fast.is_symlink() or (fast.exists() and not _matches(fast, expected)):
            _remove(fast, self.fast_root, adapter_id)
        if not fast.exists():
            tmp = Path(tempfile.mkdtemp(prefix=f".{adapter_id}.restore-", dir=self.fast_root))
            try:
                for name in PEFT_FILES:
                    shutil.copyfile(d / name, tmp / name)
                os.chmod(tmp, 0o755)
                try:
                    tmp.rename(fast)
                except OSError:
                    pass  # a concurrent restore won; checked below
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            if not _matches(fast, expected):
                raise StoredAdapterInvalid(f"fast copy of {adapter_id} does not match its recorded digest")
        return fast

    def info(self, adapter_id: str) -> StoredAdapter:
        d = self._durable(adapter_id)
        meta = self._meta(adapter_id)
        try:
            size = sum((d / n).stat().st_size for n in PEFT_FILES)
        except OSError as e:
            raise KeyError(adapter_id) from e
        conf = meta.get("confidence")
        return StoredAdapter(
            adapter_id, str(meta.get("description", "")), float(meta.get("created", 0.0)), size,
            float(conf) if isinstance(conf, (int, float)) else None, meta.get("pinned") is True,
            str(meta.get("kind", "generated")), meta.get("extra") if isinstance(meta.get("extra"), dict) else None,
        )

    def load(self, adapter_id: str) -> tuple[dict, dict]:
        """(PEFT tensors, adapter_config) of a stored adapter, verified against its digest."""
        from safetensors.torch import load_file

        folder = self.verified_path(adapter_id)
        return load_file(str(folder / WEIGHTS_FILE)), json.loads((folder / CONFIG_FILE).read_text())

    def set_pinned(self, adapter_id: str, pinned: bool) -> None:
        """Record the pin in the metadata (atomic rewrite), so it survives a restart."""
        d = self._durable(adapter_id)
        meta = self._meta(adapter_id)
        meta["pinned"] = pinned
        fd, tmp = tempfile.mkstemp(prefix=f".{adapter_id}.meta-", dir=self.durable_root)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(meta, indent=2) + "\n")
            os.replace(tmp, d / META_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def pinned_ids(self) -> list[str]:
        out = []
        for aid in self.ids():
            try:
                if self._meta(aid).get("pinned") is True:
                    out.append(aid)
            except KeyError:
                continue
        return out

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

    def sweep(self, now: float | None = None) -> list[str]:
        """Remove what a killed writer left: temp entries (dot names) in both roots,
        and adapter folders without metadata (not visible to the bounds, and not
        regenerable). Returns the names removed.

        The owner (see `claim`) removes every temp entry and empties the fast root
        (a cache of the engine's adapters: a new engine holds none). Without the
        claim, only temp entries older than STALE_TEMP_SECONDS go, since another
        process may be writing the young ones right now."""
        now = time.time() if now is None else now
        removed = []
        for root in (self.durable_root, self.fast_root):
            if root is None:
                continue
            for entry in root.iterdir():
                if entry.name == OWNER_LOCK and root == self.durable_root:
                    continue
                if root == self.fast_root and self.owned:
                    pass  # the fast root holds nothing a fresh engine needs
                elif entry.name.startswith("."):
                    if not self.owned and now - entry.lstat().st_mtime < STALE_TEMP_SECONDS:
                        continue
                elif root == self.durable_root and _is_id(entry.name) and not (entry / META_FILE).is_file():
                    pass  # incomplete adapter folder from an older version
                else:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed.append(str(entry.relative_to(root.parent)))
        return removed

    def touch(self, adapter_id: str) -> None:
        """Record a use, so LRU order survives a restart (never creates anything)."""
        try:
            os.utime(self._durable(adapter_id))
        except OSError:
            pass

    def delete(self, adapter_id: str) -> None:
        validate_adapter_id(adapter_id)
        for root in (self.fast_root, self.durable_root):
            if root is not None:
                _remove(root / adapter_id, root, adapter_id)

    def drop_fast(self, adapter_id: str) -> None:
        """Remove the fast copy only (the engine no longer holds the adapter)."""
        validate_adapter_id(adapter_id)
        if self.fast_root is not None:
            _remove(self.fast_root / adapter_id, self.fast_root, adapter_id)

    def fast_bytes(self) -> int:
        """Bytes held in the fast root (tmpfs is RAM)."""
        if self.fast_root is None:
            return 0
        total = 0
        # Entries come and go while we look (renames, deletes): count what is there.
        for d in _entries(self.fast_root):
            for f in (_entries(d) if d.is_dir() and not d.is_symlink() else [d]):
                try:
                    total += f.lstat().st_size
                except OSError:
                    pass
        return total

    def archive(self, adapter_id: str) -> bytes:
        """A .tar.gz of the PEFT folder (`<adapter_id>/adapter_config.json`, weights)."""
        d = self._durable(adapter_id)
        if not self.exists(adapter_id):
            raise KeyError(adapter_id)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name in PEFT_FILES:
                tar.add(d / name, arcname=f"{adapter_id}/{name}")
        return buf.getvalue()


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _is_id(name: str) -> bool:
    try:
        validate_adapter_id(name)
    except ValueError:
        return False
    return True


def _matches(folder: Path, expected: str) -> bool:
    try:
        return files_digest(folder) == expected
    except OSError:
        return False


def _remove(folder: Path, root: Path, adapter_id: str) -> None:
    """Rename first so no reader ever sees a half-deleted folder, then delete."""
    if not folder.exists() and not folder.is_symlink():
        return
    trash = root / f".{adapter_id}.deleted-{time.monotonic_ns()}"
    folder.rename(trash)
    if trash.is_dir() and not trash.is_symlink():
        shutil.rmtree(trash, ignore_errors=True)
    else:
        trash.unlink(missing_ok=True)

"""What the reliability benchmarks (crash_bench.py, soak.py) and tests/test_crash.py share.

- `tiny_models`: the test suite's tiny random Llama + hypernetwork, built once
  into a folder outside pytest (the builders of tests/conftest.py), for quick runs.
- `serve_args`: the `t2l-vllm serve` command line for a model choice.
- `group_processes` / `kill_group`: every process of a server's process group
  (API server, engine core, ...) and `kill -9` of all of them, waiting until
  none is left running.
- `DirWatch`: inotify on adapter folders (ctypes, no dependency), so a kill
  can be fired the moment a writer creates a temp entry or renames a folder in.
- `tier_report`: what is on disk in the durable and fast tiers, every folder
  checked against the SHA-256 recorded in its `t2l.json`, temp leftovers listed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import select
import shutil
import signal
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from t2l_vllm.adapter import ADAPTER_ID_RE
from t2l_vllm.serving import store as store_mod

ROOT = Path(__file__).resolve().parents[1]
META_FILE = store_mod.META_FILE
# The owner lock of a claimed durable folder is a dot entry that is meant to stay.
OWNER_LOCK = getattr(store_mod, "OWNER_LOCK", ".owner.lock")
# vLLM flags the tiny test models need (as tests/test_server.py starts them).
TINY_SERVE_ARGS = ["--dtype", "float32", "--max-model-len", "512", "--enforce-eager"]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "reliability"
# Task descriptions the crash and soak scripts vary (with a nonce) to make new adapters.
TASKS = (
    "Classify the sentiment of the review as positive or negative",
    "Translate the sentence into French",
    "Answer the arithmetic question with a number",
    "Extract the year mentioned in the text",
    "Summarise the paragraph in one sentence",
    "Decide whether the two sentences mean the same thing",
    "Name the capital city of the country",
    "Count the vowels in the word",
    "Reply with the opposite of the given word",
    "Say which of the two numbers is larger",
)


def split_serve_args(argv: list[str] | None) -> tuple[list[str], list[str]]:
    """(the script's own arguments, those after `--` for `t2l-vllm serve`)."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        return argv, []
    i = argv.index("--")
    return argv[:i], argv[i + 1:]
TINY_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1"}


# ---- models ------------------------------------------------------------------------


def tiny_models(out: Path) -> tuple[Path, Path]:
    """(base model folder, hypernetwork folder) of the test suite's tiny models, built once under `out`."""
    out = Path(out)
    base, hypernet = out / "build" / "tiny-llama", out / "build" / "hn" / "tiny-hypernet"
    if (out / "done").is_file():
        return base, hypernet
    import tests.conftest as c  # the fixtures' builders; pytest need not be running

    def unwrap(fixture):
        return getattr(fixture, "__wrapped__", fixture)

    class Folders:  # what the fixtures use of pytest's tmp_path_factory
        def __init__(self, root: Path):
            self.root = root

        def mktemp(self, name: str) -> Path:
            p = self.root / name
            p.mkdir(parents=True)
            return p

    # Built in place: the hypernetwork config records the encoder folder's absolute path.
    work = out / "build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    f = Folders(work)
    b = unwrap(c.tiny_base_dir)(f)
    e = unwrap(c.tiny_encoder_dir)(f)
    h = unwrap(c.tiny_hypernet_dir)(f, unwrap(c.tiny_hypernet_config)(b, e))
    assert (b, h) == (base, hypernet), (b, h)
    (out / "done").write_text("ok\n")
    return base, hypernet


def serve_args(model: Path | None, hypernet: Path | None, adapter_dir: Path, fast_dir: Path,
               tiny: bool = False, extra: list[str] | None = None) -> list[str]:
    """`t2l-vllm serve` arguments: the model choice, explicit adapter folders, then `extra` (which wins)."""
    args = []
    if model:
        args += ["--model", str(model)]
    if hypernet:
        args += ["--hypernet", str(hypernet)]
    args += ["--adapter-dir", str(adapter_dir), "--fast-dir", str(fast_dir)]
    if tiny:
        args += TINY_SERVE_ARGS
    return args + list(extra or [])


def served_base_name(model: Path | None) -> str:
    """The name the server gives the base model (and writes into adapter configs)."""
    from t2l_vllm import defaults

    return str(model) if model else defaults.BASE_NAME


def load_generator(model: Path | None, hypernet: Path | None):
    """The generator the server builds (same checkpoint, base name and dtype): for offline re-generation."""
    from t2l_vllm import defaults
    from t2l_vllm.generator import AdapterGenerator

    base = Path(model) if model else defaults.default_base_model_dir()
    hn = Path(hypernet) if hypernet else defaults.default_hypernet_dir(base)
    return AdapterGenerator.from_pretrained(hn, base, base_model_name=served_base_name(model))


def regenerated_digest(generator, description: str) -> str:
    """SHA-256 (as the store records it) of a fresh generation of `description`."""
    from t2l_vllm.adapter import write_adapter

    [adapter] = generator.generate([description])
    with tempfile.TemporaryDirectory(prefix="t2l-regen-") as tmp:
        folder = write_adapter(adapter.tensors, adapter.peft_config, Path(tmp) / adapter.adapter_id)
        return store_mod.files_digest(folder)


# ---- processes ---------------------------------------------------------------------


def group_processes(pgid: int) -> list[psutil.Process]:
    """Live (not zombie) processes of process group `pgid`."""
    out = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except (ProcessLookupError, psutil.Error, OSError):
            continue
    return out


def process_role(p: psutil.Process, leader: int) -> str:
    """A short name for a server process: api (the leader), else vLLM's process title or name."""
    if p.pid == leader:
        return "api"
    try:
        name = p.name()
        cmd = " ".join(p.cmdline())
    except psutil.Error:
        return f"pid{p.pid}"
    for title in ("EngineCore", "Worker", "resource_tracker"):
        if title in name or title in cmd:
            return title.lower()
    return name or f"pid{p.pid}"


def kill_group(proc, timeout: float = 60.0) -> dict:
    """`kill -9` the whole process group of `proc` (a Popen whose pid leads its group).

    The signal goes first (the caller times it); then waits until no process of
    the group is left running (zombies count as gone). Returns {signalled_at,
    survivors}: survivors (still running after `timeout`) are killed by pid.
    """
    pgid = proc.pid
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    signalled_at = time.monotonic()
    try:
        proc.wait(timeout=timeout)
    except Exception:
        pass
    deadline = time.monotonic() + timeout
    left = group_processes(pgid)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = group_processes(pgid)
    survivors = [p.pid for p in left]
    for pid in survivors:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return {"signalled_at": signalled_at, "survivors": survivors}


def close_log(server) -> None:
    try:
        server.log.close()
    except Exception:
        pass


# ---- inotify -------------------------------------------------------------------------

IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_ISDIR = 0x40000000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")


@dataclass(frozen=True)
class DirEvent:
    root: Path
    name: str
    mask: int
    at: float  # time.monotonic() when read

    @property
    def created(self) -> bool:
        return bool(self.mask & IN_CREATE)

    @property
    def moved_in(self) -> bool:
        return bool(self.mask & IN_MOVED_TO)


class DirWatch:
    """Entries created in / renamed into a few folders (Linux inotify through libc)."""

    def __init__(self, roots: list[Path]):
        self._libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.fd = self._libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.roots: dict[int, Path] = {}
        for root in roots:
            wd = self._libc.inotify_add_watch(self.fd, str(root).encode(), IN_CREATE | IN_MOVED_TO)
            if wd < 0:
                err = ctypes.get_errno()
                os.close(self.fd)
                raise OSError(err, f"inotify_add_watch {root} failed")
            self.roots[wd] = Path(root)

    def events(self, timeout: float) -> list[DirEvent]:
        """Events available within `timeout` seconds (empty list when none came)."""
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not ready:
            return []
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return []
        now = time.monotonic()
        out, i = [], 0
        while i + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, i)
            name = data[i + _EVENT.size : i + _EVENT.size + length].split(b"\0", 1)[0].decode(errors="replace")
            i += _EVENT.size + length
            if wd in self.roots:
                out.append(DirEvent(self.roots[wd], name, mask, now))
        return out

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "DirWatch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---- what is on disk ------------------------------------------------------------------


def is_temp(name: str) -> bool:
    """A leftover-able temp entry (dot name), not the owner lock that is meant to stay."""
    return name.startswith(".") and name != OWNER_LOCK


def temp_id(name: str) -> str | None:
    """The adapter id a temp entry `.t2l-<hex>.<suffix>` belongs to."""
    parts = name.lstrip(".").split(".", 1)
    return parts[0] if parts and ADAPTER_ID_RE.match(parts[0]) else None


def dir_bytes(root: Path | None) -> int:
    """Bytes of the files under `root` (one level of folders, as the tiers are laid out)."""
    total = 0
    if root is None or not Path(root).is_dir():
        return 0
    for entry in os.scandir(root):
        try:
            if entry.is_dir(follow_symlinks=False):
                for f in os.scandir(entry.path):
                    total += f.stat(follow_symlinks=False).st_size
            else:
                total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
    return total


def adapter_dirs(root: Path | None) -> list[str]:
    if root is None or not Path(root).is_dir():
        return []
    return sorted(e.name for e in os.scandir(root) if ADAPTER_ID_RE.match(e.name))


def temps(root: Path | None) -> list[str]:
    if root is None or not Path(root).is_dir():
        return []
    return sorted(e.name for e in os.scandir(root) if is_temp(e.name))


def recorded_digest(durable: Path, aid: str) -> str | None:
    try:
        meta = json.loads((Path(durable) / aid / META_FILE).read_text())
    except (OSError, ValueError):
        return None
    digest = meta.get("sha256") if isinstance(meta, dict) else None
    return digest if isinstance(digest, str) else None


def folder_digest(folder: Path) -> str | None:
    try:
        return store_mod.files_digest(folder)
    except OSError:
        return None


def tier_report(durable: Path, fast: Path | None) -> dict:
    """Every adapter folder of both tiers checked against its recorded digest; temp leftovers.

    durable_bad: folders with no readable metadata, missing files or a digest
    mismatch. fast_bad: fast copies whose files do not match the durable
    record (or that have no durable record at all).
    """
    durable, fast = Path(durable), (Path(fast) if fast else None)
    d_ids, f_ids = adapter_dirs(durable), adapter_dirs(fast)
    durable_bad, fast_bad = [], []
    recorded = {}
    for aid in d_ids:
        want = recorded_digest(durable, aid)
        recorded[aid] = want
        if want is None or folder_digest(durable / aid) != want:
            durable_bad.append(aid)
    for aid in f_ids:
        want = recorded.get(aid)
        if want is None or folder_digest(fast / aid) != want:
            fast_bad.append(aid)
    return {
        "durable_ids": d_ids,
        "fast_ids": f_ids,
        "durable_bad": durable_bad,
        "fast_bad": fast_bad,
        "durable_temps": temps(durable),
        "fast_temps": temps(fast),
    }


def verify_with_store(durable: Path, ids: list[str]) -> list[str]:
    """Ids whose durable copy `AdapterStore.verified_path` refuses (durable tier only:
    read-only, never touches the server's fast folder)."""
    store = store_mod.AdapterStore(Path(durable), None)
    bad = []
    for aid in ids:
        try:
            store.verified_path(aid)
        except (KeyError, store_mod.StoredAdapterInvalid, OSError):
            bad.append(aid)
    return bad


def shm_used() -> int:
    try:
        return shutil.disk_usage("/dev/shm").used
    except OSError:
        return 0


def shm_entries() -> set[str]:
    try:
        return set(os.listdir("/dev/shm"))
    except OSError:
        return set()


def shm_leftovers(before: set[str], pids: set[int], own: set[str] = frozenset()) -> dict:
    """/dev/shm entries that appeared since `before`, by kind, with the RAM they hold.

    vllm: vLLM's shared-memory queues (psm_*) and multiprocessing semaphores
    (sem.mp-*), not attributable to a process by name; kmp: Intel OpenMP's
    registration files of `pids` (our server processes); `own` names (the fast
    tier's folder) are left out. Another program starting vLLM at the same time
    would be counted too.
    """
    out = {"vllm": [], "kmp": [], "other": []}
    for name in sorted(shm_entries() - set(before) - set(own)):
        if name.startswith(("psm_", "sem.mp-")):
            out["vllm"].append(name)
        elif name.startswith("__KMP_REGISTERED_LIB_"):
            try:
                pid = int(name.split("_")[-2])
            except ValueError:
                pid = -1
            if pid in pids:
                out["kmp"].append(name)
        else:
            out["other"].append(name)
    allocated = 0
    for name in out["vllm"] + out["kmp"] + out["other"]:
        try:
            allocated += os.lstat(f"/dev/shm/{name}").st_blocks * 512
        except OSError:
            pass
    return {**out, "allocated_bytes": allocated}


def default_fast_dir(tag: str) -> Path:
    """A private folder under /dev/shm for one benchmark's fast tier (tmpfs, as in production)."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() else Path(tempfile.gettempdir())
    return base / f"t2l-{tag}-{os.getuid()}" / "fast"


def parse_metrics(text: str, prefix: str = "t2l_") -> dict[str, float]:
    """Unlabelled samples (and labelled ones as name{labels}) of the Prometheus text whose names start with `prefix`."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith(prefix):
                key = s.name if not s.labels else s.name + "{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}"
                out[key] = s.value
    return out

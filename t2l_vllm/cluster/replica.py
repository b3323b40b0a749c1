"""One replica of the cluster: a real `t2l-vllm serve` on loopback, behind Ray Serve.

`T2LReplica` (a Ray Serve deployment, `replicas` copies) starts the server with
its own vLLM engine and hypernetwork, a private adapter folder under the work dir
and the cluster's shared adapter folder, and then:

- `forward` streams one HTTP exchange with the server: first a head
  `{"status", "headers", "replica"}`, then the body's chunks as they come;
- before forwarding, it hands the request's adapter id (Ray's
  `multiplexed_model_id`, set by the front door) to its `@serve.multiplexed`
  loader: Ray then routes that id to this replica while it keeps it among its
  `max_adapters_per_replica` most recently used ids;
- `check_health` fails when the server stops answering, and Ray replaces the replica;
- `info` gives the hypernetwork digest, from which the front door computes ids.

The server runs under `serving/guard.py`: it goes down with the replica, kill -9
included. A `ReplicaProbe` actor (named, owned by the replica, so it dies with it)
lets the front door reach this one replica for fan-out: metrics, listings, deletes.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from pathlib import Path
from typing import Any, AsyncIterator

import ray
from ray import serve

from .. import defaults
from ..serving.config import ServeConfig, default_fast_dir
from ..serving.process import ServerProcess
from .config import ClusterConfig

logger = logging.getLogger("ray.serve")

PROBE_PREFIX = "t2l-probe/"
# Headers that describe one connection, not the exchange: never forwarded.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
    "host", "content-length",
})


class ReplicaUnavailable(RuntimeError):
    """The replica's server did not answer; the front door sends the request elsewhere."""


def probe_name(app: str, tag: str) -> str:
    return f"{PROBE_PREFIX}{app}/{tag}"


def forwardable(headers) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]


# ---- the replica's private folder ----------------------------------------------------


class ReplicaFolder:
    """`<replicas_dir>/<tag>/`, claimed by `<tag>.lock` for as long as this process lives.

    Folders whose lock nobody holds belong to replicas that died (kill -9 leaves
    them behind): each new replica removes them, with their tmpfs tier. Shared
    adapters survive in the shared store, so nothing acknowledged is lost.
    """

    def __init__(self, root: Path, tag: str):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / tag
        self._fd = os.open(self.root / f"{tag}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.removed = remove_dead_replica_folders(self.root)
        self.path.mkdir(exist_ok=True)

    @property
    def adapters(self) -> Path:
        return self.path / "adapters"

    def remove(self) -> None:
        """At a graceful exit: the folder, then the claim."""
        _remove_folder(self.path)
        (self.root / f"{self.path.name}.lock").unlink(missing_ok=True)
        os.close(self._fd)


def remove_dead_replica_folders(root: Path) -> list[str]:
    """Remove the folders (and tmpfs tiers) of replicas whose lock nobody holds; returns their tags."""
    removed = []
    for lock in sorted(root.glob("*.lock")):
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # alive
        try:
            _remove_folder(root / lock.stem)
            lock.unlink(missing_ok=True)
            removed.append(lock.stem)
        finally:
            os.close(fd)
    return removed


def _remove_folder(folder: Path) -> None:
    fast = default_fast_dir(folder / "adapters")
    if fast is not None:
        shutil.rmtree(fast, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)


# ---- the probe ------------------------------------------------------------------------


@ray.remote(num_cpus=0)
class ReplicaProbe:
    """Calls this replica's server over loopback on the front door's behalf (fan-out)."""

    def __init__(self, url: str, info: dict):
        self.url = url
        self._info = info
        self._client = None

    def info(self) -> dict:
        return self._info

    async def call(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"",
                   timeout: float = 10.0) -> tuple[int, list[tuple[str, str]], bytes]:
        """One request to the server: (status, headers, body); status 0 when it did not answer."""
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.url)
        try:
            r = await self._client.request(method, target, headers=forwardable(headers), content=body, timeout=timeout)
        except httpx.HTTPError as e:
            return 0, [], f"{type(e).__name__}: {e}".encode()
        return r.status_code, forwardable(r.headers.multi_items()), r.content


# ---- the deployment -------------------------------------------------------------------


async def _held(adapter_id: str) -> str:
    """Ray's multiplexed "model": the id alone. The server's own LRU decides what vLLM holds."""
    return adapter_id


class T2LReplica:
    """A `t2l-vllm serve` process on loopback, forwarded to by the front door."""

    def __init__(self, config: ClusterConfig):
        import httpx

        ctx = serve.get_replica_context()
        self.tag, self.app = ctx.replica_tag, ctx.app_name
        self.config = config
        self.serve_config = config.serve_config(os.environ)
        self.folder = ReplicaFolder(config.replicas_dir(), self.tag)
        if self.folder.removed:
            logger.info("t2l-vllm: removed the folders of dead replicas %s", ", ".join(self.folder.removed))
        fast = default_fast_dir(self.folder.adapters)
        args = [
            *config.serve_args, "--adapter-dir", str(self.folder.adapters),
            "--shared-adapter-dir", str(config.shared_dir()), "--fast-dir", str(fast) if fast else "none",
        ]
        self.server = ServerProcess(args, self.folder.path / "server.log", api_key=config.api_key, die_with_parent=True)
        try:
            self.server.wait_ready(config.start_timeout_s)
        except BaseException:
            self.server.stop()
            raise
        self.client = httpx.AsyncClient(base_url=self.server.url, timeout=httpx.Timeout(None, connect=5.0))
        # Created here, not on the class: the bound comes from the config.
        self._hold = serve.multiplexed(max_num_models_per_replica=config.adapters_per_replica())(_held)
        self._info = {
            "replica": self.tag,
            "node": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
            "server_pid": self.server.proc.pid,
            "digest": checkpoint_digest(config, self.serve_config),
            "max_description_chars": self.serve_config.max_description_chars,
            "public_paths": list(self.serve_config.public_paths),
        }
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.probe = ReplicaProbe.options(
            name=probe_name(self.app, self.tag),
            scheduling_strategy=NodeAffinitySchedulingStrategy(self._info["node"], soft=False),
        ).remote(self.server.url, self._info)
        logger.info("t2l-vllm: replica %s serving on %s (log %s)", self.tag, self.server.url, self.server.log_path)

    def info(self) -> dict:
        return self._info

    async def forward(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> AsyncIterator[Any]:
        """One exchange with the server: the head dict, then the body's chunks."""
        import httpx

        adapter_id = serve.get_multiplexed_model_id()
        if adapter_id:
            await self._hold(adapter_id)
        request = self.client.build_request(method, target, headers=forwardable(headers), content=body)
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TransportError as e:
            raise ReplicaUnavailable(f"replica {self.tag}: its server did not answer ({type(e).__name__})") from None
        try:
            yield {"status": response.status_code, "headers": forwardable(response.headers.multi_items()),
                   "replica": self.tag}
            async for chunk in response.aiter_raw():
                yield chunk
        finally:
            await response.aclose()

    async def check_health(self) -> None:
        import httpx

        code = self.server.proc.poll()
        if code is not None:
            raise RuntimeError(f"replica {self.tag}: its server exited with status {code}")
        try:
            r = await self.client.get("/health", timeout=10.0)
        except httpx.HTTPError as e:
            raise RuntimeError(f"replica {self.tag}: its server did not answer /health ({type(e).__name__})") from None
        if r.status_code != 200:
            raise RuntimeError(f"replica {self.tag}: its server answered /health with {r.status_code}")

    def __del__(self) -> None:
        # Ray Serve calls this on a graceful stop (scale down, redeploy, shutdown).
        server = getattr(self, "server", None)
        if server is None:
            return
        try:
            ray.kill(self.probe)
        except Exception:
            pass
        server.stop()
        self.folder.remove()


def checkpoint_digest(config: ClusterConfig, serve_config: ServeConfig) -> str:
    """The digest of the hypernetwork the replicas' servers load (their adapter ids depend on it)."""
    from ..checkpoint import hypernet_digest, load_hypernet

    model = config.serve_namespace().model
    base = Path(model) if model else defaults.default_base_model_dir()
    return hypernet_digest(load_hypernet(serve_config.hypernet_dir or defaults.default_hypernet_dir(base)))

"""The server process used by the tests (the library's launcher, run from the repo root)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from t2l_vllm.serving.process import ServerProcess as _ServerProcess

ROOT = Path(__file__).resolve().parent.parent


class ServerProcess(_ServerProcess):
    def __init__(self, args: list[str], env: dict[str, str], log_path: Path, api_key: str | None = None):
        super().__init__(args, log_path, env=env, api_key=api_key, cwd=ROOT)


@contextmanager
def running_tiny_server(tmp: Path, base_dir: Path, hypernet_dir: Path, *extra: str,
                        api_key: str | None = None) -> Iterator[ServerProcess]:
    """`t2l-vllm serve` on the tiny models with the suite's common flags, ready, stopped on exit.

    Folders under `tmp`: adapters/ (durable), fast/ (tmpfs tier), server.log;
    `extra` flags follow the common ones.
    """
    env = {"T2L_VLLM_FAST_DIR": str(tmp / "fast"), "VLLM_CPU_KVCACHE_SPACE": "1"}
    args = [
        "--model", str(base_dir), "--hypernet", str(hypernet_dir), "--adapter-dir", str(tmp / "adapters"),
        "--dtype", "float32", "--max-model-len", "512", "--max-loras", "2", "--enforce-eager", *extra,
    ]
    srv = ServerProcess(args, env, tmp / "server.log", api_key=api_key)
    srv.adapter_dir, srv.fast_dir = tmp / "adapters", tmp / "fast"
    try:
        yield srv.wait_ready()
    finally:
        srv.stop()

"""Start and stop `t2l-vllm serve` as a child process on loopback (tests, benchmarks, scripts)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class ServerProcess:
    """`t2l-vllm serve ARGS` in its own process group, output to `log_path`.

    `wait_ready()` polls /health until it answers 200 (failing early if the
    process dies); `stop()` sends SIGTERM to the API server, then to the group,
    then SIGKILL.
    """

    def __init__(
        self,
        args: list[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        api_key: str | None = None,
        cwd: str | Path | None = None,
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = api_key
        self.log_path = Path(log_path)
        cmd = [sys.executable, "-m", "t2l_vllm.cli", "serve", *args, "--host", "127.0.0.1", "--port", str(self.port)]
        if api_key:
            cmd += ["--api-key", api_key]
        self.cmd = cmd
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
            cwd=str(cwd) if cwd else None, start_new_session=True,
        )

    def wait_ready(self, timeout: float = 600) -> "ServerProcess":
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"server not ready after {timeout:.0f}s:\n{self.tail()}")

    def alive(self) -> bool:
        import httpx

        return self.proc.poll() is None and httpx.get(f"{self.url}/health", timeout=5).status_code == 200

    def tail(self, n: int = 60) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM to the API server, which drains and stops its engine; then the group, then SIGKILL.

        The API server alone first: a SIGTERM to the whole group reaches the
        engine core before the API server has told it to stop, and it then leaves
        its shared-memory segments in /dev/shm. The group follows when the API
        server does not exit in time (it ignores SIGTERM while starting up).
        """
        for send in (lambda: os.kill(self.proc.pid, signal.SIGTERM), lambda: os.killpg(self.proc.pid, signal.SIGTERM)):
            if self.proc.poll() is not None:
                break
            send()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        # The engine core may still be cleaning up after the API server exited: give it a moment,
        # then SIGKILL whatever is left of the group (zombies never go away in a container without init).
        deadline = time.monotonic() + 10
        while _group_alive(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log.close()

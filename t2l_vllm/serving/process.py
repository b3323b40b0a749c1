"""Start and stop `t2l-vllm serve` as a child process on loopback (tests, benchmarks, scripts)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
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


def _start_in_owner_thread(start) -> subprocess.Popen:
    """Run `start()` in a thread that then waits for the child, so the child's parent thread outlives it."""
    started: list = []
    ready = threading.Event()

    def owner() -> None:
        try:
            started.append(start())
        except BaseException as e:
            started.append(e)
        finally:
            ready.set()
        if isinstance(started[0], subprocess.Popen):
            started[0].wait()

    threading.Thread(target=owner, name="t2l-server-owner", daemon=True).start()
    ready.wait()
    if isinstance(started[0], BaseException):
        raise started[0]
    return started[0]


class ServerProcess:
    """`t2l-vllm serve ARGS` in its own process group, output to `log_path`.

    `wait_ready()` polls /health until it answers 200 (failing early if the
    process dies); `stop()` sends SIGTERM to the API server, then to the group,
    then SIGKILL.

    die_with_parent: run the server under `guard.py`, which stops the whole
    group when this process dies (kill -9 included). The kernel ties that to
    the thread that started the child, so it is started from a thread that
    lives as long as the child.
    """

    def __init__(
        self,
        args: list[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        api_key: str | None = None,
        cwd: str | Path | None = None,
        die_with_parent: bool = False,
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = api_key
        self.log_path = Path(log_path)
        cmd = [sys.executable, "-m", "t2l_vllm.cli", "serve", *args, "--host", "127.0.0.1", "--port", str(self.port)]
        if api_key:
            cmd += ["--api-key", api_key]
        if die_with_parent:
            cmd = [sys.executable, "-m", "t2l_vllm.serving.guard", "--", *cmd]
        self.cmd = cmd
        self.log = open(self.log_path, "w")

        def start() -> subprocess.Popen:
            return subprocess.Popen(
                cmd, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                cwd=str(cwd) if cwd else None, start_new_session=True,
            )

        self.proc = _start_in_owner_thread(start) if die_with_parent else start()

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

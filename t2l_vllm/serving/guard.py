"""Run a command and take its whole process group down when our parent dies.

    python -m t2l_vllm.serving.guard -- t2l-vllm serve ...

A Ray Serve replica starts its `t2l-vllm serve` through this. When the replica's
process dies, `kill -9` included, the kernel sends this guard SIGTERM
(PR_SET_PDEATHSIG); the guard passes it to the server, which drains and stops its
engine, and SIGKILLs the process group after GRACE_S. Without it the server would
outlive the replica, and vLLM's engine core outlives a killed API server (measured:
`kill -9` of the API server left the engine core and its worker running).
A SIGTERM from anyone else is handled the same way; the guard exits with the
command's status.

Ray's raylet SIGKILLs the direct children of a worker that exits, this guard among
them, so the server has its own PR_SET_PDEATHSIG: SIGTERM when the guard dies.
vLLM turns a SIGTERM into an orderly stop from the moment it starts its engine.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1
GRACE_S = 30.0


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel for `sig` when the thread that started us exits (Linux only)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m t2l_vllm.serving.guard -- COMMAND...", file=sys.stderr)
        return 2
    parent = os.getppid()
    die_with_parent()
    if os.getppid() != parent:  # the parent died before prctl took effect
        return 1
    # Set between fork and exec; this process has no other threads.
    child = subprocess.Popen(argv, preexec_fn=die_with_parent)
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        if stopping:
            return
        stopping = True
        try:
            child.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while child.poll() is None:
        time.sleep(0.2)
        if stopping and child.poll() is None:
            deadline = time.monotonic() + GRACE_S
            while child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            break
    if stopping:
        if os.getpgid(0) == os.getpid():
            # We lead the group, and whatever the server left (engine core, workers) is in it.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            os.killpg(os.getpid(), signal.SIGKILL)
        elif child.poll() is None:
            child.kill()
    return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

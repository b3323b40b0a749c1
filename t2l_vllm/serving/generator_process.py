"""The adapter generator in a process of its own, so that it never waits on the API server's GIL.

Why a process: every torch op of the encoder's and the hypernetwork's forward
releases the GIL and takes it back, and a thread that wants it back waits up
to `sys.getswitchinterval()` (5 ms) while another thread runs Python. Measured
on this 2-core machine (one description, one torch thread, in-process): 26 ms
alone, 2044 ms next to one busy Python thread (153 ms with a 0.5 ms switch
interval). A child process has its own interpreter and shares only the cores.

In the server under the README's closed-loop load it did not pay off
(benchmarks/results/cold_path/: cold - warm first-request TTFT p50 191 ms with
the process, 156 ms with the thread at N = 32; the event loop is not busy
enough there for the GIL to dominate, the shared cores do), so it is opt-in:
`--generator-process`. It is there for servers whose event loop is busy.

    worker = GeneratorProcess(GeneratorSpec(hypernet_dir, base_dir, "served-name"))
    worker.generate(["Reply with the plural of the noun."])   # as AdapterGenerator.generate
    worker.close()

The child builds the same `AdapterGenerator` from the same checkpoint with the
same torch thread count, so adapters are byte-identical to in-process ones
(tests/test_generator_process.py). Calls are serialised (one request in flight);
an adapter's tensors come back as one safetensors buffer (0.94 MB for the default
model: ~8 ms to save and load). A child that dies
fails the call in flight with `GeneratorProcessDied` and is started again on
the next call; nothing stored is touched by the child.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import pickle
import threading
from dataclasses import dataclass
from pathlib import Path

# Seconds the child may take to load the encoder and the hypernetwork.
START_TIMEOUT_S = 300.0


class GeneratorProcessDied(RuntimeError):
    """The generator's process ended while (or before) it served a call."""


@dataclass(frozen=True)
class GeneratorSpec:
    """What the child needs to build its `AdapterGenerator` (paths and settings, no live objects)."""

    hypernet_dir: Path
    base_model_dir: Path
    base_model_name: str
    device: str = "cpu"
    max_description_chars: int | None = None
    torch_threads: int = 1  # 0: torch's default


def _child_main(conn, spec: GeneratorSpec) -> None:
    """The child: load the generator, then answer (method, args) until the pipe closes."""
    import torch

    from ..generator import AdapterGenerator

    if spec.torch_threads > 0:
        torch.set_num_threads(spec.torch_threads)
    kwargs = {} if spec.max_description_chars is None else {"max_description_chars": spec.max_description_chars}
    try:
        gen = AdapterGenerator.from_pretrained(spec.hypernet_dir, spec.base_model_dir, base_model_name=spec.base_model_name,
                                               device=spec.device, **kwargs)
        gen.capture_graphs()  # CUDA graphs before "ready", not on the first requests; no-op on the CPU
    except Exception as e:  # the parent raises it
        conn.send_bytes(pickle.dumps(("error", _picklable(e))))
        return
    conn.send_bytes(pickle.dumps(("ready", gen.digest)))
    methods = {"generate": gen.generate, "embed": gen.embed, "confidence": gen.confidence}
    while True:
        try:
            method, args = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return  # the parent closed the pipe or died
        try:
            result = methods[method](*args)
            reply = ("ok", _pack(result) if method == "generate" else result)
        except Exception as e:
            reply = ("error", _picklable(e))
        conn.send_bytes(pickle.dumps(reply))


def _pack(adapters: list) -> list:
    """GeneratedAdapters with their tensors as one safetensors buffer each.

    Pickling the tensors themselves would copy each view's whole underlying
    storage (27.7 MB and 84 ms for one default-model adapter, measured) where
    the safetensors bytes are 0.94 MB and 8 ms both ways.
    """
    from safetensors.torch import save

    return [(dataclasses.replace(a, tensors={}), save(a.tensors)) for a in adapters]


def _unpack(packed: list) -> list:
    from safetensors.torch import load

    return [dataclasses.replace(a, tensors=load(data)) for a, data in packed]


def _picklable(e: Exception) -> Exception:
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:
        return RuntimeError(f"{type(e).__name__}: {e}")


class GeneratorProcess:
    """`generate`, `embed` and `confidence` of an `AdapterGenerator` that lives in a child process."""

    def __init__(self, spec: GeneratorSpec, expected_digest: str | None = None):
        """Starts the child (it loads while the caller goes on); the first call waits until it is ready.

        expected_digest: the parent's generator digest; the child must have loaded the same checkpoint.
        """
        self.spec = spec
        self.expected_digest = expected_digest
        self._lock = threading.Lock()
        self._ctx = multiprocessing.get_context("spawn")  # never fork a process that runs vLLM's threads
        self._proc = None
        self._conn = None
        self._ready = False
        self.restarts = 0
        self._start()

    def _start(self) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        self._proc = self._ctx.Process(target=_child_main, args=(child, self.spec), name="t2l-generator", daemon=True)
        self._proc.start()
        child.close()  # the child's end lives in the child now: EOF here when it exits
        self._conn, self._ready = parent, False

    def _wait_ready(self) -> None:
        if not self._conn.poll(START_TIMEOUT_S):
            self._stop()
            raise GeneratorProcessDied(f"the generator process did not load within {START_TIMEOUT_S:.0f} s")
        status, value = self._receive()
        if status == "error":  # the child could not load and has exited
            self._stop()
            raise value
        if self.expected_digest is not None and value != self.expected_digest:
            self._stop()
            raise RuntimeError(f"the generator process loaded checkpoint {value[:12]}, the server {self.expected_digest[:12]}")
        self._ready = True

    def _receive(self):
        try:
            return pickle.loads(self._conn.recv_bytes())
        except (EOFError, OSError) as e:
            code = self._proc.exitcode if self._proc is not None else None
            self._stop()
            raise GeneratorProcessDied(f"the generator process ended (exit code {code})") from e

    def wait_ready(self) -> None:
        """Block until the child has loaded (raises what its loading raised)."""
        with self._lock:
            if self._conn is None:
                self._start()
            if not self._ready:
                self._wait_ready()

    def _call(self, method: str, *args):
        with self._lock:
            if self._conn is None:  # died earlier: start again
                self.restarts += 1
                self._start()
            if not self._ready:
                self._wait_ready()
            try:
                self._conn.send_bytes(pickle.dumps((method, args)))
            except (BrokenPipeError, OSError) as e:
                self._stop()
                raise GeneratorProcessDied("the generator process ended") from e
            status, value = self._receive()
        if status == "error":
            raise value
        return value

    def generate(self, descriptions: list[str]):
        return _unpack(self._call("generate", list(descriptions)))

    def embed(self, descriptions: list[str]):
        return self._call("embed", list(descriptions))

    def confidence(self, descriptions: list[str]):
        return self._call("confidence", list(descriptions))

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def _stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._proc is not None:
            self._proc.join(timeout=5)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(timeout=5)
        self._proc, self._conn, self._ready = None, None, False

    def close(self) -> None:
        with self._lock:
            self._stop()

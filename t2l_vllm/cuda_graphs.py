"""CUDA graphs for the generator's small fixed-shape passes (CUDA devices only).

On a GPU the description encoder (~100 small kernels for MiniLM) and the
hypernetwork take a few milliseconds each, nearly all of it Python and kernel
launch overhead: the arithmetic is microseconds. Replaying a captured graph
launches the same kernels in one call. A graph is captured per input shape (the
encoder: per token count, since each description is encoded alone), on first
use; later calls with that shape replay it.

Replays run the same kernels on the same shapes, so a description gives the
same bits on every call, as adapter ids require (checked on an H200 by
benchmarks/gpu_check.py, also across generators captured apart). They are
not the bits of an eager pass: capture picks other kernels for some ops (an
H200: bf16 adapter values differ by up to 0.0156), so a server uses one path or
the other throughout. The CPU path never uses this module.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable

import torch

# Warm-up passes before a capture (cuBLAS handles and lazily built kernels must
# exist before capture, which forbids allocating them).
WARMUP_PASSES = 2


class ShapeGraphs:
    """`fn(x) -> tuple of tensors`, replayed from one CUDA graph per shape of x.

    fn must be a pure function of x and of tensors that stay put (module
    weights): a graph replays the memory addresses it was captured with.
    Outputs are cloned, so they stay valid after the next replay. At most
    `max_graphs` shapes are kept (least recently used dropped). Thread-safe:
    a replay and the copy of its outputs are one critical section. If a
    capture fails (fn does something capture forbids, such as reading a
    device value on the host), every later call runs fn eagerly and
    `disabled` says why: one path for all shapes, so results stay consistent.
    """

    def __init__(self, fn: Callable[[torch.Tensor], tuple[torch.Tensor, ...]], max_graphs: int = 64):
        if max_graphs < 1:
            raise ValueError(f"max_graphs must be >= 1, got {max_graphs}")
        self.fn = fn
        self.max_graphs = max_graphs
        # shape -> (graph, static input, static outputs)
        self._graphs: OrderedDict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, tuple[torch.Tensor, ...]]] = (
            OrderedDict()
        )
        self._pool = None  # one memory pool for every graph: they never run at once
        self._lock = threading.Lock()
        self.disabled: str | None = None

    def __len__(self) -> int:
        return len(self._graphs)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if x.device.type != "cuda":
            raise ValueError(f"CUDA graphs replay CUDA tensors; got one on {x.device}")
        key = (tuple(x.shape), x.dtype)
        # Inference mode throughout: the static tensors are inference tensors, which
        # may only be written inside it (generation runs in it; a caller may not).
        with self._lock, torch.inference_mode():
            if self.disabled is not None:
                return tuple(self.fn(x))
            entry = self._graphs.get(key)
            if entry is None:
                try:
                    entry = self._capture(x)
                except RuntimeError as exc:  # capture refused: eager from now on, for every shape
                    self.disabled = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                    self._graphs.clear()
                    return tuple(self.fn(x))
                self._graphs[key] = entry
                while len(self._graphs) > self.max_graphs:
                    self._graphs.popitem(last=False)
            else:
                self._graphs.move_to_end(key)
            graph, static_in, static_out = entry
            static_in.copy_(x)
            graph.replay()
            return tuple(t.clone() for t in static_out)

    def _capture(self, x: torch.Tensor):
        static_in = x.clone()
        side = torch.cuda.Stream(device=x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_PASSES):
                self.fn(static_in)
        torch.cuda.current_stream(x.device).wait_stream(side)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        # thread_local: CUDA work of other threads (the server's) may go on during a capture.
        with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
            static_out = tuple(self.fn(static_in))
        return graph, static_in, static_out

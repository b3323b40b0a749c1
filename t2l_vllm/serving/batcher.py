"""Micro-batching onto one worker thread: calls that arrive together run as one job.

    batcher = MicroBatcher(pool, run_batch, window_s=0.002)
    result = await batcher.submit(item)      # from the event loop

`run_batch(items) -> results` runs on `pool` (the adapter service's single
generation thread) with every item submitted during the collection window,
and, while a job runs, every item submitted meanwhile joins the next job
without waiting any longer. `results[i]` answers `items[i]`; an exception
instance in the list is raised to that caller only, an exception raised by
`run_batch` to every caller of the job.

Why: new descriptions come in bursts (many users, one deploy). One job for a
burst means one hand-off to the thread and one wake-up of the event loop
instead of one per description, and every adapter of the burst is ready for
registration at the same moment, so their registrations share one gap
between engine steps.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import Any, Callable, Sequence


class MicroBatcher:
    def __init__(self, executor: Executor, run_batch: Callable[[list], Sequence[Any]], window_s: float):
        if window_s < 0:
            raise ValueError(f"window_s must be >= 0, got {window_s}")
        self.executor = executor
        self.run_batch = run_batch
        self.window_s = window_s
        self._queue: list[tuple[Any, asyncio.Future]] = []
        self._running = False
        self._task: asyncio.Task | None = None  # the running drain (a reference keeps it alive)
        self.batch_sizes: list[int] = []  # size of each job run, most recent last (bounded)

    async def submit(self, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((item, future))
        if not self._running:
            self._running = True
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        """Run jobs until the queue is empty; only the first waits the collection window."""
        loop = asyncio.get_running_loop()
        try:
            if self.window_s > 0:
                await asyncio.sleep(self.window_s)
            while self._queue:
                batch, self._queue = self._queue, []
                self.batch_sizes = (self.batch_sizes + [len(batch)])[-1000:]
                try:
                    results = await loop.run_in_executor(self.executor, self.run_batch, [item for item, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(f"batch job returned {len(results)} results for {len(batch)} items")
                except BaseException as e:  # every caller of this job gets the failure
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(e)
                    if not isinstance(e, Exception):
                        raise
                    continue
                for (_, future), result in zip(batch, results):
                    if future.done():  # its caller was cancelled
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._running = False
            if self._queue:  # cancelled with items left: never strand a caller
                for _, future in self._queue:
                    if not future.done():
                        future.set_exception(RuntimeError("generation batcher stopped"))
                self._queue = []

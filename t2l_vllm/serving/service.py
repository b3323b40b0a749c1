"""The serving-side adapter cache: description -> registered adapter, once.

Engine-agnostic: it talks to the serving engine through `AdapterEngine`
(register / unregister by name), implemented for vLLM in `vllm_plugin.py`.

Life of a request that names an adapter (by description or by id):
    acquire  -> reference count +1 (from now on the adapter is never evicted)
             -> under the adapter's lock: resident? done. On disk? register it.
                Neither? generate it (thread pool), write it, register it.
    ...the request runs...
    release  -> reference count -1; over-bound adapters that are idle now go.

The per-adapter asyncio lock is the single flight: concurrent requests for the
same new description queue on it and find the adapter resident when they get it.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections import OrderedDict, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..adapter import adapter_id as make_adapter_id
from ..adapter import normalize_description, validate_adapter_id
from ..generator import AdapterGenerator
from .metrics import T2LMetrics
from .config import ServeConfig
from .store import AdapterStore


class AdapterEngine(ABC):
    """What the cache needs from a serving engine."""

    @abstractmethod
    async def register(self, adapter_id: str, path: Path) -> None:
        """Make `adapter_id` servable from the PEFT folder `path`; raise on failure."""

    @abstractmethod
    async def unregister(self, adapter_id: str) -> None:
        """Forget `adapter_id` and free its weights; a no-op if unknown."""


class AdapterNotFound(KeyError):
    """No adapter with this id is registered or stored."""


class AdapterInUse(RuntimeError):
    """The adapter serves requests right now."""


class GenerationFailed(RuntimeError):
    """Generating, writing or registering an adapter failed."""


@dataclass
class _Usage:
    hits: int = 0
    last_used: float = 0.0


class AdapterService:
    def __init__(self, generator: AdapterGenerator, store: AdapterStore, engine: AdapterEngine,
                 config: ServeConfig, metrics: T2LMetrics):
        self.generator = generator
        self.store = store
        self.engine = engine
        self.config = config
        self.metrics = metrics
        # One worker: torch work is serialised, and the event loop never blocks on it.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="t2l-generate")
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._refs: defaultdict[str, int] = defaultdict(int)
        self._resident: OrderedDict[str, None] = OrderedDict()  # LRU order, most recent last
        self._disk: OrderedDict[str, None] = OrderedDict((a, None) for a in store.ids())
        self._usage: defaultdict[str, _Usage] = defaultdict(_Usage)
        self._update_gauges()

    # ---- requests -------------------------------------------------------------

    def adapter_id_for(self, description: object) -> str:
        """Validate a description (ValueError) and return its adapter id."""
        text = normalize_description(description, self.config.max_description_chars)
        return make_adapter_id(text, self.generator.digest)

    async def acquire_description(self, description: object) -> str:
        """Make the adapter for `description` resident and hold it; returns its id."""
        text = normalize_description(description, self.config.max_description_chars)
        aid = make_adapter_id(text, self.generator.digest)
        await self._acquire(aid, text)
        return aid

    async def acquire_id(self, adapter_id: str) -> str:
        """Hold a known adapter by id (AdapterNotFound if it is neither registered nor stored)."""
        validate_adapter_id(adapter_id)
        if adapter_id not in self._resident and adapter_id not in self._disk:
            raise AdapterNotFound(adapter_id)
        await self._acquire(adapter_id, None)
        return adapter_id

    def release(self, adapter_id: str) -> None:
        self._refs[adapter_id] -= 1
        if self._refs[adapter_id] <= 0:
            del self._refs[adapter_id]
            if self._over_bounds():
                # Bounds skipped busy adapters earlier; now that one is idle, retry.
                asyncio.get_running_loop().create_task(self._enforce_bounds())

    async def _acquire(self, aid: str, text: str | None) -> None:
        self._refs[aid] += 1
        try:
            lock = self._locks[aid]
            if lock.locked():
                self.metrics.singleflight_joins.inc()
            async with lock:
                if aid in self._resident:
                    self.metrics.cache.labels("hit").inc()
                    self._resident.move_to_end(aid)
                else:
                    await self._make_resident(aid, text)
            usage = self._usage[aid]
            usage.hits += 1
            usage.last_used = time.time()
            if aid in self._disk:
                self._disk.move_to_end(aid)
            await asyncio.get_running_loop().run_in_executor(self._executor, self.store.touch, aid)
        except BaseException:
            self.release(aid)
            raise
        await self._enforce_bounds()

    async def _make_resident(self, aid: str, text: str | None) -> None:
        """Called under the adapter's lock: generate (if new), then register."""
        loop = asyncio.get_running_loop()
        try:
            if aid in self._disk and await loop.run_in_executor(self._executor, self.store.exists, aid):
                self.metrics.cache.labels("hit").inc()
                path = await loop.run_in_executor(self._executor, self.store.load_path, aid)
            elif text is None:
                self._disk.pop(aid, None)
                raise AdapterNotFound(aid)
            else:
                self.metrics.cache.labels("miss").inc()
                path = await loop.run_in_executor(self._executor, self._generate, aid, text)
                self._disk[aid] = None
            t0 = time.perf_counter()
            await self.engine.register(aid, path)
            self.metrics.generation_seconds.labels("register").observe(time.perf_counter() - t0)
        except AdapterNotFound:
            raise
        except Exception as e:
            self.metrics.generation_errors.inc()
            raise GenerationFailed(f"could not make adapter {aid} available: {e}") from e
        self._resident[aid] = None
        self._update_gauges()

    def _generate(self, aid: str, text: str) -> Path:
        """Runs in the worker thread: encode + hypernet + write both tiers."""
        [adapter] = self.generator.generate([text])
        if adapter.adapter_id != aid:  # ids and generation must agree on normalisation
            raise RuntimeError(f"generated id {adapter.adapter_id} != requested {aid}")
        t0 = time.perf_counter()
        path = self.store.put(aid, adapter.tensors, adapter.peft_config, text)
        m = self.metrics.generation_seconds
        m.labels("encode").observe(adapter.timings.encode_ms / 1e3)
        m.labels("hypernet").observe(adapter.timings.hypernet_ms / 1e3)
        m.labels("write").observe(time.perf_counter() - t0)
        return path

    # ---- bounds ---------------------------------------------------------------

    def _over_bounds(self) -> bool:
        return (
            len(self._resident) > self.config.max_engine_adapters or len(self._disk) > self.config.max_disk_adapters
        )

    async def _enforce_bounds(self) -> None:
        """Unload idle adapters over the engine bound, then delete idle files over the disk bound."""
        await self._evict_engine()
        await self._evict_disk()

    def _idle(self, aid: str) -> bool:
        return self._refs.get(aid, 0) == 0 and not self._locks[aid].locked()

    async def _evict_engine(self) -> None:
        while len(self._resident) > self.config.max_engine_adapters:
            victim = next((a for a in self._resident if self._idle(a)), None)
            if victim is None:
                return  # everything is in use; the next release tries again
            async with self._locks[victim]:
                del self._resident[victim]
                await self.engine.unregister(victim)
            self.metrics.evictions.labels("engine").inc()
            self._update_gauges()

    async def _evict_disk(self) -> None:
        loop = asyncio.get_running_loop()
        while len(self._disk) > self.config.max_disk_adapters:
            victim = next((a for a in self._disk if a not in self._resident and self._idle(a)), None)
            if victim is None:
                return
            del self._disk[victim]
            self._usage.pop(victim, None)
            self._locks.pop(victim, None)
            await loop.run_in_executor(self._executor, self.store.delete, victim)
            self.metrics.evictions.labels("disk").inc()
        self._update_gauges()

    def _update_gauges(self) -> None:
        self.metrics.resident.set(len(self._resident))
        self.metrics.on_disk.set(len(self._disk))

    # ---- admin ----------------------------------------------------------------

    def describe(self, adapter_id: str) -> dict:
        validate_adapter_id(adapter_id)
        if adapter_id not in self._disk:
            raise AdapterNotFound(adapter_id)
        try:
            stored = self.store.info(adapter_id)
        except KeyError:
            raise AdapterNotFound(adapter_id) from None
        usage = self._usage.get(adapter_id, _Usage())
        return {
            "id": adapter_id,
            "object": "t2l.adapter",
            "description": stored.description,
            "created": int(stored.created),
            "last_used": int(usage.last_used) if usage.last_used else None,
            "hits": usage.hits,
            "size_bytes": stored.size_bytes,
            "resident": adapter_id in self._resident,
            "in_use": self._refs.get(adapter_id, 0),
        }

    def list(self) -> list[dict]:
        out = []
        for aid in reversed(self._disk):  # most recently used first
            try:
                out.append(self.describe(aid))
            except AdapterNotFound:
                continue
        return out

    async def create(self, description: object) -> dict:
        """Generate and register without serving a request."""
        aid = await self.acquire_description(description)
        self.release(aid)
        return self.describe(aid)

    async def archive(self, adapter_id: str) -> bytes:
        validate_adapter_id(adapter_id)
        if adapter_id not in self._disk:
            raise AdapterNotFound(adapter_id)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self.store.archive, adapter_id)
        except KeyError:
            raise AdapterNotFound(adapter_id) from None

    async def delete(self, adapter_id: str) -> None:
        validate_adapter_id(adapter_id)
        if adapter_id not in self._disk and adapter_id not in self._resident:
            raise AdapterNotFound(adapter_id)
        async with self._locks[adapter_id]:
            if self._refs.get(adapter_id, 0):
                raise AdapterInUse(f"adapter {adapter_id} is serving {self._refs[adapter_id]} request(s); retry later")
            if adapter_id in self._resident:
                del self._resident[adapter_id]
                await self.engine.unregister(adapter_id)
            self._disk.pop(adapter_id, None)
            self._usage.pop(adapter_id, None)
            await asyncio.get_running_loop().run_in_executor(self._executor, self.store.delete, adapter_id)
        self._locks.pop(adapter_id, None)
        self._update_gauges()

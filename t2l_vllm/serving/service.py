"""The serving-side adapter cache: description -> registered adapter, once.

Engine-agnostic: it talks to the serving engine through `AdapterEngine`
(register / unregister by name), implemented for vLLM in `vllm_plugin.py`.

Life of a request that names an adapter (by description or by id):
    acquire  -> reference count +1 (from now on the adapter is never evicted)
             -> under the adapter's lock: resident? done. Stored? verify its
                digest and register it (a corrupt copy is regenerated from its
                description). Neither? generate it (generation thread), write
                it, register it.
    ...the request runs...
    release  -> reference count -1; over-bound adapters that are idle now go.

Invariants:
- The per-adapter asyncio lock is the single flight: concurrent requests for
  the same new description queue on it and find the adapter resident when they
  get it. A lock is forgotten only while nobody holds, waits on or references
  the adapter, so two callers never hold different locks for one id.
- Every change to an adapter's registration or files (make resident, evict,
  delete) happens under its lock, and only while no request references it.
- `_resident` lists an adapter from the moment its registration succeeded
  until its unregistration succeeded.
- Hypernetwork work runs on one generation thread (with --generator-process
  the thread drives a child process that does the torch work:
  generator_process.py); file operations (touch,
  verify, archive, delete) run on an I/O pool, so a warm hit never queues
  behind generations.
- Admission: at most `max_pending_generations` hypernetwork jobs run or wait
  (one per distinct new description: requests for a description already being
  generated wait on its lock, not for a slot); one more is refused with
  `TooManyGenerations` (429) instead of queueing behind a flood.
- Pinned adapters are never evicted, from the engine or the disk; they count
  against the bounds, and at least one engine slot stays unpinned.
- The fast (tmpfs) tier mirrors the engine: a copy is dropped when its
  adapter is unregistered, so its size is that of the registered adapters.
- Reuse (`acquire_served`, reuse.py, library.py): a description without an
  adapter of its own is first matched against the library (uploaded
  adapters) and then the reuse index (adapters generated here), by canonical
  text and, when configured, by embedding plus a lexical check; a match is
  acquired by id instead of generating. Blends (blends.py) are made under
  their own lock by `acquire_made`.
- With a shared store (`shared_store.py`, servers of one cluster), an adapter
  missing here is adopted from it before anything is generated, a new one is
  generated under the store's lock for its id and published there, and a
  delete removes the shared copy too. Requests by id find shared adapters.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections import OrderedDict, defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..adapter import adapter_id as make_adapter_id
from ..adapter import normalize_description, validate_adapter_id
from ..confidence import route
from ..generator import AdapterGenerator
from ..reuse import DEFAULT_LIBRARY_THRESHOLD, DEFAULT_REUSE_THRESHOLD, ReuseIndex, ReuseMatch, canonical_text
from ..routing import DEFAULT_ROUTED_MARGIN, DEFAULT_ROUTED_THRESHOLD
from .batcher import MicroBatcher
from .config import ServeConfig
from .generator_process import GeneratorProcess
from .metrics import T2LMetrics
from .shared_store import LOCK_POLL_S, LOCK_TIMEOUT_S, SharedAdapterStore
from .store import AdapterStore, StoredAdapter, StoredAdapterInvalid

logger = logging.getLogger("vllm.t2l_vllm")


class AdapterEngine(ABC):
    """What the cache needs from a serving engine."""

    @abstractmethod
    async def register(self, adapter_id: str, path: Path, trusted: bool = False) -> None:
        """Make `adapter_id` servable from the PEFT folder `path`; raise on failure.

        trusted: the folder was written by this server's generator (shapes, rank and
        files known good), so the engine may load it with the first request that uses
        it instead of checking it by loading it now.
        """

    @abstractmethod
    async def unregister(self, adapter_id: str) -> None:
        """Forget `adapter_id` and free its weights; a no-op if unknown."""


class AdapterNotFound(KeyError):
    """No adapter with this id is registered or stored."""


class AdapterInUse(RuntimeError):
    """The adapter serves requests right now."""


class GenerationFailed(RuntimeError):
    """Generating, writing or registering an adapter failed (details in the server log)."""


class TooManyGenerations(RuntimeError):
    """Admission refused a new hypernetwork job (HTTP 429); retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


class AdapterPinned(RuntimeError):
    """The adapter is pinned: unpin it before deleting it."""


def build_reuse_index(generator: AdapterGenerator, config: ServeConfig) -> ReuseIndex | None:
    """The reuse index --reuse asks for; semantic only with a threshold chosen for this encoder.

    DEFAULT_REUSE_THRESHOLD was chosen on the embedded encoder's vectors; any
    other encoder needs --reuse-threshold, else only canonical text is reused.
    """
    if config.reuse == "off":
        return None
    threshold = config.reuse_threshold
    enc = generator.hypernet.config.encoder
    if threshold is None and enc.kind == "hf-mean" and enc.source == "default":
        threshold = DEFAULT_REUSE_THRESHOLD
    if config.reuse == "exact" or threshold is None:
        if config.reuse == "semantic":
            logger.info("t2l-vllm: --reuse semantic needs --reuse-threshold for this encoder; reusing exact text only")
        threshold = None
    return ReuseIndex(generator.encoder.dim, threshold)


def build_library(generator: AdapterGenerator, config: ServeConfig):
    """The (empty) library; semantic matching needs a threshold chosen for this encoder, as for reuse.

    With the checkpoint's router (routing.py) matching happens in its task metric, against the
    hypernetwork's training descriptions too, with thresholds chosen there; without one, raw cosine.
    """
    from .library import Library

    router = generator.router
    threshold = config.library_threshold
    enc = generator.hypernet.config.encoder
    if threshold is None and router is not None:
        threshold = DEFAULT_ROUTED_THRESHOLD
    elif threshold is None and enc.kind == "hf-mean" and enc.source == "default":
        threshold = DEFAULT_LIBRARY_THRESHOLD
    margin = DEFAULT_ROUTED_MARGIN if config.library_margin is None else config.library_margin
    return Library(generator.encoder.dim, threshold, router=router, margin=margin)


# Rate window of --max-new-adapters-per-minute.
RATE_WINDOW_S = 60.0


@dataclass
class _Usage:
    hits: int = 0
    last_used: float = 0.0
    reused: int = 0  # requests for other descriptions it served (semantic reuse)


@dataclass(frozen=True)
class _Made:
    """A new adapter's first copy, written by the generation thread."""

    path: Path  # the folder the engine loads
    durable_pending: bool  # only the fast copy exists: the durable one is still to be written
    tensors: dict
    peft_config: dict
    confidence: float | None
    embedding: object  # torch.Tensor [enc_dim] or None


def _set_torch_threads(n: int) -> None:
    """Initializer of the generation thread: its torch (OpenMP) thread count; 0 keeps torch's default."""
    if n > 0:
        import torch

        torch.set_num_threads(n)


@dataclass(frozen=True)
class Acquired:
    """The adapter a request holds, and the reuse match when it was made for another description."""

    adapter_id: str
    reuse: ReuseMatch | None = None


class AdapterService:
    def __init__(self, generator: AdapterGenerator, store: AdapterStore, engine: AdapterEngine,
                 config: ServeConfig, metrics: T2LMetrics, shared: SharedAdapterStore | None = None,
                 worker: GeneratorProcess | None = None):
        """worker: where generate/embed/confidence run (a GeneratorProcess); None: `generator`, on the generation thread."""
        self.generator = generator  # ids, digest and config; the torch work runs on `self.worker`
        self.worker = worker if worker is not None else generator
        self.store = store
        self.shared = shared
        self.engine = engine
        self.config = config
        self.metrics = metrics
        # One generation worker: torch work is serialised, and the event loop never blocks on it.
        # Its torch thread count is set in the thread itself (OpenMP's count is per thread).
        self._generate_pool = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="t2l-generate",
            initializer=_set_torch_threads, initargs=(config.generator_threads,),
        )
        # New descriptions that arrive together are generated in one job on that thread.
        self._batcher = MicroBatcher(self._generate_pool, self._generate_batch, config.generation_batch_ms / 1e3)
        # adapter id -> its durable write, running while the engine registers the fast copy.
        self._durable_writes: dict[str, asyncio.Task] = {}
        self._io_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="t2l-io")
        self._locks: dict[str, asyncio.Lock] = {}
        self._refs: defaultdict[str, int] = defaultdict(int)
        self._resident: OrderedDict[str, None] = OrderedDict()  # LRU order, most recent last
        store.claim()  # AdapterFolderInUse when another server owns the folder
        swept = store.sweep()
        if shared is not None:
            swept += shared.sweep()
        if swept:
            logger.info("t2l-vllm: removed %d leftover entries (temp files, stale fast copies)", len(swept))
        self._disk: OrderedDict[str, None] = OrderedDict((a, None) for a in store.ids())
        self._usage: defaultdict[str, _Usage] = defaultdict(_Usage)
        # adapter id -> confidence of its description, most recent last; bounded like the disk.
        self._confidence: OrderedDict[str, float | None] = OrderedDict()
        # adapter id -> how it last became resident here (source, ms to get its files, ms to
        # register), most recent last; bounded like the disk. Shown by the admin routes.
        self._made: OrderedDict[str, dict] = OrderedDict()
        self._tasks: set[asyncio.Task] = set()
        self._pinned: set[str] = set(store.pinned_ids())
        self._jobs = 0  # hypernetwork jobs running or queued (admission control)
        self._job_seconds = 0.05  # moving average of one job, for Retry-After
        self._created: defaultdict[str, deque[float]] = defaultdict(deque)  # client -> creation times
        self.reuse_index = build_reuse_index(generator, config)  # None with --reuse off
        self.max_lora_rank: int | None = None  # vLLM's --max-lora-rank (blends stack ranks up to it)
        self.base_names: tuple[str, ...] = (generator.base_model_name,)  # names library uploads may declare
        self.library = build_library(generator, config)  # uploaded adapters (library.py), matched first
        self._library_memo: OrderedDict[str, ReuseMatch | None] = OrderedDict()  # adapter id -> library match
        # Canonical text -> (adapter id, description) of a new adapter being made for it: with --reuse,
        # a variant arriving meanwhile ("Reply in French." / "reply in French") waits for that one
        # instead of generating its own (the reuse index learns an adapter only once it is made).
        self._making: dict[str, tuple[str, str]] = {}
        metrics.fast_bytes.set_function(store.fast_bytes)
        self._update_gauges()

    async def start(self) -> None:
        """Make pinned adapters resident again after a restart (in the background)."""
        for aid in sorted(self._pinned):
            self._spawn(self._restore_pin(aid))
        self._spawn(self._index_stored())

    async def _restore_pin(self, aid: str) -> None:
        try:
            self.release(await self.acquire_id(aid))
        except Exception:
            logger.exception("t2l-vllm: could not make pinned adapter %s resident", aid)

    # ---- requests -------------------------------------------------------------

    def adapter_id_for(self, description: object) -> str:
        """Validate a description (ValueError) and return its adapter id."""
        text = normalize_description(description, self.config.max_description_chars)
        return make_adapter_id(text, self.generator.digest)

    async def acquire_description(self, description: object, client: str = "") -> str:
        """Make the adapter for `description` resident and hold it; returns its id.

        `client` (e.g. a digest of the API key) is what --max-new-adapters-per-minute counts by.
        """
        return (await self.acquire_served(description, client)).adapter_id

    async def acquire_served(self, description: object, client: str = "") -> Acquired:
        """`acquire_description`, saying when an adapter made for another description serves it (--reuse).

        A library adapter that matches the description serves it; else a
        description with its own adapter made already uses it; else the reuse
        index is asked (canonical text, then nearest neighbour) before anything
        is generated. A match that vanished meanwhile is forgotten and the
        description gets its own adapter.
        """
        text = normalize_description(description, self.config.max_description_chars)
        aid = make_adapter_id(text, self.generator.digest)
        match = await self._reuse_match(aid, text)
        if match is not None:
            try:
                await self._acquire(match.adapter_id, None, hit=f"{match.kind}_hit")
            except AdapterNotFound:
                self._unindex(match.adapter_id)
            else:
                self._usage[match.adapter_id].reused += 1
                return Acquired(match.adapter_id, match)
        if self.reuse_index is None or aid in self._disk or aid in self._resident:
            await self._acquire(aid, text, client)
            return Acquired(aid)
        key = canonical_text(text)
        making = self._making.get(key)
        if making is not None and making[0] != aid:  # its canonical twin is being made: share it
            try:
                await self._acquire(making[0], None, hit="exact_hit")
            except AdapterNotFound:  # that generation failed: make our own
                pass
            else:
                self._usage[making[0]].reused += 1
                return Acquired(making[0], ReuseMatch(making[0], making[1], 1.0, "exact"))
        self._making.setdefault(key, (aid, text))
        try:
            await self._acquire(aid, text, client)
        finally:
            if self._making.get(key, (None,))[0] == aid:
                del self._making[key]
        return Acquired(aid)

    async def reuse_candidates(self, description: object, k: int = 5) -> dict:
        """What --reuse would do with `description`, without acquiring anything (admin preview)."""
        from ..reuse import lexical_conflict

        text = normalize_description(description, self.config.max_description_chars)
        aid = make_adapter_id(text, self.generator.digest)
        index = self.reuse_index
        out = {"adapter_id": aid, "own_adapter_exists": aid in self._disk, "reuse": self.config.reuse,
               "threshold": None if index is None else index.threshold, "match": None, "nearest": []}
        emb = None
        if len(self.library):  # library matches come first (acquire_served)
            if self.library.index.threshold is not None:
                [emb] = await self._on_generator(self.worker.embed, [text])
            out["library"] = self.library.explain(text, emb)
        if index is None:
            return out
        if index.threshold is not None and index.embedded:
            if emb is None:
                [emb] = await self._on_generator(self.worker.embed, [text])
            out["nearest"] = [
                {"adapter_id": a, "description": d, "similarity": round(sim, 4), "conflict": lexical_conflict(text, d)}
                for a, d, sim in index.nearest(emb, k)
            ]
        match = index.match(text, emb)
        if match is not None and match.adapter_id == aid:  # its own adapter: nothing is reused
            match = None
        out["match"] = None if match is None else {
            "adapter_id": match.adapter_id, "kind": match.kind, "similarity": match.similarity,
            "description": match.description,
        }
        return out

    async def _reuse_match(self, aid: str, text: str) -> ReuseMatch | None:
        """The adapter to serve `text` with instead of its own (`aid`): a library adapter, else an indexed one; or None.

        At most one encoder pass (a few ms, on the generation thread); generation,
        when nothing matches, encodes again: the price of a cheap miss path. Library
        decisions are remembered per description until the library changes, so a
        description with its own adapter pays the pass once.
        """
        emb = None

        async def embedding():
            nonlocal emb
            if emb is None:
                t0 = time.perf_counter()
                [emb] = await self._on_generator(self.worker.embed, [text])
                self.metrics.generation_seconds.labels("match").observe(time.perf_counter() - t0)
            return emb

        if len(self.library):
            if aid in self._library_memo:
                match = self._library_memo[aid]
            else:
                match = self.library.match(text, None)
                if match is None and self.library.index.threshold is not None:
                    match = self.library.match(text, await embedding())
                self._library_memo[aid] = match
                while len(self._library_memo) > self.config.max_disk_adapters:
                    self._library_memo.popitem(last=False)
            if match is not None and match.adapter_id in self._disk:
                return match
        index = self.reuse_index
        if index is None or aid in self._disk or aid in self._resident:
            return None
        match = index.exact(text)
        if match is None and index.threshold is not None and index.embedded:
            match = index.match(text, await embedding())
        if match is None or match.adapter_id == aid:
            return None
        return match

    # ---- the library (library.py) ---------------------------------------------------

    async def register_library(self, payload: dict, spec, base_names: tuple[str, ...]) -> dict:
        """Check and store an uploaded adapter, index its descriptions; its record (ValueError: bad upload)."""
        from .library import parse_upload

        if len(self.library) >= self.config.max_library_adapters:
            raise ValueError(f"the library holds {len(self.library)} adapters (--max-library-adapters "
                             f"{self.config.max_library_adapters}); delete one first")
        upload = await self._io(
            parse_upload, payload, spec, base_names, self.max_lora_rank,
            self.config.max_library_adapter_mib * 2**20, self.config.max_description_chars,
        )
        aid = upload.adapter_id
        embs = await self._on_generator(self.worker.embed, list(upload.descriptions)) \
            if self.library.index.threshold is not None else None
        async with self._lock(aid):
            extra = {"name": upload.name, "descriptions": list(upload.descriptions)}
            await self._io(lambda: self.store.put_durable(
                aid, upload.tensors, upload.peft_config, upload.descriptions[0], None, "library", extra))
            self._disk[aid] = None
            if self.shared is not None:  # servers (replicas) that start later adopt it from there
                await self._io(self.shared.publish, aid, self.store)
            self.library.add(aid, upload.descriptions, embs)
            self._library_memo.clear()
        self._forget_lock(aid)
        self._update_gauges()
        await self._enforce_bounds()
        return self.describe(aid)

    def library_list(self) -> list[dict]:
        return [self.describe(aid) for aid in list(self.library.descriptions) if aid in self._disk]

    async def _index_stored(self) -> None:
        """After a restart: index the stored adapters this checkpoint generated (background, batches of 32),
        after adopting the shared store's library adapters (uploaded to other servers of the cluster)."""
        try:
            if self.shared is not None:
                await self._adopt_shared_library()
            owned = []
            for aid in list(self._disk):
                text = await self._io(self.store.description, aid)
                if text is None:
                    continue
                if await self._index_library(aid):
                    continue
                try:
                    norm = normalize_description(text, self.config.max_description_chars)
                except ValueError:
                    continue
                if make_adapter_id(norm, self.generator.digest) == aid:  # not a blend, library or other checkpoint
                    owned.append((aid, norm))
            if self.reuse_index is None:
                return
            semantic = self.reuse_index.threshold is not None
            loop = asyncio.get_running_loop()
            for i in range(0, len(owned), 32):
                chunk = owned[i:i + 32]
                embs = await loop.run_in_executor(self._generate_pool, self.worker.embed, [t for _, t in chunk]) \
                    if semantic else [None] * len(chunk)
                for (aid, text), emb in zip(chunk, embs):
                    if aid in self._disk:
                        self.reuse_index.add(aid, text, emb)
        except Exception:
            logger.exception("t2l-vllm: could not index the stored adapters for reuse; new ones are still indexed")

    async def _adopt_shared_library(self) -> None:
        """Copy the shared store's library adapters this server lacks into its private folder."""
        for aid in await self._io(self.shared.store.ids):
            if aid in self._disk:
                continue
            try:
                if (await self._io(self.shared.info, aid)).kind != "library":
                    continue
                if await self._io(self.shared.import_into, aid, self.store):
                    self._disk[aid] = None
            except (KeyError, ValueError, OSError, StoredAdapterInvalid):
                logger.warning("t2l-vllm: shared library adapter %s could not be adopted; skipped", aid)
        self._update_gauges()

    async def _index_library(self, aid: str) -> bool:
        """A stored library adapter goes back into the library (True); anything else is left (False)."""
        try:
            info = await self._io(self.store.info, aid)
        except (KeyError, ValueError):
            return False
        if info.kind != "library":
            return False
        texts = tuple((info.extra or {}).get("descriptions") or [info.description])
        embs = await self._on_generator(self.worker.embed, list(texts)) \
            if self.library.index.threshold is not None else None
        if aid in self._disk:
            self.library.add(aid, texts, embs)
            self._library_memo.clear()
        return True

    def _unindex(self, aid: str) -> None:
        if self.reuse_index is not None:
            self.reuse_index.remove(aid)
        if aid in self.library:
            self.library.remove(aid)
            self._library_memo.clear()

    async def route_for(self, description: object) -> tuple[str, float | None]:
        """How to serve a description: ("adapter" | "prompt" | "both", its confidence).

        Below `min_confidence` the configured policy applies; at or above it,
        and when the checkpoint carries no confidence index, the adapter serves.
        Under the "adapter" policy the score is not computed up front (it comes
        with generation), so that policy costs nothing extra.
        """
        text = normalize_description(description, self.config.max_description_chars)
        aid = make_adapter_id(text, self.generator.digest)
        policy = self.config.low_confidence_policy
        if policy == "adapter":
            return "adapter", self.confidence(aid)
        conf = await self._confidence_of(text, aid)
        return route(conf, policy, self.config.min_confidence), conf

    def confidence(self, adapter_id: str) -> float | None:
        """The known confidence of an adapter's description (None: unknown or no index)."""
        return self._confidence.get(adapter_id)

    async def _confidence_of(self, text: str, aid: str) -> float | None:
        if aid in self._confidence:
            return self._confidence[aid]
        conf = await self._io(self._stored_confidence, aid)
        if conf is None:  # one encoder pass, on the generation thread like all torch work; generation reuses it
            t0 = time.perf_counter()
            [conf] = await self._on_generator(self.worker.confidence, [text])
            self.metrics.generation_seconds.labels("confidence").observe(time.perf_counter() - t0)
        self._remember_confidence(aid, conf)
        return conf

    def _stored_confidence(self, aid: str) -> float | None:
        try:
            info = self.store.info(aid)
        except (KeyError, ValueError):
            return None
        return info.confidence

    def _remember_confidence(self, aid: str, conf: float | None) -> None:
        self._confidence[aid] = conf
        self._confidence.move_to_end(aid)
        while len(self._confidence) > self.config.max_disk_adapters:
            self._confidence.popitem(last=False)

    async def acquire_id(self, adapter_id: str) -> str:
        """Hold a known adapter by id (AdapterNotFound if it is neither registered nor stored)."""
        validate_adapter_id(adapter_id)
        if adapter_id not in self._resident and adapter_id not in self._disk and not await self._in_shared(adapter_id):
            raise AdapterNotFound(adapter_id)
        await self._acquire(adapter_id, None)
        return adapter_id

    async def _in_shared(self, adapter_id: str) -> bool:
        return self.shared is not None and await self._io(self.shared.has, adapter_id)

    def release(self, adapter_id: str) -> None:
        self._refs[adapter_id] -= 1
        if self._refs[adapter_id] <= 0:
            del self._refs[adapter_id]
            self._forget_lock(adapter_id)
            if self._over_bounds():
                # Bounds skipped busy adapters earlier; now that one is idle, retry.
                self._spawn(self._enforce_bounds())

    def in_use(self, adapter_id: str) -> int:
        return self._refs.get(adapter_id, 0)

    async def acquire_made(self, adapter_id: str, make) -> str:
        """Hold `adapter_id`; when it is neither registered nor stored, `await make()` writes it (under its lock).

        For adapters that are not generated from one description (blends: blends.py).
        `make` returns the folder the engine should load, the adapter already in the store.
        """
        validate_adapter_id(adapter_id)
        await self._acquire(adapter_id, None, make=make)
        return adapter_id

    async def _acquire(self, aid: str, text: str | None, client: str = "", hit: str = "hit", make=None) -> None:
        """`hit`: the cache result counted when the adapter exists (exact_hit / semantic_hit for reuse).
        `make`: see acquire_made."""
        self._refs[aid] += 1
        try:
            lock = self._lock(aid)
            if lock.locked():
                self.metrics.singleflight_joins.inc()
            async with lock:
                if aid in self._resident:
                    self.metrics.cache.labels(hit).inc()
                    self._resident.move_to_end(aid)
                else:
                    await self._make_resident(aid, text, client, hit, make)
            usage = self._usage[aid]
            usage.hits += 1
            usage.last_used = time.time()
            if aid in self._disk:
                self._disk.move_to_end(aid)
            await self._io(self.store.touch, aid)
        except BaseException:
            self.release(aid)
            raise
        await self._enforce_bounds()

    async def _make_resident(self, aid: str, text: str | None, client: str = "", hit: str = "hit",
                             make=None) -> None:
        """Called under the adapter's lock: generate (if new), verify, then register."""
        started, source = time.perf_counter(), "disk"
        try:
            path = await self._stored_path(aid, text, hit)
            if path is None:
                path, source = await self._from_shared(aid), "shared"
            if path is None and make is not None:
                path, source = await make(), "made"
                self._disk[aid] = None
            if path is None:
                source = "generated"
                if text is None:
                    self._disk.pop(aid, None)
                    raise AdapterNotFound(aid)
                admitted = self._admit_new_adapter(client)
                try:
                    path, generated = await self._generate_once(aid, text)
                except TooManyGenerations:
                    self._unadmit(client, admitted)  # refused for the queue: nothing was created
                    raise
                if not generated:
                    self._unadmit(client, admitted)  # another server made it while we waited
                    source = "shared"
            t0 = time.perf_counter()
            registered = False
            try:
                # Just generated here: the engine loads it with the request (no round trip to the engine first).
                await self.engine.register(aid, path, trusted=source == "generated")
                registered = True
                t1 = time.perf_counter()
                # A new adapter's durable copy was being written meanwhile: it is stored from here on.
                await self._durable_done(aid)
            except BaseException:
                if registered:  # its durable copy failed: serve nothing that a restart would not find
                    await self.engine.unregister(aid)
                else:
                    await self._durable_done(aid, raise_error=False)
                await self._io(self.store.drop_fast, aid)  # the fast tier holds only registered adapters
                raise
            self.metrics.generation_seconds.labels("register").observe(t1 - t0)
            self._remember_made(aid, source, (t0 - started) * 1e3, (t1 - t0) * 1e3)
        except (AdapterNotFound, TooManyGenerations):
            raise
        except Exception as e:
            self.metrics.generation_errors.inc()
            logger.exception("t2l-vllm: could not make adapter %s available", aid)
            # The message goes to the client: no server paths or internals in it.
            raise GenerationFailed(f"could not make adapter {aid} available ({type(e).__name__}; see the server log)") from e
        self._resident[aid] = None
        self._update_gauges()

    def _remember_made(self, aid: str, source: str, files_ms: float, register_ms: float) -> None:
        self._made[aid] = {"source": source, "files_ms": round(files_ms, 3), "register_ms": round(register_ms, 3)}
        self._made.move_to_end(aid)
        while len(self._made) > self.config.max_disk_adapters:
            self._made.popitem(last=False)

    async def _stored_path(self, aid: str, text: str | None, hit: str = "hit") -> Path | None:
        """The verified folder of a stored adapter; None when it must be generated.

        A stored copy that fails verification is deleted, and regenerated from
        the description it was made from (the request's, else its metadata's).
        """
        if aid not in self._disk:
            return None
        try:
            path = await self._io(self.store.verified_path, aid)
        except KeyError:
            self._disk.pop(aid, None)
            return None
        except StoredAdapterInvalid:
            logger.warning("t2l-vllm: stored adapter %s failed verification; regenerating it", aid)
            description = text or await self._io(self.store.description, aid)
            await self._io(self.store.delete, aid)
            self._disk.pop(aid, None)
            if description is None:
                raise AdapterNotFound(aid) from None
            if text is None:  # regenerate from the metadata's description (checked to match the id)
                if (path := await self._from_shared(aid)) is not None:
                    return path
                text = normalize_description(description, self.config.max_description_chars)
                if make_adapter_id(text, self.generator.digest) != aid:
                    raise AdapterNotFound(aid) from None
                self.metrics.cache.labels("miss").inc()
                return await self._generate_on_thread(aid, text)
            return None
        self.metrics.cache.labels(hit).inc()
        return path

    async def _from_shared(self, aid: str) -> Path | None:
        """Adopt the shared store's copy into the private folder; its verified path, or None.

        A shared copy that fails verification is deleted there (it is regenerated like a new one).
        """
        if self.shared is None:
            return None
        try:
            found = await self._io(self.shared.import_into, aid, self.store)
        except StoredAdapterInvalid:
            logger.warning("t2l-vllm: shared copy of adapter %s failed verification; removing it", aid)
            await self._io(self.shared.delete, aid)
            return None
        if not found:
            return None
        self._disk[aid] = None
        self.metrics.cache.labels("shared").inc()
        return await self._io(self.store.verified_path, aid)

    async def _generate_once(self, aid: str, text: str) -> tuple[Path, bool]:
        """Generate a new adapter (True), or find that another server of the cluster just did (False).

        With a shared store: under its lock for `aid` (waiting at most LOCK_TIMEOUT_S),
        look there once more, else generate and publish before releasing.
        """
        if self.shared is None:
            self.metrics.cache.labels("miss").inc()
            return await self._generate_on_thread(aid, text), True
        fd = await self._shared_lock(aid)
        try:
            if (path := await self._from_shared(aid)) is not None:
                return path, False
            self.metrics.cache.labels("miss").inc()
            path = await self._generate_on_thread(aid, text)
            try:
                await self._durable_done(aid)  # publishing copies the durable copy
            except BaseException:
                await self._io(self.store.drop_fast, aid)
                raise
            try:
                await self._io(self.shared.publish, aid, self.store)
            except Exception:
                logger.exception("t2l-vllm: could not publish adapter %s to the shared store; it is served from here", aid)
            return path, True
        finally:
            if fd is not None:
                self.shared.unlock(fd)

    async def _shared_lock(self, aid: str) -> int | None:
        """The shared store's lock for `aid` (its fd); None after LOCK_TIMEOUT_S (generate anyway)."""
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while (fd := await self._io(self.shared.try_lock, aid)) is None:
            if time.monotonic() >= deadline:
                logger.warning("t2l-vllm: waited %.0f s for another server's generation of %s; generating it here",
                               LOCK_TIMEOUT_S, aid)
                return None
            await asyncio.sleep(LOCK_POLL_S)
        return fd

    async def _generate_on_thread(self, aid: str, text: str) -> Path:
        """Generate `aid` (batched with other new descriptions); returns the folder the engine should load.

        With a fast tier, only the fast copy exists on return: the durable copy
        is written on the I/O pool while the caller registers the fast one, and
        the caller awaits `_durable_done(aid)` before it releases the adapter.
        """
        made = await self._admitted(lambda: self._batcher.submit((aid, text, time.perf_counter())))
        if made.durable_pending:
            self._durable_writes[aid] = asyncio.get_running_loop().create_task(self._write_durable(aid, text, made))
        else:
            self._stored(aid, text, made)
        return made.path

    async def _write_durable(self, aid: str, text: str, made: "_Made") -> None:
        t0 = time.perf_counter()
        await self._io(self.store.put_durable, aid, made.tensors, made.peft_config, text, made.confidence)
        self.metrics.generation_seconds.labels("durable").observe(time.perf_counter() - t0)
        self._stored(aid, text, made)

    async def _durable_done(self, aid: str, raise_error: bool = True) -> None:
        """Wait for the durable write of a new adapter, if one is running (a no-op otherwise)."""
        task = self._durable_writes.pop(aid, None)
        if task is None:
            return
        try:
            await task
        except Exception:
            if raise_error:
                raise
            logger.exception("t2l-vllm: durable copy of adapter %s failed", aid)

    def _stored(self, aid: str, text: str, made: "_Made") -> None:
        """Bookkeeping once a new adapter's durable copy exists."""
        self._disk[aid] = None
        self._remember_confidence(aid, made.confidence)
        if self.reuse_index is not None:
            self.reuse_index.add(aid, text, made.embedding if self.reuse_index.threshold is not None else None)
        if self.config.log_descriptions:
            logger.info("t2l-vllm: adapter %s made from task_description %r", aid, text)

    # ---- admission --------------------------------------------------------------

    async def _on_generator(self, fn, *args):
        """Run a hypernetwork job (embed, confidence) on the generation thread, if admission lets one
        more in. A failure (e.g. the generator process died) is a GenerationFailed: an OpenAI error
        for the request, never an unhandled exception in the server."""
        try:
            return await self._admitted(lambda: asyncio.get_running_loop().run_in_executor(self._generate_pool, fn, *args))
        except TooManyGenerations:
            raise
        except Exception as e:
            self.metrics.generation_errors.inc()
            logger.exception("t2l-vllm: the generator failed on a %s job", getattr(fn, "__name__", "generator"))
            raise GenerationFailed(f"could not read the task_description ({type(e).__name__}; see the server log)") from e

    async def _admitted(self, start):
        """`await start()` (one hypernetwork job) if admission lets one more in, else TooManyGenerations."""
        if self._jobs >= self.config.max_pending_generations:
            self.metrics.rejected.labels("pending").inc()
            raise TooManyGenerations(
                f"{self._jobs} adapter generations are running or queued (--max-pending-generations "
                f"{self.config.max_pending_generations}); retry later",
                retry_after=self._jobs * self._job_seconds,
            )
        self._jobs += 1
        self.metrics.pending.set(self._jobs)
        t0 = time.perf_counter()
        try:
            return await start()
        finally:
            self._jobs -= 1
            self.metrics.pending.set(self._jobs)
            # Time in the pool includes the queue; divided by what was ahead, about one job.
            self._job_seconds = 0.8 * self._job_seconds + 0.2 * (time.perf_counter() - t0) / max(1, self._jobs + 1)

    def _admit_new_adapter(self, client: str) -> float | None:
        """--max-new-adapters-per-minute, per client, over a sliding 60 s window; returns the recorded time."""
        limit = self.config.max_new_adapters_per_minute
        if not limit:
            return None
        now = time.monotonic()
        times = self._created[client]
        while times and now - times[0] >= RATE_WINDOW_S:
            times.popleft()
        if len(times) >= limit:
            self.metrics.rejected.labels("rate").inc()
            raise TooManyGenerations(
                f"this API key created {len(times)} new adapters in the last minute "
                f"(--max-new-adapters-per-minute {limit}); reuse an adapter or retry later",
                retry_after=RATE_WINDOW_S - (now - times[0]),
            )
        times.append(now)
        if len(self._created) > 10_000:  # forget idle clients so the table stays bounded
            for key in [k for k, v in self._created.items() if not v or now - v[-1] >= RATE_WINDOW_S]:
                del self._created[key]
        return now

    def _unadmit(self, client: str, admitted: float | None) -> None:
        times = self._created.get(client)
        if admitted is not None and times and admitted in times:
            times.remove(admitted)

    def _generate_batch(self, items: list[tuple[str, str, float]]) -> list:
        """Runs in the generation thread: one generator call for a batch of (id, text, submitted at),
        then each one's first copy.

        Returns one `_Made` or exception per item. A failing generator call is
        retried one description at a time, so one bad description fails alone.
        """
        started = time.perf_counter()
        self.metrics.batch_size.observe(len(items))
        for _, _, submitted in items:  # the collection window plus any job ahead of this one
            self.metrics.generation_seconds.labels("queue").observe(started - submitted)
        return self._generate_items([(aid, text) for aid, text, _ in items])

    def _generate_items(self, items: list[tuple[str, str]]) -> list:
        try:
            adapters = self.worker.generate([text for _, text in items])
        except Exception as e:
            if len(items) == 1:
                return [e]
            return [self._generate_items([item])[0] for item in items]
        out = []
        for (aid, text), adapter in zip(items, adapters):
            try:
                out.append(self._first_copy(aid, text, adapter))
            except Exception as e:
                out.append(e)
        return out

    def _first_copy(self, aid: str, text: str, adapter) -> "_Made":
        """Write the copy the engine loads: the fast one alone when there is a fast tier, else the durable one."""
        if adapter.adapter_id != aid:  # ids and generation must agree on normalisation
            raise RuntimeError(f"generated id {adapter.adapter_id} != requested {aid}")
        t0 = time.perf_counter()
        path = self.store.put_fast(aid, adapter.tensors, adapter.peft_config)
        pending = path is not None
        if not pending:
            path = self.store.put(aid, adapter.tensors, adapter.peft_config, text, confidence=adapter.confidence)
        m = self.metrics.generation_seconds
        # A batch's encode and hypernet times are the whole job's: what each of its adapters waited.
        m.labels("encode").observe(adapter.timings.encode_ms / 1e3)
        m.labels("hypernet").observe(adapter.timings.hypernet_ms / 1e3)
        m.labels("write").observe(time.perf_counter() - t0)
        return _Made(path, pending, adapter.tensors, adapter.peft_config, adapter.confidence, adapter.embedding)

    # ---- locks and background work ---------------------------------------------

    def _lock(self, aid: str) -> asyncio.Lock:
        lock = self._locks.get(aid)
        if lock is None:
            lock = self._locks[aid] = asyncio.Lock()
        return lock

    def _forget_lock(self, aid: str) -> None:
        """Drop an idle adapter's lock (nobody holds, waits on or references it)."""
        lock = self._locks.get(aid)
        if lock is not None and not lock.locked() and self._refs.get(aid, 0) == 0:
            del self._locks[aid]

    def _idle(self, aid: str) -> bool:
        """Evictable: not pinned, not referenced, not locked."""
        lock = self._locks.get(aid)
        return aid not in self._pinned and self._refs.get(aid, 0) == 0 and (lock is None or not lock.locked())

    def _idle_under_lock(self, aid: str) -> bool:
        return aid not in self._pinned and not self._refs.get(aid, 0)

    async def _io(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._io_pool, fn, *args)

    def _spawn(self, coro) -> None:
        """Run `coro` in the background, keeping a reference and logging its failure."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("t2l-vllm: background task failed", exc_info=task.exception())

    # ---- bounds ---------------------------------------------------------------

    def _over_bounds(self) -> bool:
        return (
            len(self._resident) > self.config.max_engine_adapters or len(self._disk) > self.config.max_disk_adapters
        )

    async def _enforce_bounds(self) -> None:
        """Unload idle adapters over the engine bound, then delete idle files over the disk bound.

        Never raises: a failed eviction is logged and retried on a later release,
        and must not fail (or leak the reference of) the request that triggered it.
        """
        try:
            await self._evict_engine()
            await self._evict_disk()
        except Exception:
            logger.exception("t2l-vllm: eviction failed; bounds are enforced again on a later release")

    async def _evict_engine(self) -> None:
        while len(self._resident) > self.config.max_engine_adapters:
            victim = next((a for a in self._resident if self._idle(a)), None)
            if victim is None:
                return  # everything is in use; the next release tries again
            async with self._lock(victim):
                if not self._idle_under_lock(victim) or victim not in self._resident:
                    continue  # picked up by a request (or pinned) while we waited: look again
                await self.engine.unregister(victim)
                del self._resident[victim]
                await self._io(self.store.drop_fast, victim)
            self._forget_lock(victim)
            self.metrics.evictions.labels("engine").inc()
            self._update_gauges()

    async def _evict_disk(self) -> None:
        while len(self._disk) > self.config.max_disk_adapters:
            # Library adapters are never evicted from disk: deleting them is an admin's call.
            victim = next((a for a in self._disk if a not in self._resident and self._idle(a) and a not in self.library),
                          None)
            if victim is None:
                return
            async with self._lock(victim):
                if not self._idle_under_lock(victim) or victim in self._resident or victim not in self._disk:
                    continue
                await self._io(self.store.delete, victim)
                del self._disk[victim]
                self._usage.pop(victim, None)
                self._unindex(victim)
            self._forget_lock(victim)
            self.metrics.evictions.labels("disk").inc()
            self._update_gauges()

    def _update_gauges(self) -> None:
        self.metrics.resident.set(len(self._resident))
        self.metrics.on_disk.set(len(self._disk))
        self.metrics.pinned.set(len(self._pinned))

    # ---- admin ----------------------------------------------------------------

    def describe(self, adapter_id: str) -> dict:
        validate_adapter_id(adapter_id)
        if adapter_id not in self._disk:
            raise AdapterNotFound(adapter_id)
        try:
            stored = self.store.info(adapter_id)
        except KeyError:
            raise AdapterNotFound(adapter_id) from None
        return self._record(adapter_id, stored)

    async def show(self, adapter_id: str) -> dict:
        """`describe`, or the shared store's record of an adapter this server never loaded."""
        validate_adapter_id(adapter_id)
        if adapter_id in self._disk or self.shared is None:
            return self.describe(adapter_id)
        try:
            return self._record(adapter_id, await self._io(self.shared.info, adapter_id))
        except KeyError:
            raise AdapterNotFound(adapter_id) from None

    def _record(self, adapter_id: str, stored: StoredAdapter) -> dict:
        usage = self._usage.get(adapter_id, _Usage())
        return {
            "id": adapter_id,
            "object": "t2l.adapter",
            "description": stored.description,
            "created": int(stored.created),
            "last_used": int(usage.last_used) if usage.last_used else None,
            "hits": usage.hits,
            "reused": usage.reused,
            "kind": stored.kind,  # generated | blend | library
            "details": stored.extra,  # a blend's members, rank and approximation error
            "size_bytes": stored.size_bytes,
            "resident": adapter_id in self._resident,
            "in_use": self._refs.get(adapter_id, 0),
            "pinned": adapter_id in self._pinned,
            "confidence": stored.confidence,
            # How this server last made it resident: source generated | disk | shared | made (blends);
            # files_ms: generation (encode + hypernet + write, queue included) or load; register_ms.
            "made": self._made.get(adapter_id),
        }

    def list(self) -> list[dict]:
        out = []
        for aid in reversed(self._disk):  # most recently used first
            try:
                out.append(self.describe(aid))
            except AdapterNotFound:
                continue
        return out

    async def create(self, description: object, client: str = "") -> dict:
        """Generate and register without serving a request."""
        aid = await self.acquire_description(description, client)
        self.release(aid)
        return self.describe(aid)

    async def pin(self, adapter_id: str) -> dict:
        """Keep an adapter registered and on disk until unpinned (survives restarts)."""
        validate_adapter_id(adapter_id)
        if adapter_id not in self._pinned and len(self._pinned) + 1 >= self.config.max_engine_adapters:
            raise AdapterPinned(
                f"{len(self._pinned)} adapters are pinned and --max-engine-adapters is "
                f"{self.config.max_engine_adapters}; one engine slot must stay free for unpinned adapters"
            )
        await self.acquire_id(adapter_id)
        try:
            if adapter_id not in self._pinned:
                await self._io(self.store.set_pinned, adapter_id, True)
                self._pinned.add(adapter_id)
        finally:
            self.release(adapter_id)
        self._update_gauges()
        return self.describe(adapter_id)

    async def unpin(self, adapter_id: str) -> dict:
        validate_adapter_id(adapter_id)
        if adapter_id not in self._disk:
            raise AdapterNotFound(adapter_id)
        if adapter_id in self._pinned:
            async with self._lock(adapter_id):
                await self._io(self.store.set_pinned, adapter_id, False)
                self._pinned.discard(adapter_id)
            self._forget_lock(adapter_id)
            self._update_gauges()
            await self._enforce_bounds()
        return self.describe(adapter_id)

    async def archive(self, adapter_id: str) -> bytes:
        validate_adapter_id(adapter_id)
        source = self.store if adapter_id in self._disk else self.shared
        if source is None:
            raise AdapterNotFound(adapter_id)
        try:
            return await self._io(source.archive, adapter_id)
        except KeyError:
            raise AdapterNotFound(adapter_id) from None

    async def delete(self, adapter_id: str) -> None:
        """Unload and delete an adapter here, and its shared copy (other servers keep theirs)."""
        validate_adapter_id(adapter_id)
        if adapter_id not in self._disk and adapter_id not in self._resident:
            if not await self._in_shared(adapter_id):
                raise AdapterNotFound(adapter_id)
        if adapter_id in self._pinned:
            raise AdapterPinned(
                f"adapter {adapter_id} is pinned; unpin it first (DELETE /v1/t2l/adapters/{adapter_id}/pin)"
            )
        if self._refs.get(adapter_id, 0):
            raise AdapterInUse(f"adapter {adapter_id} is serving {self._refs[adapter_id]} request(s); retry later")
        async with self._lock(adapter_id):
            # Checked again under the lock: a request may have arrived while we waited.
            if self._refs.get(adapter_id, 0):
                raise AdapterInUse(f"adapter {adapter_id} is serving {self._refs[adapter_id]} request(s); retry later")
            if adapter_id in self._resident:
                await self.engine.unregister(adapter_id)
                del self._resident[adapter_id]
            await self._io(self.store.delete, adapter_id)
            if self.shared is not None:
                await self._io(self.shared.delete, adapter_id)
            self._disk.pop(adapter_id, None)
            self._usage.pop(adapter_id, None)
            self._unindex(adapter_id)
        self._forget_lock(adapter_id)
        self._update_gauges()

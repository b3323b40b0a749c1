"""AdapterService without a server: single flight, bounds, races and failures, made certain.

The server tests fire real requests at a real vLLM server, but whether they
overlap there depends on machine load. Here the engine (and, where needed, the
generator and the store) hold their calls open until the test lets them go, so
every interleaving below happens for sure.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from t2l_vllm.serving.config import ServeConfig
from t2l_vllm.serving.metrics import T2LMetrics
from t2l_vllm.serving.service import AdapterEngine, AdapterNotFound, AdapterService, GenerationFailed
from t2l_vllm.serving.store import META_FILE, AdapterStore, files_digest
from t2l_vllm.peft_format import WEIGHTS_FILE


class GatedEngine(AdapterEngine):
    """Records registrations; registers once `expected` callers hold a reference,
    and holds each unregistration until `unregister_gate` is set."""

    def __init__(self):
        self.registered: list[str] = []
        self.paths: dict[str, Path] = {}
        self.service: AdapterService | None = None
        self.expected = 0
        self.unregister_gate: asyncio.Event | None = None
        self.unregister_started: asyncio.Event | None = None
        self.fail_unregister = False

    async def register(self, adapter_id: str, path: Path, trusted: bool = False) -> None:
        while self.service._refs[adapter_id] < self.expected:
            await asyncio.sleep(0)  # yield until the other callers have queued
        self.registered.append(adapter_id)
        self.paths[adapter_id] = Path(path)

    async def unregister(self, adapter_id: str) -> None:
        if self.unregister_started is not None:
            self.unregister_started.set()
        if self.unregister_gate is not None:
            await self.unregister_gate.wait()
        if self.fail_unregister:
            raise RuntimeError("engine refused to unload")
        self.registered.remove(adapter_id)


class CountingGenerator:
    """The tiny generator, counting calls; `gate` (when set) holds each call in the generation thread."""

    def __init__(self, inner, error: Exception | None = None):
        self.inner, self.digest, self.error = inner, inner.digest, error
        # What the service reads besides generate(): the reuse index and library use these.
        self.hypernet, self.encoder, self.embed = inner.hypernet, inner.encoder, inner.embed
        self.base_model_name, self.confidence, self.router = inner.base_model_name, inner.confidence, inner.router
        self.calls = 0
        self.generated = 0  # descriptions: new ones that arrive together share one call (--generation-batch-ms)
        self.gate: threading.Event | None = None

    def generate(self, texts):
        self.calls += 1
        self.generated += len(texts)
        if self.gate is not None:
            assert self.gate.wait(60), "test never opened the generation gate"
        if self.error is not None:
            raise self.error
        return self.inner.generate(texts)


def stored(tmp_path) -> list[str]:
    """Adapter folders in the durable tier (not the owner lock or temp entries)."""
    return [p.name for p in (tmp_path / "durable").iterdir() if p.name.startswith("t2l-")]


def make_service(tiny_generator, tmp_path, engine=None, store=None, generator=None, **bounds):
    engine = engine or GatedEngine()
    store = store or AdapterStore(tmp_path / "durable", tmp_path / "fast")
    config = ServeConfig(adapter_dir=tmp_path / "durable", **bounds)
    service = AdapterService(generator or tiny_generator, store, engine, config, T2LMetrics(CollectorRegistry()))
    engine.service = service
    return service, engine


def test_concurrent_callers_share_one_generation(tiny_generator, tmp_path):
    service, engine = make_service(tiny_generator, tmp_path)
    engine.expected = 6
    metrics = service.metrics

    async def run():
        return await asyncio.gather(*[service.acquire_description("Answer yes or no.") for _ in range(6)])

    ids = asyncio.run(run())
    assert len(set(ids)) == 1
    assert engine.registered == ids[:1]
    assert metrics.cache.labels("miss")._value.get() == 1
    assert metrics.cache.labels("hit")._value.get() == 5
    assert metrics.singleflight_joins._value.get() == 5
    assert len(stored(tmp_path)) == 1
    counts = {s.labels["stage"]: s.value for m in metrics.generation_seconds.collect() for s in m.samples
              if s.name.endswith("_count")}
    assert counts["queue"] == counts["encode"] == counts["register"] == 1  # every stage of the one adapter


def test_a_canonical_twin_arriving_during_generation_shares_it(tiny_generator, tmp_path):
    """With --reuse, "Reply in French." and "reply in French" are one adapter even when the second
    arrives while the first is still being made (the reuse index learns it only once made)."""
    generator = CountingGenerator(tiny_generator)
    service, engine = make_service(tiny_generator, tmp_path, generator=generator)  # --reuse exact (default)

    async def run():
        generator.gate = threading.Event()
        first = asyncio.ensure_future(service.acquire_served("Reply in French."))
        await _until(lambda: generator.calls == 1)
        twin = asyncio.ensure_future(service.acquire_served("reply in French"))
        await _until(lambda: service.metrics.singleflight_joins._value.get() == 1)  # waits on the first's lock
        generator.gate.set()
        a, b = await asyncio.gather(first, twin)
        # A failed generation is not shared: the twin then makes its own (and fails alike here).
        generator.gate, generator.error = threading.Event(), RuntimeError("generator down")
        failing = asyncio.ensure_future(service.acquire_served("Reply in German."))
        await _until(lambda: generator.calls == 2)
        twin_of_failing = asyncio.ensure_future(service.acquire_served("reply in German"))
        await _until(lambda: service.metrics.singleflight_joins._value.get() == 2)
        generator.gate.set()
        results = await asyncio.gather(failing, twin_of_failing, return_exceptions=True)
        return a, b, results

    a, b, results = asyncio.run(run())
    assert b.adapter_id == a.adapter_id and b.reuse.kind == "exact" and b.reuse.description == "Reply in French."
    assert a.reuse is None and service.metrics.cache.labels("exact_hit")._value.get() == 1
    assert all(isinstance(r, Exception) for r in results) and generator.calls == 3  # the twin tried its own
    assert service._making == {}


# ---- bounds ----------------------------------------------------------------------


def test_engine_bound_unloads_the_least_recently_used_idle_adapter(tiny_generator, tmp_path):
    service, engine = make_service(tiny_generator, tmp_path, max_engine_adapters=2, max_disk_adapters=10)

    async def run():
        a = await service.acquire_description("Task a.")
        service.release(a)
        b = await service.acquire_description("Task b.")  # held: never evicted
        c = await service.acquire_description("Task c.")  # three resident: a (idle, oldest) goes
        service.release(c)
        assert set(engine.registered) == {b, c}
        await service.acquire_id(a)  # a again: now c is the least recently used idle one
        service.release(a)
        assert set(engine.registered) == {b, a}
        d = await service.acquire_description("Task d.")  # a goes; b stays although older
        service.release(d)
        return a, b, c, d

    a, b, c, d = asyncio.run(run())
    assert set(engine.registered) == {b, d} and service.in_use(b) == 1
    assert service.metrics.evictions.labels("engine")._value.get() == 3
    assert len(stored(tmp_path)) == 4  # unloaded, not deleted


def test_disk_bound_deletes_idle_files_and_keeps_held_ones(tiny_generator, tmp_path):
    service, engine = make_service(tiny_generator, tmp_path, max_engine_adapters=1, max_disk_adapters=2)

    async def run():
        held = await service.acquire_description("Held task.")
        made = []
        for i in range(3):
            aid = await service.acquire_description(f"Passing task {i}.")
            service.release(aid)
            made.append(aid)
        await asyncio.sleep(0)  # let release-triggered bound enforcement run
        return held, made

    held, made = asyncio.run(run())
    on_disk = set(stored(tmp_path))
    assert held in on_disk and made[-1] in on_disk and len(on_disk) == 2
    assert service.metrics.evictions.labels("disk")._value.get() == 2
    with pytest.raises(AdapterNotFound):
        asyncio.run(service.acquire_id(made[0]))


# ---- head-of-line blocking -------------------------------------------------------


def test_warm_hits_do_not_wait_for_a_running_generation(tiny_generator, tmp_path):
    generator = CountingGenerator(tiny_generator)
    service, engine = make_service(tiny_generator, tmp_path, generator=generator)

    async def run():
        warm = await service.acquire_description("Warm task.")
        service.release(warm)
        generator.gate = threading.Event()
        cold = asyncio.ensure_future(service.acquire_description("Cold task, generation held."))
        while generator.calls < 2:
            await asyncio.sleep(0.01)  # the cold generation now occupies the generation thread
        again = await asyncio.wait_for(service.acquire_id(warm), timeout=10)
        assert not cold.done()
        generator.gate.set()
        service.release(again)
        service.release(await cold)

    asyncio.run(run())


# ---- races -----------------------------------------------------------------------


def test_delete_keeps_single_flight_for_requests_arriving_meanwhile(tiny_generator, tmp_path):
    generator = CountingGenerator(tiny_generator)
    service, engine = make_service(tiny_generator, tmp_path, generator=generator)

    async def run():
        aid = await service.acquire_description("Deleted while wanted.")
        service.release(aid)
        engine.unregister_gate, engine.unregister_started = asyncio.Event(), asyncio.Event()
        deleting = asyncio.ensure_future(service.delete(aid))
        await engine.unregister_started.wait()
        # Two requests for the same description arrive while the delete holds the lock.
        waiting = [asyncio.ensure_future(service.acquire_description("Deleted while wanted.")) for _ in range(2)]
        await asyncio.sleep(0.05)
        generator.gate = threading.Event()  # the regeneration the first waiter starts is held
        engine.unregister_gate.set()
        await deleting
        while generator.calls < 2:
            await asyncio.sleep(0.01)
        # A third request after the delete must join that regeneration, not start its own.
        waiting.append(asyncio.ensure_future(service.acquire_description("Deleted while wanted.")))
        await asyncio.sleep(0.05)
        generator.gate.set()
        return aid, await asyncio.gather(*waiting)

    aid, again = asyncio.run(run())
    assert again == [aid, aid, aid]
    assert generator.calls == 2  # the first generation and one regeneration, not one per waiter


def test_failed_unregister_keeps_the_adapter_resident(tiny_generator, tmp_path):
    service, engine = make_service(tiny_generator, tmp_path)

    async def run():
        aid = await service.acquire_description("Stubborn adapter.")
        service.release(aid)
        engine.fail_unregister = True
        with pytest.raises(RuntimeError):
            await service.delete(aid)
        return aid

    aid = asyncio.run(run())
    assert service.describe(aid)["resident"] is True and engine.registered == [aid]


class FlakyDeleteStore(AdapterStore):
    failures = 1

    def delete(self, adapter_id):
        if self.failures:
            self.failures -= 1
            raise OSError("disk said no")
        super().delete(adapter_id)


def test_failed_eviction_neither_fails_the_request_nor_leaks_its_reference(tiny_generator, tmp_path, caplog):
    store = FlakyDeleteStore(tmp_path / "durable", tmp_path / "fast")
    service, engine = make_service(tiny_generator, tmp_path, store=store, max_engine_adapters=1, max_disk_adapters=1)

    async def run():
        first = await service.acquire_description("First.")
        service.release(first)
        with caplog.at_level(logging.ERROR, logger="vllm.t2l_vllm"):
            second = await service.acquire_description("Second.")  # evicting `first` fails once
        service.release(second)
        await service.delete(second)  # no leaked reference: not "in use"
        return first, second

    first, second = asyncio.run(run())
    assert "eviction failed" in caplog.text
    assert service.in_use(first) == 0 and service.in_use(second) == 0


# ---- leftovers, corruption, small leaks ---------------------------------------------


def test_corrupt_stored_adapter_is_regenerated(tiny_generator, tmp_path):
    service, engine = make_service(tiny_generator, tmp_path, max_engine_adapters=1)

    async def run():
        aid = await service.acquire_description("Corrupted later.")
        service.release(aid)
        other = await service.acquire_description("Pushes it out of the engine.")
        service.release(other)
        weights = tmp_path / "durable" / aid / WEIGHTS_FILE
        weights.write_bytes(weights.read_bytes()[:-7] + b"garbage")
        again = await service.acquire_id(aid)  # by id: regenerated from its recorded description
        service.release(again)
        return aid

    aid = asyncio.run(run())
    folder = tmp_path / "durable" / aid
    import json

    assert files_digest(folder) == json.loads((folder / META_FILE).read_text())["sha256"]
    assert files_digest(engine.paths[aid]) == files_digest(folder)


def test_failed_generation_drops_its_lock_and_hides_server_paths(tiny_generator, tmp_path):
    generator = CountingGenerator(tiny_generator, error=OSError("cannot write /secret/server/path/x"))
    service, _ = make_service(tiny_generator, tmp_path, generator=generator)

    async def run():
        with pytest.raises(GenerationFailed) as info:
            await service.acquire_description("Doomed.")
        return info.value

    error = asyncio.run(run())
    assert "/secret" not in str(error) and "could not make adapter" in str(error)
    assert service._locks == {} and service.in_use(service.adapter_id_for("Doomed.")) == 0


def test_release_keeps_a_reference_to_its_background_eviction(tiny_generator, tmp_path):
    service, engine = make_service(tiny_generator, tmp_path, max_engine_adapters=1)

    async def run():
        a = await service.acquire_description("A.")
        b = await service.acquire_description("B.")  # both held: over the bound for now
        service.release(a)
        assert len(service._tasks) == 1  # the eviction retry is referenced, not dropped
        while service._tasks:
            await asyncio.sleep(0.01)
        service.release(b)
        return a, b

    a, b = asyncio.run(run())
    assert engine.registered == [b]


def test_start_up_sweeps_what_a_killed_writer_left(tiny_generator, tmp_path):
    import os

    service, _ = make_service(tiny_generator, tmp_path)

    async def make():
        aid = await service.acquire_description("Survivor.")
        service.release(aid)
        return aid

    aid = asyncio.run(make())
    durable, fast = tmp_path / "durable", tmp_path / "fast"
    assert (fast / aid).is_dir()
    os.close(service.store._owner_fd)  # the process "died": the kernel drops its lock
    service.store._owner_fd = None
    old = 1_000_000_000  # mtime far in the past
    leftovers = [
        durable / ".t2l-0123.abcd", durable / f".{aid}.deleted-5", fast / f".{aid}.restore-x",
        durable / ("t2l-" + "0" * 32),  # an adapter folder whose metadata never got written
    ]
    for d in leftovers:
        d.mkdir()
        os.utime(d, (old, old))
    fresh = durable / ".t2l-being-written.1234"  # written a moment ago
    fresh.mkdir()

    # Without the folder's claim, a young temp entry may be another writer's: left alone.
    AdapterStore(durable, fast).sweep()
    assert not any(d.exists() for d in leftovers) and fresh.exists() and (fast / aid).is_dir()

    # The owner knows nobody else writes here: every leftover goes, and the fast
    # tier starts empty (a new engine holds nothing); the adapter is restored on use.
    service, engine = make_service(tiny_generator, tmp_path)
    assert not fresh.exists() and list(fast.iterdir()) == []
    assert [a["id"] for a in service.list()] == [aid]

    async def use():
        service.release(await service.acquire_id(aid))

    asyncio.run(use())
    assert engine.paths[aid] == fast / aid and (fast / aid).is_dir()


def test_one_server_per_adapter_folder(tiny_generator, tmp_path):
    from t2l_vllm.serving.store import AdapterFolderInUse

    service, _ = make_service(tiny_generator, tmp_path)
    with pytest.raises(AdapterFolderInUse, match=r"served by another process \(pid \d+\).*--adapter-dir"):
        make_service(tiny_generator, tmp_path)
    service.store.release_fast_root()  # at exit: the tmpfs copies go, and the folder is free again
    assert not (tmp_path / "fast").exists()
    make_service(tiny_generator, tmp_path)


# ---- admission, rate limits, pinning, the fast tier ----------------------------------


async def _until(condition, timeout: float = 30.0) -> None:
    """Yield to the loop until `condition()` holds (a condition, not a fixed sleep)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.005)


def test_a_full_generation_queue_refuses_new_descriptions_but_not_warm_or_joining_ones(tiny_generator, tmp_path):
    from t2l_vllm.serving.service import TooManyGenerations

    generator = CountingGenerator(tiny_generator)
    service, engine = make_service(tiny_generator, tmp_path, generator=generator, max_pending_generations=2)

    async def run():
        warm = await service.acquire_description("Warm task.")
        service.release(warm)
        generator.gate = threading.Event()
        held = [asyncio.ensure_future(service.acquire_description(f"Queued task {i}.")) for i in range(2)]
        await _until(lambda: service._jobs == 2)
        with pytest.raises(TooManyGenerations, match="max-pending-generations 2") as refused:
            await service.acquire_description("One too many.")
        assert refused.value.retry_after > 0
        joiner = asyncio.ensure_future(service.acquire_description("Queued task 0."))  # waits on its lock
        again = await asyncio.wait_for(service.acquire_id(warm), timeout=10)  # a warm hit never waits
        service.release(again)
        assert not joiner.done()
        generator.gate.set()
        ids = await asyncio.gather(*held, joiner)
        for aid in ids:
            service.release(aid)
        return ids

    ids = asyncio.run(run())
    assert ids[0] == ids[2] and generator.generated == 3  # warm + two queued; the joiner shared one
    assert service.metrics.rejected.labels("pending")._value.get() == 1
    assert service._jobs == 0 and service.in_use(service.adapter_id_for("One too many.")) == 0


def test_new_adapters_per_minute_are_counted_per_client(tiny_generator, tmp_path):
    from t2l_vllm.serving.service import TooManyGenerations

    service, _ = make_service(tiny_generator, tmp_path, max_new_adapters_per_minute=2)

    async def run():
        made = [await service.create(f"Client a task {i}.", client="a") for i in range(2)]
        with pytest.raises(TooManyGenerations, match="max-new-adapters-per-minute 2") as refused:
            await service.create("Client a task 2.", client="a")
        assert 0 < refused.value.retry_after <= 60
        await service.create("Client a task 0.", client="a")  # reuse is not creation
        await service.create("Client b task.", client="b")  # another key has its own budget
        return made

    asyncio.run(run())
    assert service.metrics.rejected.labels("rate")._value.get() == 1


def test_pinned_adapters_survive_bounds_deletes_and_restarts(tiny_generator, tmp_path):
    from t2l_vllm.serving.service import AdapterPinned

    service, engine = make_service(tiny_generator, tmp_path, max_engine_adapters=2, max_disk_adapters=2)

    async def run():
        pinned = (await service.create("Pinned task."))["id"]
        assert (await service.pin(pinned))["pinned"] is True
        for i in range(4):  # each pushes the least recently used idle adapter out of both tiers
            await service.create(f"Passing task {i}.")
        await _until(lambda: not service._tasks)
        assert pinned in engine.registered and pinned in stored(tmp_path)
        with pytest.raises(AdapterPinned, match="unpin it first"):
            await service.delete(pinned)
        other = next(a for a in engine.registered if a != pinned)
        with pytest.raises(AdapterPinned, match="one engine slot must stay free"):
            await service.pin(other)
        return pinned

    pinned = asyncio.run(run())
    assert [a["id"] for a in service.list() if a["pinned"]] == [pinned]
    service.store.release_fast_root()  # the server exits

    service, engine = make_service(tiny_generator, tmp_path, max_engine_adapters=2, max_disk_adapters=2)

    async def restart():
        await service.start()  # the pin is on disk: made resident again
        await _until(lambda: pinned in engine.registered)
        await service.unpin(pinned)
        for i in range(3):
            await service.create(f"Later task {i}.")
        await _until(lambda: not service._tasks)

    asyncio.run(restart())
    assert pinned not in engine.registered and pinned not in stored(tmp_path)  # evicted once unpinned


def test_the_fast_tier_holds_only_what_the_engine_holds(tiny_generator, tmp_path):
    service, engine = make_service(tiny_generator, tmp_path, max_engine_adapters=2, max_disk_adapters=10)

    async def run():
        for i in range(5):
            await service.create(f"Fast tier task {i}.")
        await _until(lambda: not service._tasks)

    asyncio.run(run())
    in_fast = sorted(p.name for p in (tmp_path / "fast").iterdir())
    assert in_fast == sorted(engine.registered) and len(in_fast) == 2 and len(stored(tmp_path)) == 5
    assert service.store.fast_bytes() == sum(f.stat().st_size for f in (tmp_path / "fast").rglob("*") if f.is_file())


def test_descriptions_reach_the_log_only_when_asked(tiny_generator, tmp_path, caplog):
    for opt_in in (False, True):
        service, _ = make_service(tiny_generator, tmp_path / str(opt_in), log_descriptions=opt_in)
        with caplog.at_level(logging.INFO, logger="vllm.t2l_vllm"):
            asyncio.run(service.create(f"Private task {opt_in}."))
        assert (f"Private task {opt_in}." in caplog.text) is opt_in

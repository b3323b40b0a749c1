"""The shared adapter store: servers with private folders generate each adapter once between them.

Two (or three) AdapterServices in one process stand for servers of one cluster:
each has its own private folder and fast tier, all share one SharedAdapterStore.
flock locks belong to open files, so two services in one process exclude each
other exactly as two processes do.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest
from prometheus_client import CollectorRegistry

from t2l_vllm.peft_format import WEIGHTS_FILE
from t2l_vllm.serving import service as service_module
from t2l_vllm.serving.config import ServeConfig
from t2l_vllm.serving.metrics import T2LMetrics
from t2l_vllm.serving.service import AdapterNotFound, AdapterService
from t2l_vllm.serving.shared_store import SharedAdapterStore
from t2l_vllm.serving.store import META_FILE, AdapterStore, StoredAdapterInvalid, files_digest
from tests.test_service import CountingGenerator, GatedEngine


def server(tiny_generator, tmp_path, name: str, shared: SharedAdapterStore):
    """One server of the cluster: its private folder tmp_path/name, the shared store, a counting generator."""
    generator = CountingGenerator(tiny_generator)
    store = AdapterStore(tmp_path / name / "durable", tmp_path / name / "fast")
    config = ServeConfig(adapter_dir=tmp_path / name / "durable")
    engine = GatedEngine()
    service = AdapterService(generator, store, engine, config, T2LMetrics(CollectorRegistry()), shared=shared)
    engine.service = service
    return service, generator, engine


def count(service, result: str) -> float:
    return service.metrics.cache.labels(result)._value.get()


def test_one_generation_between_servers_for_concurrent_requests(tiny_generator, tmp_path):
    shared = SharedAdapterStore(tmp_path / "shared")
    (a, gen_a, _), (b, gen_b, eng_b) = (server(tiny_generator, tmp_path, n, shared) for n in ("a", "b"))

    async def run():
        calls = [s.acquire_description("Answer yes or no.") for s in (a, b) for _ in range(5)]
        return await asyncio.gather(*calls)

    ids = asyncio.run(run())
    assert len(set(ids)) == 1
    assert gen_a.calls + gen_b.calls == 1  # one generation between them
    assert count(a, "miss") + count(b, "miss") == 1
    assert count(a, "shared") + count(b, "shared") == 1  # the other server adopted the published copy
    aid = ids[0]
    # Every copy is the same bytes: the shared one and both private ones.
    digests = {files_digest(root / aid) for root in (shared.store.durable_root, a.store.durable_root,
                                                        b.store.durable_root)}
    assert len(digests) == 1
    assert eng_b.registered == [aid]


def test_a_server_that_never_made_an_adapter_serves_it_by_id(tiny_generator, tmp_path):
    shared = SharedAdapterStore(tmp_path / "shared")
    a, _, _ = server(tiny_generator, tmp_path, "a", shared)
    b, gen_b, eng_b = server(tiny_generator, tmp_path, "b", shared)

    async def run():
        aid = await a.acquire_description("Reply with the plural of the noun.")
        a.release(aid)
        shown = await b.show(aid)  # from the shared record, before b ever loaded it
        assert shown["description"] == "Reply with the plural of the noun." and shown["resident"] is False
        assert await b.archive(aid)
        assert await b.acquire_id(aid) == aid
        b.release(aid)
        with pytest.raises(AdapterNotFound):
            await b.acquire_id("t2l-" + "0" * 32)
        return aid

    aid = asyncio.run(run())
    assert gen_b.calls == 0 and eng_b.registered == [aid]
    assert (b.store.durable_root / aid / META_FILE).is_file()


def test_a_corrupt_shared_copy_is_replaced_not_served(tiny_generator, tmp_path):
    shared = SharedAdapterStore(tmp_path / "shared")
    a, _, _ = server(tiny_generator, tmp_path, "a", shared)
    b, gen_b, _ = server(tiny_generator, tmp_path, "b", shared)
    c, _, _ = server(tiny_generator, tmp_path, "c", shared)
    text = "Translate the word into French."

    async def run():
        aid = await a.acquire_description(text)
        a.release(aid)
        good = files_digest(shared.folder(aid))
        weights = shared.folder(aid) / WEIGHTS_FILE
        weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
        with pytest.raises(AdapterNotFound):  # by id: the damaged copy is dropped, nothing to serve it from
            await c.acquire_id(aid)
        assert not shared.has(aid)
        await a.delete(aid)  # a's private copy is gone too now
        assert await b.acquire_description(text) == aid  # by description: generated again, published again
        b.release(aid)
        return aid, good

    aid, good = asyncio.run(run())
    assert gen_b.calls == 1
    assert files_digest(shared.folder(aid)) == good


def test_delete_removes_the_shared_copy(tiny_generator, tmp_path):
    shared = SharedAdapterStore(tmp_path / "shared")
    a, _, _ = server(tiny_generator, tmp_path, "a", shared)
    b, _, _ = server(tiny_generator, tmp_path, "b", shared)

    async def run():
        aid = await a.acquire_description("Count the vowels.")
        a.release(aid)
        await b.delete(aid)  # b never loaded it: the shared copy alone goes
        assert not shared.has(aid)
        with pytest.raises(AdapterNotFound):
            await b.acquire_id(aid)
        assert await a.acquire_id(aid) == aid  # a still has its private copy until it deletes or evicts it
        a.release(aid)

    asyncio.run(run())


def test_a_server_started_later_adopts_the_library_uploaded_to_another(tiny_generator, tiny_hypernet_config, tmp_path):
    """A library upload is published to the shared store; a server (a cluster's replacement replica)
    that starts afterwards adopts it, matches descriptions to it, and a delete removes it everywhere."""
    from tests.test_library import LIB, _adapter, _body

    shared = SharedAdapterStore(tmp_path / "shared")
    a, _, _ = server(tiny_generator, tmp_path, "a", shared)
    generated = "Count the vowels."

    async def run():
        record = await a.register_library(_body(*_adapter(tiny_hypernet_config.target)), tiny_hypernet_config.target,
                                          ("tiny-llama",))
        aid = record["id"]
        a.release(await a.acquire_description(generated))  # a generated adapter is not adopted at start
        assert shared.has(aid)
        b, gen_b, _ = server(tiny_generator, tmp_path, "b", shared)
        await b.start()
        deadline = time.monotonic() + 30
        while aid not in b.library:  # start() adopts and indexes in the background
            assert time.monotonic() < deadline, "the later server never adopted the library adapter"
            await asyncio.sleep(0.01)
        assert [r["id"] for r in b.library_list()] == [aid]
        served = await b.acquire_served(LIB)
        assert served.adapter_id == aid and served.reuse.kind == "library" and gen_b.calls == 0
        b.release(aid)
        assert a.adapter_id_for(generated) not in b._disk
        await b.delete(aid)
        assert not shared.has(aid) and aid not in b.library

    asyncio.run(run())


def test_a_lock_held_too_long_is_given_up_on(tiny_generator, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(service_module, "LOCK_TIMEOUT_S", 0.3)
    shared = SharedAdapterStore(tmp_path / "shared")
    a, gen_a, _ = server(tiny_generator, tmp_path, "a", shared)
    aid = a.adapter_id_for("Sort the list.")
    fd = shared.try_lock(aid)  # a stuck holder
    try:
        t0 = time.monotonic()
        assert asyncio.run(a.acquire_description("Sort the list.")) == aid
        assert time.monotonic() - t0 >= 0.3
    finally:
        shared.unlock(fd)
    assert gen_a.calls == 1 and shared.has(aid)
    assert "generating it here" in caplog.text


def test_a_dead_holder_releases_its_lock(tmp_path):
    shared = SharedAdapterStore(tmp_path / "shared")
    aid = "t2l-" + "ab" * 16
    holder = subprocess.Popen([sys.executable, "-c", f"""
import fcntl, os, sys, time
fd = os.open({str(shared.lock_path(aid))!r}, os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(600)
"""], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert shared.try_lock(aid) is None
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        fd = shared.try_lock(aid)
        assert fd is not None
        shared.unlock(fd)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_adopt_copies_verified_folders_only(tiny_generator, tmp_path):
    [adapter] = tiny_generator.generate(["Extract the year."])
    aid = adapter.adapter_id
    source = AdapterStore(tmp_path / "source")
    source.put(aid, adapter.tensors, adapter.peft_config, adapter.description)
    source.set_pinned(aid, True)
    dest = AdapterStore(tmp_path / "dest")
    assert dest.adopt("t2l-" + "0" * 32, tmp_path / "source" / ("t2l-" + "0" * 32)) is False
    assert dest.adopt(aid, source.durable_root / aid) is True
    assert files_digest(dest.durable_root / aid) == files_digest(source.durable_root / aid)
    assert dest.info(aid).pinned is False  # pins belong to one server
    assert dest.verified_path(aid)
    # A damaged source is refused and leaves nothing behind.
    other = AdapterStore(tmp_path / "other")
    weights = source.durable_root / aid / WEIGHTS_FILE
    weights.write_bytes(b"\0" + weights.read_bytes()[1:])
    with pytest.raises(StoredAdapterInvalid):
        other.adopt(aid, source.durable_root / aid)
    assert list(other.durable_root.iterdir()) == []
    # A folder whose metadata names another id is refused too.
    [other_adapter] = tiny_generator.generate(["Reverse the string."])
    source.put(other_adapter.adapter_id, other_adapter.tensors, other_adapter.peft_config, other_adapter.description)
    with pytest.raises(StoredAdapterInvalid):
        other.adopt(aid, source.durable_root / other_adapter.adapter_id)


def test_shared_and_private_folders_must_be_apart(tmp_path):
    with pytest.raises(ValueError, match="must not contain each other"):
        ServeConfig(adapter_dir=tmp_path / "a", shared_adapter_dir=tmp_path / "a")
    with pytest.raises(ValueError, match="must not contain each other"):
        ServeConfig(adapter_dir=tmp_path / "shared" / "mine", shared_adapter_dir=tmp_path / "shared")
    ServeConfig(adapter_dir=tmp_path / "a", shared_adapter_dir=tmp_path / "b")

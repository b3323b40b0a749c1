"""AdapterService's single flight, with the engine's registration held open.

The server test fires concurrent identical requests at a real vLLM server, but
whether they overlap there depends on machine load. Here registration blocks
until every caller has arrived, so the overlap is certain.
"""

import asyncio
from pathlib import Path

from prometheus_client import CollectorRegistry

from t2l_vllm.serving.metrics import T2LMetrics
from t2l_vllm.serving.config import ServeConfig
from t2l_vllm.serving.service import AdapterEngine, AdapterService
from t2l_vllm.serving.store import AdapterStore


class GatedEngine(AdapterEngine):
    """Registers only once `expected` callers hold a reference to the adapter."""

    def __init__(self):
        self.registered: list[str] = []
        self.service: AdapterService | None = None
        self.expected = 0

    async def register(self, adapter_id: str, path: Path) -> None:
        while self.service._refs[adapter_id] < self.expected:
            await asyncio.sleep(0)  # yield until the other callers have queued
        self.registered.append(adapter_id)

    async def unregister(self, adapter_id: str) -> None:
        self.registered.remove(adapter_id)


def test_concurrent_callers_share_one_generation(tiny_generator, tmp_path):
    engine = GatedEngine()
    metrics = T2LMetrics(CollectorRegistry())
    service = AdapterService(
        tiny_generator, AdapterStore(tmp_path / "durable"), engine, ServeConfig(adapter_dir=tmp_path / "durable"), metrics
    )
    engine.service, engine.expected = service, 6

    async def run():
        return await asyncio.gather(*[service.acquire_description("Answer yes or no.") for _ in range(6)])

    ids = asyncio.run(run())
    assert len(set(ids)) == 1
    assert engine.registered == ids[:1]
    assert metrics.cache.labels("miss")._value.get() == 1
    assert metrics.cache.labels("hit")._value.get() == 5
    assert metrics.singleflight_joins._value.get() == 5
    assert len(list((tmp_path / "durable").iterdir())) == 1

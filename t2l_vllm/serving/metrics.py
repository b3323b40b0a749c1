"""Prometheus metrics of adapter generation and caching.

Registered on prometheus_client's default registry, which vLLM's `/metrics`
exposes (single API server). Labels are small fixed sets; never description text.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class T2LMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY):
        self.generation_seconds = Histogram(
            "t2l_adapter_generation_seconds",
            "Time to make an adapter available, by stage (confidence: a new description's score for the "
            "low-confidence policy, its encoder pass included, which generation then reuses; match: a new "
            "description's encoder pass to match it against the library or the reuse index, which generation "
            "then reuses; queue: waiting for "
            "the generation thread; encode, hypernet, write: the copy the engine loads, register; durable: the "
            "durable copy, written while the engine registers).",
            ["stage"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "t2l_generation_batch_size",
            "New descriptions generated together in one job of the generation thread (--generation-batch-ms).",
            buckets=(1, 2, 4, 8, 16, 32, 64), registry=registry,
        )
        self.cache = Counter(
            "t2l_adapter_cache",
            "Adapter lookups: hit (already made here), shared (loaded from the shared store), miss (generated), "
            "exact_hit / semantic_hit (served by an adapter made for another description: --reuse).",
            ["result"], registry=registry,
        )
        self.singleflight_joins = Counter(
            "t2l_adapter_singleflight_joins", "Requests that waited on a generation already under way.", registry=registry
        )
        self.evictions = Counter(
            "t2l_adapter_evictions", "Adapters evicted, by tier (engine: unloaded; disk: deleted).", ["tier"], registry=registry
        )
        self.generation_errors = Counter(
            "t2l_adapter_generation_errors", "Adapter generations or registrations that failed.", registry=registry
        )
        self.confidence = Histogram(
            "t2l_description_confidence",
            "Confidence of each task_description served (max cosine to the training descriptions).",
            buckets=(0.2, 0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8, 0.9, 1.0),
            registry=registry,
        )
        self.served = Counter(
            "t2l_requests", "task_description requests by how they were served (adapter, prompt, both).",
            ["path"], registry=registry,
        )
        self.resident = Gauge("t2l_adapters_resident", "Generated adapters registered in the engine.", registry=registry)
        self.on_disk = Gauge("t2l_adapters_on_disk", "Generated adapters kept on disk.", registry=registry)
        self.pinned = Gauge("t2l_adapters_pinned", "Adapters pinned (never evicted).", registry=registry)
        self.pending = Gauge(
            "t2l_generations_pending", "Hypernetwork jobs running or queued (bounded by --max-pending-generations).",
            registry=registry,
        )
        self.rejected = Counter(
            "t2l_generations_rejected",
            "Requests refused with 429 before generation, by reason (pending: queue full; rate: per-key limit).",
            ["reason"], registry=registry,
        )
        self.fast_bytes = Gauge(
            "t2l_fast_tier_bytes", "Bytes of adapter copies in the tmpfs tier (RAM).", registry=registry,
        )


_instances: dict[int, T2LMetrics] = {}


def get_metrics(registry: CollectorRegistry = REGISTRY) -> T2LMetrics:
    """One metrics object per registry (a second registration would raise)."""
    if id(registry) not in _instances:
        _instances[id(registry)] = T2LMetrics(registry)
    return _instances[id(registry)]

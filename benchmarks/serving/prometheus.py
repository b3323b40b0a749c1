"""The server's side of a mode: deltas of its t2l_* Prometheus metrics over the mode."""

from __future__ import annotations

STAGES = ("encode", "hypernet", "write", "register")  # generation + registration: the target
# Also on a new adapter's path, reported beside the stages: the confidence score (with the
# low-confidence policy "prompt" or "both": the encoder pass that generation then reuses), the
# library / reuse-index match (the same pass, when the server has a library or semantic reuse),
# the wait for the generation thread (queue) and the durable copy, written while the engine
# registers and awaited before the answer.
EXTRA_STAGES = ("confidence", "match", "queue", "durable")


async def scrape_metrics(http) -> dict:
    """The t2l_* samples of the server's Prometheus /metrics: {(name, labels): value}.

    `http` is an httpx.AsyncClient on the server's root URL. A cluster's front door
    labels each replica's samples with `replica`: those are summed over replicas.
    """
    from prometheus_client.parser import text_string_to_metric_families

    r = await http.get("/metrics")
    r.raise_for_status()
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            if s.name.startswith("t2l_"):
                key = (s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "replica")))
                out[key] = out.get(key, 0.0) + s.value
    return out


def _delta(before: dict, after: dict, name: str, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def histogram_quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Prometheus' histogram_quantile over (upper bound, cumulative count) pairs, linear within a bucket."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank, lower, below = q * buckets[-1][1], 0.0, 0.0
    for upper, cum in buckets:
        if cum >= rank:
            if upper == float("inf"):
                return lower  # beyond the last finite bound: report that bound
            return lower + (upper - lower) * (rank - below) / max(cum - below, 1e-12)
        lower, below = upper, cum
    return lower


def stage_histogram(before: dict, after: dict, stage: str) -> dict:
    """Per-stage generation time over the mode: count, mean and bucket-estimated p50/p95 (ms)."""
    name = "t2l_adapter_generation_seconds"
    count = _delta(before, after, f"{name}_count", stage=stage)
    total = _delta(before, after, f"{name}_sum", stage=stage)
    buckets = sorted(
        (float(dict(labels)["le"]), value - before.get((sample, labels), 0.0))
        for (sample, labels), value in after.items()
        if sample == f"{name}_bucket" and dict(labels).get("stage") == stage
    )
    p50, p95 = histogram_quantile(buckets, 0.5), histogram_quantile(buckets, 0.95)
    return {
        "count": int(count),
        "mean_ms": round(1e3 * total / count, 2) if count else None,
        "p50_ms": round(1e3 * p50, 2) if count and p50 is not None else None,
        "p95_ms": round(1e3 * p95, 2) if count and p95 is not None else None,
    }


def server_deltas(before: dict, after: dict) -> dict:
    hits = _delta(before, after, "t2l_adapter_cache_total", result="hit")
    misses = _delta(before, after, "t2l_adapter_cache_total", result="miss")
    # Servers with a shared adapter folder (a cluster's replicas): adopted from it, neither made nor held here.
    shared = _delta(before, after, "t2l_adapter_cache_total", result="shared")
    lookups = hits + misses + shared
    stages = {s: stage_histogram(before, after, s) for s in (*STAGES, *EXTRA_STAGES)}
    means = [stages[s]["mean_ms"] for s in STAGES]
    # The encoder pass of a new description runs once: in `confidence` or `match` when those
    # ran first (generation then reuses it and its own encode is ~0), else in `encode`.
    # Counted wherever it ran, so the sum is the same work whichever stage holds it.
    means += [stages[s]["mean_ms"] for s in ("confidence", "match") if stages[s]["mean_ms"] is not None]
    return {
        "generation_ms": stages,
        "generation_plus_register_mean_ms": round(sum(means), 2) if all(m is not None for m in means) else None,
        "cache": {"hit": int(hits), "miss": int(misses), "shared": int(shared),
                  "hit_rate": round(hits / lookups, 3) if lookups else None},
        "singleflight_joins": int(_delta(before, after, "t2l_adapter_singleflight_joins_total")),
        "generation_errors": int(_delta(before, after, "t2l_adapter_generation_errors_total")),
        "evictions": {t: int(_delta(before, after, "t2l_adapter_evictions_total", tier=t)) for t in ("engine", "disk")},
    }

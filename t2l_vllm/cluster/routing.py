"""Front-door routing: the adapter a request needs, and what routing made of it.

`adapter_for` computes Ray's `multiplexed_model_id` for a request: the adapter id
the replica's server would compute (same normalisation, same checkpoint digest;
a blend's id for a list of members), or the `t2l-` id the request names. Ray Serve's multiplexed routing then prefers
a replica that holds the id; when those are at `max_ongoing_requests` it picks
another, which then holds the id too. `handle_options` sets it, under the
cluster's routing policy: "affinity" (the default) passes the id, "plain" does
not, leaving Ray Serve's power-of-two-choices on queue length alone (the baseline
of benchmarks/cluster_bench.py).

`AffinityTable` records, per id, the replicas that served it as this front door
saw them, and labels each request: affinity (a replica that had served it),
spill (a different replica while others had served it: saturation or a dead
replica), first (no replica had), none (no adapter in the request).
"""

from __future__ import annotations

import json
from collections import OrderedDict

from prometheus_client import CollectorRegistry, Counter

from ..adapter import ADAPTER_ID_RE, adapter_id, normalize_description
from ..blend import blend_id, parse_blend
from ..serving.http import ADAPTER_ROUTES

ADMIN_ADAPTERS = "/v1/t2l/adapters"
ADMIN_LIBRARY = "/v1/t2l/library"
MAX_ROUTED_BODY = 64 * 1024 * 1024
ROUTES = ("affinity", "spill", "first", "none")


def adapter_for(method: str, path: str, body: bytes, digest: str, max_chars: int) -> str | None:
    """The adapter id a request is served through, when it names one; None otherwise.

    Malformed requests get None: any replica answers them with the single server's 400.
    """
    if path.startswith(ADMIN_ADAPTERS + "/"):
        aid = path[len(ADMIN_ADAPTERS) + 1:].split("/", 1)[0]
        return aid if ADAPTER_ID_RE.match(aid) else None
    if method != "POST" or (path not in ADAPTER_ROUTES and path != ADMIN_ADAPTERS):
        return None
    payload = _json_object(body)
    if payload is None:
        return None
    if "task_description" in payload:
        value = payload["task_description"]
        try:
            if isinstance(value, list):  # a blend: its id hashes the canonical member list (blend.py)
                return blend_id(parse_blend(value, max_chars), digest)
            return adapter_id(normalize_description(value, max_chars), digest)
        except ValueError:
            return None
    model = payload.get("model")
    return model if isinstance(model, str) and ADAPTER_ID_RE.match(model) else None


def handle_options(aid: str | None, routing: str) -> dict:
    """Ray Serve handle options that route a request for `aid` under `routing` ("affinity" or "plain")."""
    return {"multiplexed_model_id": aid} if aid and routing == "affinity" else {}


def _json_object(body: bytes) -> dict | None:
    if not body or len(body) > MAX_ROUTED_BODY:
        return None
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


class AffinityTable:
    """adapter id -> replicas that served it (most recently used ids last, at most `capacity` ids)."""

    def __init__(self, capacity: int = 100_000):
        self.capacity = capacity
        self._ids: OrderedDict[str, set[str]] = OrderedDict()

    def record(self, aid: str, replica: str) -> str:
        """Note that `replica` served `aid`; returns "affinity", "spill" or "first"."""
        seen = self._ids.get(aid)
        if seen is None:
            kind, seen = "first", set()
            self._ids[aid] = seen
        else:
            kind = "affinity" if replica in seen else "spill"
            self._ids.move_to_end(aid)
        seen.add(replica)
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return kind

    def replicas(self, aid: str) -> set[str]:
        return set(self._ids.get(aid, ()))

    def __len__(self) -> int:
        return len(self._ids)

    def most_copies(self) -> int:
        return max((len(s) for s in self._ids.values()), default=0)


class RoutingMetrics:
    """The front door's own counters (its /metrics, next to every replica's)."""

    def __init__(self, registry: CollectorRegistry):
        self.requests = Counter(
            "t2l_cluster_requests", "Requests forwarded, by routing: affinity, spill, first or none (no adapter).",
            ["routing"], registry=registry,
        )
        self.retries = Counter(
            "t2l_cluster_retries",
            "Requests sent again because their replica failed before answering (died, or its server did not answer).",
            registry=registry,
        )
        self.failed = Counter(
            "t2l_cluster_unavailable", "Requests answered 503: no replica answered within the retries.", registry=registry,
        )
        self.broken_streams = Counter(
            "t2l_cluster_broken_streams", "Responses cut because their replica failed after answering had begun.",
            registry=registry,
        )

    def snapshot(self) -> dict:
        out = {route: int(self.requests.labels(route)._value.get()) for route in ROUTES}
        for name in ("retries", "failed", "broken_streams"):
            out[name] = int(getattr(self, name)._value.get())
        return out

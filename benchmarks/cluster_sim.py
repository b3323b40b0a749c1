"""A simulation (a model, not a measurement) of routing Zipf-popular descriptions over N replicas.

    python benchmarks/cluster_sim.py --replicas 4 --descriptions 2000 --requests 50000 --zipf 1.1 \\
        --out benchmarks/results/cluster

Requests arrive as a Poisson stream; each names one of `--descriptions` task descriptions,
drawn with Zipf popularity (p_i ~ 1 / i^s). A replica runs at most `--max-ongoing` requests
at once (more wait in its queue, first come first served) and keeps `--engine-adapters`
adapters registered (LRU). A request takes `--service` time units, plus `--register` when its
replica must register the adapter, plus `--generate` when the adapter must be generated.

Routing policies:
    random     a load balancer that ignores the description
    hash       consistent hashing of the adapter id (one replica per id, never spills)
    affinity   what serve-cluster does with Ray Serve's multiplexing: a replica that holds the id
               and has a free slot; none holds it: the replica holding the fewest ids; the holders
               are full: a replica with a free slot (spill), which then holds it too
Stores: `private` (each replica generates what it first sees: a load balancer in front of
plain servers) or `shared` (generated once cluster-wide: serve-cluster's shared folder).

Reported per (policy, store): generations, engine registrations, replicas holding an adapter
(mean over adapters), spills, the busiest replica's share of requests, latency p50/p99.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import random
import statistics
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

POLICIES = ("random", "hash", "affinity")
STORES = ("private", "shared")


@dataclass
class Replica:
    engine: OrderedDict = field(default_factory=OrderedDict)  # registered adapters, LRU order
    ends: list = field(default_factory=list)  # end times of the requests in its slots (heap)
    seen: set = field(default_factory=set)  # adapters it generated or adopted
    requests: int = 0

    def busy(self, now: float) -> int:
        while self.ends and self.ends[0] <= now:
            heapq.heappop(self.ends)
        return len(self.ends)


def zipf_weights(n: int, s: float) -> list[float]:
    return [1.0 / (i ** s) for i in range(1, n + 1)]


def simulate(args: argparse.Namespace, policy: str, store: str) -> dict:
    rng = random.Random(args.seed)  # the same arrivals and descriptions for every policy
    weights = zipf_weights(args.descriptions, args.zipf)
    picks = rng.choices(range(args.descriptions), weights=weights, k=args.requests)
    route_rng = random.Random(args.seed + 1)
    replicas = [Replica() for _ in range(args.replicas)]
    holders: dict[int, set[int]] = {}  # adapter -> replicas whose engine registered it at some point
    generated: set[int] = set()
    now = generations = registrations = spills = 0
    latencies = []
    for desc in picks:
        now += rng.expovariate(args.rate)
        busy = [r.busy(now) for r in replicas]
        if policy == "random":
            k = route_rng.randrange(args.replicas)
        elif policy == "hash":
            k = int(hashlib.sha256(str(desc).encode()).hexdigest(), 16) % args.replicas
        else:
            held = [i for i, r in enumerate(replicas) if desc in r.engine]
            free = [i for i in held if busy[i] < args.max_ongoing]
            if free:
                k = min(free, key=lambda i: busy[i])
            elif not held:
                k = min(range(args.replicas), key=lambda i: (len(replicas[i].engine), busy[i]))
            else:
                others = [i for i in range(args.replicas) if i not in held and busy[i] < args.max_ongoing]
                if others:
                    k = min(others, key=lambda i: busy[i])
                    spills += 1
                else:
                    k = min(held, key=lambda i: busy[i])
        r = replicas[k]
        r.requests += 1
        cost = args.service
        if desc not in r.engine:
            registrations += 1
            cost += args.register
            holders.setdefault(desc, set()).add(k)
            new = desc not in (generated if store == "shared" else r.seen)
            if new:
                generations += 1
                cost += args.generate
            generated.add(desc)
            r.seen.add(desc)
            r.engine[desc] = None
            while len(r.engine) > args.engine_adapters:
                r.engine.popitem(last=False)
        else:
            r.engine.move_to_end(desc)
        start = now if len(r.ends) < args.max_ongoing else max(now, r.ends[0])
        if len(r.ends) >= args.max_ongoing:
            heapq.heappop(r.ends)
        heapq.heappush(r.ends, start + cost)
        latencies.append(start + cost - now)
    latencies.sort()
    return {
        "policy": policy, "store": store,
        "generations": generations,
        "registrations": registrations,
        "replicas_per_adapter": round(statistics.mean(len(h) for h in holders.values()), 2),
        "spills": spills,
        "busiest_replica_share": round(max(r.requests for r in replicas) / args.requests, 3),
        "latency_p50": round(latencies[len(latencies) // 2], 3),
        "latency_p99": round(latencies[int(len(latencies) * 0.99)], 3),
    }


def markdown(report: dict) -> str:
    a = report["args"]
    lines = [
        f"Simulation (a model, not a measurement): {a['replicas']} replicas, {a['descriptions']} descriptions "
        f"(Zipf s={a['zipf']}), {a['requests']} requests at rate {a['rate']}, {a['engine_adapters']} adapters per "
        f"engine, {a['max_ongoing']} ongoing per replica; costs service {a['service']}, register {a['register']}, "
        f"generate {a['generate']}.",
        "",
        "| policy | store | generations | registrations | replicas per adapter | spills | busiest replica | p50 | p99 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        lines.append(f"| {r['policy']} | {r['store']} | {r['generations']} | {r['registrations']} | "
                     f"{r['replicas_per_adapter']} | {r['spills']} | {r['busiest_replica_share']:.1%} | "
                     f"{r['latency_p50']} | {r['latency_p99']} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--replicas", type=int, default=4)
    p.add_argument("--descriptions", type=int, default=2000)
    p.add_argument("--requests", type=int, default=50_000)
    p.add_argument("--zipf", type=float, default=1.1)
    p.add_argument("--rate", type=float, default=3.0, help="arrivals per time unit (default 3.0)")
    p.add_argument("--service", type=float, default=1.0, help="time units per request (default 1.0)")
    p.add_argument("--register", type=float, default=0.05, help="extra time to register an adapter (default 0.05)")
    p.add_argument("--generate", type=float, default=0.1, help="extra time to generate one (default 0.1)")
    p.add_argument("--engine-adapters", type=int, default=32, help="adapters per engine (default 32)")
    p.add_argument("--max-ongoing", type=int, default=8, help="requests one replica runs at once (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="folder for <name>.json and <name>.md")
    p.add_argument("--name", default="cluster_sim", help="file name stem of the outputs (default cluster_sim)")
    args = p.parse_args()
    results = [simulate(args, policy, store) for policy in POLICIES for store in STORES]
    report = {"args": vars(args) | {"out": str(args.out) if args.out else None}, "results": results}
    text = markdown(report)
    print(text, end="")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
        (args.out / f"{args.name}.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

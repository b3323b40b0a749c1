"""The Ray Serve application: a front door and `replicas` copies of `t2l-vllm serve`.

    t2l-vllm serve-cluster --replicas 2 [t2l and vLLM flags]          # this machine or RAY_ADDRESS
    serve run t2l_vllm.cluster.app:app_builder replicas=2 serve_args="--enforce-eager"
    RayService: import_path t2l_vllm.cluster.app:app_builder, args {replicas: 2, ...}

How many copies of an adapter exist, at most:
- registered in vLLM: one per replica that served it (N at most), each replica
  holding at most its `--max-engine-adapters`;
- tracked by Ray's multiplexing: `max_adapters_per_replica` ids per replica (default
  `--max-engine-adapters`, so Ray's view and vLLM's agree in size), least recently used dropped;
- on disk: one shared copy (never evicted), plus one private copy per replica that
  served it (each replica keeps at most its `--max-disk-adapters`).
A second replica takes a copy only when the replicas holding it are at
`max_ongoing_requests`, or after one died (routing "affinity", the default;
routing "plain" leaves Ray Serve's choice to queue lengths alone, so any replica
may take a copy of any adapter: the baseline of benchmarks/cluster_bench.py).
"""

from __future__ import annotations

from typing import Any, Mapping

from ray import serve

from .config import ClusterConfig
from .frontdoor import T2LFrontDoor
from .replica import T2LReplica

REPLICA_DEPLOYMENT = "T2LReplica"
FRONT_DOOR_DEPLOYMENT = "T2LFrontDoor"
# The front door only forwards; its bound is the replicas' queues, not this.
FRONT_DOOR_MAX_ONGOING = 10_000
# Ray's health check of each replica's server (GET /health on loopback).
HEALTH_CHECK_PERIOD_S = 5.0
HEALTH_CHECK_TIMEOUT_S = 30.0
# A graceful stop lets in-flight requests finish (the server drains for 30 s).
GRACEFUL_SHUTDOWN_S = 45.0


def build_app(config: ClusterConfig) -> serve.Application:
    replica = serve.deployment(
        T2LReplica,
        name=REPLICA_DEPLOYMENT,
        num_replicas=config.replicas,
        max_ongoing_requests=config.max_ongoing_requests,
        ray_actor_options={"num_cpus": config.replica_cpus, "num_gpus": config.replica_gpus},
        health_check_period_s=HEALTH_CHECK_PERIOD_S,
        health_check_timeout_s=HEALTH_CHECK_TIMEOUT_S,
        graceful_shutdown_timeout_s=GRACEFUL_SHUTDOWN_S,
    )
    front = serve.deployment(
        serve.ingress()(T2LFrontDoor),
        name=FRONT_DOOR_DEPLOYMENT,
        num_replicas=1,
        max_ongoing_requests=FRONT_DOOR_MAX_ONGOING,
        ray_actor_options={"num_cpus": 0},
    )
    return front.bind(replica.bind(config), config)


def app_builder(args: Mapping[str, Any]) -> serve.Application:
    """For `serve run` and RayService: ClusterConfig's fields as args (serve_args as one string or a list)."""
    return build_app(ClusterConfig.from_dict(dict(args)))

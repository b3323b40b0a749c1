"""The cluster's parts that need no Ray: routing keys, the affinity table, merged metrics,
ClusterConfig, and the guard that takes a replica's server down with it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from t2l_vllm.cluster.config import ClusterConfig
from t2l_vllm.cluster.promtext import merge_expositions
from t2l_vllm.cluster.routing import AffinityTable, adapter_for, handle_options


def test_the_front_door_computes_the_servers_adapter_id(tiny_generator):
    digest = tiny_generator.digest
    want = tiny_generator.adapter_id("Answer yes or no.")
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/t2l/adapters"):
        body = json.dumps({"model": "m", "task_description": "  Answer yes\n or no. "}).encode()
        assert adapter_for("POST", path, body, digest, 4000) == want
    by_id = json.dumps({"model": want, "prompt": "x"}).encode()
    assert adapter_for("POST", "/v1/completions", by_id, digest, 4000) == want
    assert adapter_for("GET", f"/v1/t2l/adapters/{want}/download", b"", digest, 4000) == want
    assert adapter_for("DELETE", f"/v1/t2l/adapters/{want}", b"", digest, 4000) == want
    # A blend routes by the id the server gives it: the canonical member list, in any order.
    from t2l_vllm.blend import blend_id, parse_blend

    members = [{"text": "Answer yes or no.", "weight": 1}, {"text": "Reply in uppercase.", "weight": 0.5}]
    blended = blend_id(parse_blend(members, 4000), digest)
    for order in (members, members[::-1]):
        body = json.dumps({"model": "m", "task_description": order}).encode()
        assert adapter_for("POST", "/v1/chat/completions", body, digest, 4000) == blended != want
    # Nothing to route by: any replica answers (malformed bodies get the server's 400 there).
    for method, path, body in [
        ("POST", "/v1/chat/completions", b'{"model": "m"}'),
        ("POST", "/v1/chat/completions", b'{"task_description": ""}'),
        ("POST", "/v1/chat/completions", b'{"task_description": 7}'),
        ("POST", "/v1/chat/completions", b'{"task_description": [{"text": "x", "weight": 0}]}'),
        ("POST", "/v1/chat/completions", b"[" * 100_000),
        ("POST", "/v1/chat/completions", b"\xff\xfe"),
        ("POST", "/tokenize", json.dumps({"task_description": "Answer yes or no."}).encode()),
        ("GET", "/v1/t2l/adapters/not-an-id", b""),
    ]:
        assert adapter_for(method, path, body, digest, 4000) is None
    long = json.dumps({"task_description": "x" * 50}).encode()
    assert adapter_for("POST", "/v1/completions", long, digest, 10) is None


def test_the_affinity_table_tells_affinity_from_spill():
    table = AffinityTable(capacity=2)
    assert table.record("a", "r1") == "first"
    assert table.record("a", "r1") == "affinity"
    assert table.record("a", "r2") == "spill"
    assert table.record("a", "r2") == "affinity"
    assert table.replicas("a") == {"r1", "r2"} and table.most_copies() == 2
    table.record("b", "r1")
    table.record("c", "r1")  # over capacity: the least recently used id goes
    assert len(table) == 2 and table.replicas("a") == set()


REPLICA_TEXT = """# HELP t2l_adapter_cache_total Adapter lookups.
# TYPE t2l_adapter_cache_total counter
t2l_adapter_cache_total{result="miss"} 1.0
t2l_adapter_cache_total{result="hit"} 4.0
# HELP t2l_adapter_generation_seconds Time.
# TYPE t2l_adapter_generation_seconds histogram
t2l_adapter_generation_seconds_bucket{le="0.1",stage="encode"} 1.0
t2l_adapter_generation_seconds_bucket{le="+Inf",stage="encode"} 1.0
t2l_adapter_generation_seconds_count{stage="encode"} 1.0
t2l_adapter_generation_seconds_sum{stage="encode"} 0.01
# HELP vllm:num_requests_running Running.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="m"} 2.0
"""


def test_merged_metrics_label_every_sample_with_its_replica():
    text = merge_expositions({"r1": REPLICA_TEXT, "r2": REPLICA_TEXT.replace("4.0", "6.0"), "bad": "}{ not metrics"})
    families = {f.name: f for f in text_string_to_metric_families(text.decode())}
    assert set(families) == {"t2l_adapter_cache", "t2l_adapter_generation_seconds", "vllm:num_requests_running"}
    hits = {s.labels["replica"]: s.value for s in families["t2l_adapter_cache"].samples if s.labels["result"] == "hit"}
    assert hits == {"r1": 4.0, "r2": 6.0}
    for family in families.values():
        assert all("replica" in s.labels for s in family.samples)
    assert text.decode().count("# TYPE t2l_adapter_cache_total counter") == 1  # one family, both replicas


def test_cluster_config_from_flags_and_from_app_args(tmp_path):
    config = ClusterConfig.from_dict({"replicas": "3", "serve_args": "--max-engine-adapters 16 --enforce-eager"}, {})
    assert config.replicas == 3 and config.serve_args == ("--max-engine-adapters", "16", "--enforce-eager")
    assert config.adapters_per_replica() == 16
    assert ClusterConfig(max_adapters_per_replica=4).adapters_per_replica() == 4
    assert ClusterConfig().adapters_per_replica() == 32
    assert ClusterConfig.from_dict({}, {"VLLM_API_KEY": "k"}).api_key == "k"
    for bad, match in [
        ({"serve_args": ["--adapter-dir", "x"]}, "private adapter folder"),
        ({"serve_args": ["--port=9"]}, "free loopback ports"),
        ({"serve_args": ["--max-engine-adapters", "0"]}, "max_engine_adapters"),
        ({"replicas": 0}, "replicas must be"),
        ({"replica": 2}, "unknown cluster settings"),
        ({"retries": "many"}, "invalid value"),
        ({"routing": "random"}, "routing must be one of affinity, plain"),
    ]:
        with pytest.raises(ValueError, match=match):
            ClusterConfig.from_dict(bad, {})



def test_routing_switch_plain_forwards_without_a_multiplexed_id():
    aid = "t2l-" + "0" * 32
    assert handle_options(aid, "affinity") == {"multiplexed_model_id": aid}
    assert handle_options(aid, "plain") == {}
    assert handle_options(None, "affinity") == {} == handle_options(None, "plain")
    assert ClusterConfig().routing == "affinity"
    assert ClusterConfig.from_dict({"routing": "plain"}, {}).routing == "plain"


@pytest.mark.parametrize("routing", ["affinity", "plain"])
def test_the_front_door_hands_ray_the_adapter_id_only_under_affinity(routing, tiny_generator):
    """forward() with a fake deployment handle: the options it routes with, and the routing counter."""
    pytest.importorskip("ray")
    import asyncio

    from starlette.requests import Request

    from prometheus_client import CollectorRegistry

    from t2l_vllm.cluster.frontdoor import T2LFrontDoor
    from t2l_vllm.cluster.routing import RoutingMetrics

    class Stream:
        def __init__(self):
            self.items = [{"status": 200, "headers": [("content-type", "application/json")], "replica": "r1"}, b"{}"]

        def __aiter__(self):
            return self

        async def __anext__(self):
            if not self.items:
                raise StopAsyncIteration
            return self.items.pop(0)

        def cancel(self):
            pass

    class Handle:
        def __init__(self):
            self.options_seen: list[dict] = []

        def options(self, **kw):
            self.options_seen.append(kw)
            return self

        @property
        def forward(self):
            return self

        def remote(self, *args):
            return Stream()

    door = T2LFrontDoor.__new__(T2LFrontDoor)  # no Ray Serve replica context needed
    door.replicas, door.config = Handle(), ClusterConfig(routing=routing)
    door.metrics, door.table = RoutingMetrics(CollectorRegistry()), AffinityTable()
    door._info = {"digest": tiny_generator.digest, "max_description_chars": 4000}
    body = json.dumps({"model": "m", "messages": [], "task_description": "Answer yes or no."}).encode()

    async def send():
        sent = False

        async def receive():
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": b"",
                 "headers": [(b"content-type", b"application/json")]}
        response = await door.forward(Request(scope, receive))
        return response.status_code

    assert asyncio.run(send()) == 200
    want = tiny_generator.adapter_id("Answer yes or no.")
    expected = {"stream": True, "multiplexed_model_id": want} if routing == "affinity" else {"stream": True}
    assert door.replicas.options_seen[-1] == expected
    assert door.metrics.snapshot()["first"] == 1  # both policies count what routing made of the id


# ---- the guard ------------------------------------------------------------------------

# The guarded command: a server whose SIGTERM handler exits without stopping its own
# child, as vLLM's API server leaves its engine core when it is killed.
SERVER = """
import os, signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
print(os.getpid(), child.pid, flush=True)
time.sleep(600)
"""
# Stands for the Ray replica: starts the guard in its own session, prints the guard's pid, waits.
REPLICA = f"""
import subprocess, sys, time
guard = subprocess.Popen([sys.executable, "-m", "t2l_vllm.serving.guard", "--", sys.executable, "-c", {SERVER!r}],
                         start_new_session=True)
print(guard.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_gone(pids, timeout: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


@pytest.mark.parametrize("killed", ["replica", "guard"])
def test_a_killed_replica_takes_its_server_and_engine_down(killed):
    """kill -9 of the replica: the guard stops the server and SIGKILLs what it left.
    kill -9 of the guard itself (Ray's raylet does that to a dead worker's children): the server gets SIGTERM."""
    replica = subprocess.Popen([sys.executable, "-c", REPLICA], stdout=subprocess.PIPE, text=True,
                               cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    guard = None
    try:
        guard = int(replica.stdout.readline())
        server, engine = map(int, replica.stdout.readline().split())  # printed by the server (shared stdout)
        os.kill(replica.pid if killed == "replica" else guard, signal.SIGKILL)
        assert _wait_gone([guard, server, engine] if killed == "replica" else [server]) == []
    finally:
        replica.kill()
        replica.wait()
        if guard is not None:
            try:
                os.killpg(guard, signal.SIGKILL)  # what a failed test left in the guard's group
            except ProcessLookupError:
                pass

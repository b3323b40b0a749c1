"""Reliability through a real server: per-key admission (429), pins, user data kept out of logs,
and a graceful SIGTERM that finishes in-flight requests and removes the tmpfs tier.

One server for the module (tiny models, three API keys, 3 new adapters per key
per minute); the shutdown test runs last and stops it.
"""

from __future__ import annotations

import os
import signal

import httpx
import openai
import pytest

from tests.server_utils import running_tiny_server
from tests.test_server import wait_for

KEYS = ("key-a", "key-b", "key-c")
API_KEY = KEYS[0]
MAX_ENGINE, MAX_DISK, PER_MINUTE = 3, 6, 3
SECRET = "Zorblax-quux-7731"  # appears in descriptions; must never reach the log


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_base_dir, tiny_hypernet_dir):
    tmp = tmp_path_factory.mktemp("reliability")
    extra = [
        "--max-engine-adapters", str(MAX_ENGINE), "--max-disk-adapters", str(MAX_DISK),
        "--max-new-adapters-per-minute", str(PER_MINUTE), "--api-key", *KEYS,
    ]
    with running_tiny_server(tmp, tiny_base_dir, tiny_hypernet_dir, *extra) as srv:
        yield srv


def sdk(server, key=API_KEY):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120) as c:
        yield c


def complete(client, description):
    return client.completions.create(
        model=client.models.list().data[0].id, prompt="hello", max_tokens=4, temperature=0,
        extra_body={"task_description": description},
    )


def test_new_adapters_per_minute_are_limited_per_key_with_retry_after(server, http):
    client = sdk(server)
    first = complete(client, f"{SECRET} task a0.")
    for i in range(1, PER_MINUTE):
        complete(client, f"{SECRET} task a{i}.")
    with pytest.raises(openai.RateLimitError) as refused:
        complete(client, f"{SECRET} one task too many.")
    assert refused.value.status_code == 429
    assert 1 <= int(refused.value.response.headers["retry-after"]) <= 60
    assert refused.value.body["code"] == 429
    assert f"max-new-adapters-per-minute {PER_MINUTE}" in refused.value.body["message"]
    assert complete(client, f"{SECRET} task a0.").model == first.model  # reuse is not creation
    # The admin route counts against the same budget, with the same error.
    r = http.post("/v1/t2l/adapters", json={"task_description": f"{SECRET} via admin."})
    assert r.status_code == 429 and r.json()["error"]["type"] == "RateLimitError" and "retry-after" in r.headers
    # Another key has its own budget.
    assert complete(sdk(server, KEYS[1]), f"{SECRET} task b0.").model.startswith("t2l-")
    assert 't2l_generations_rejected_total{reason="rate"} 2.0' in http.get("/metrics").text


def test_pin_keeps_an_adapter_through_evictions(server, http):
    pinned = http.get("/v1/t2l/adapters").json()["data"][-1]["id"]  # least recently used: evicted first
    r = http.post(f"/v1/t2l/adapters/{pinned}/pin")
    assert r.status_code == 200 and r.json()["pinned"] is True
    # Enough new adapters (on the keys with budget left) to push out of both tiers.
    made = [complete(sdk(server, KEYS[1]), f"Passing task b{i}.").model for i in range(1, PER_MINUTE)]
    made += [complete(sdk(server, KEYS[2]), f"Passing task c{i}.").model for i in range(PER_MINUTE)]

    def within_bounds():  # disk evictions run after the responses went out
        listing = http.get("/v1/t2l/adapters").json()["data"]
        return listing if len(listing) <= MAX_DISK else None

    on_disk = wait_for(within_bounds)
    assert len(made) + PER_MINUTE + 1 > MAX_DISK  # the bounds were exceeded, so something was evicted
    listed = {a["id"]: a for a in on_disk}
    assert listed[pinned]["pinned"] is True and listed[pinned]["resident"] is True
    r = http.delete(f"/v1/t2l/adapters/{pinned}")
    assert r.status_code == 409 and "unpin it first" in r.json()["error"]["message"]
    assert http.post(f"/v1/t2l/adapters/t2l-{'0' * 32}/pin").status_code == 404
    r = http.delete(f"/v1/t2l/adapters/{pinned}/pin")
    assert r.status_code == 200 and r.json()["pinned"] is False
    assert http.post(f"/v1/t2l/adapters/{pinned}/pin").status_code == 200  # pinned again for the next test


def test_admin_bodies_are_capped(server, http):
    from t2l_vllm.serving.vllm_plugin import MAX_BODY_BYTES

    r = http.post("/v1/t2l/adapters", content=b" " * (MAX_BODY_BYTES + 1), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == 413


def test_descriptions_stay_out_of_the_log_and_the_metrics(server, http):
    log = server.log_path.read_text(errors="replace")
    assert SECRET not in log and "t2l-" in log  # adapter ids are logged, their descriptions are not
    metrics = http.get("/metrics").text
    assert "t2l_adapters_pinned 1.0" in metrics and SECRET not in metrics
    # vLLM's LoRA info gauge keeps its latest label set only, not one per adapter combination ever seen.
    assert metrics.count("vllm:lora_requests_info{") <= 1


def test_lora_info_gauge_keeps_only_its_latest_series():
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    from t2l_vllm.serving.vllm_plugin import LORA_INFO_METRIC, keep_only_latest_lora_info

    registry = CollectorRegistry()
    gauge = Gauge(LORA_INFO_METRIC, "as vLLM declares it", labelnames=["running_lora_adapters"], registry=registry)
    assert keep_only_latest_lora_info(registry)
    for running in ("t2l-a", "t2l-a,t2l-b", "t2l-c"):
        gauge.labels(running_lora_adapters=running).set_to_current_time()
    exposed = generate_latest(registry).decode()
    assert exposed.count(LORA_INFO_METRIC + "{") == 1 and 'running_lora_adapters="t2l-c"' in exposed
    assert not keep_only_latest_lora_info(CollectorRegistry())  # no such metric: nothing to do


def test_sigterm_finishes_in_flight_requests_and_removes_the_tmpfs_tier(server, http):
    assert any(server.fast_dir.iterdir())
    pinned = next(a["id"] for a in http.get("/v1/t2l/adapters").json()["data"] if a["pinned"])
    stream = sdk(server).completions.create(
        model=pinned, prompt="Count:", max_tokens=200, temperature=0, stream=True, extra_body={"ignore_eos": True},
    )
    chunks = iter(stream)
    first = next(chunks)
    # To the API server, as a container runtime does: it drains, then stops its engine
    # core. (A SIGTERM to the engine core directly ends it without the drain.)
    os.kill(server.proc.pid, signal.SIGTERM)
    rest = list(chunks)
    assert rest[-1].choices[0].finish_reason == "length"
    assert server.proc.wait(timeout=60) == 0
    assert first.model.startswith("t2l-")
    assert not server.fast_dir.exists()
    assert not [p for p in server.adapter_dir.iterdir() if p.name.startswith(".") and p.name != ".owner.lock"]

"""Scale-out on Ray Serve: `t2l-vllm serve-cluster --replicas 2` on a real local Ray, tiny models.

One cluster for the module (its start is most of the time): a front door and two
replicas, each a `t2l-vllm serve` with its own vLLM engine and hypernetwork, one
shared adapter folder, an API key. The last test kills a replica with SIGKILL.
"""

from __future__ import annotations

import concurrent.futures as cf
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytest.importorskip("ray.serve", reason="the cluster tests need Ray Serve: T2L_EXTRA=cpu,ray bash scripts/install.sh")

from t2l_vllm.serving.process import free_port  # noqa: E402
from t2l_vllm.serving.shared_store import SharedAdapterStore  # noqa: E402
from tests.server_utils import ROOT  # noqa: E402

API_KEY = "cluster-key"
START_TIMEOUT_S = 420


class Cluster:
    def __init__(self, tmp: Path, base_dir: Path, hypernet_dir: Path):
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.shared = tmp / "shared"
        cmd = [
            sys.executable, "-m", "t2l_vllm.cli", "serve-cluster", "--replicas", "2", "--address", "local",
            "--port", str(self.port), "--work-dir", str(tmp / "work"), "--shared-adapter-dir", str(self.shared),
            "--api-key", API_KEY,
            "--model", str(base_dir), "--hypernet", str(hypernet_dir), "--dtype", "float32", "--max-model-len", "512",
            "--max-loras", "2", "--enforce-eager",
        ]
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "T2L_VLLM_CACHE": str(tmp / "cache")}
        self.log = open(tmp / "cluster.log", "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                     start_new_session=True)
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=180)

    def tail(self, n: int = 80) -> str:
        self.log.flush()
        return "\n".join((self.tmp / "cluster.log").read_text(errors="replace").splitlines()[-n:])

    def info(self) -> dict:
        return self.http.get("/v1/t2l/cluster").json()

    def wait_healthy(self, replicas: int = 2, timeout: float = START_TIMEOUT_S, exclude: set = frozenset()) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve-cluster exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                info = self.info()
                healthy = [r for r in info["replicas"] if r["healthy"] and r["replica"] not in exclude]
                if len(healthy) >= replicas:
                    return info
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(1)
        raise TimeoutError(f"{replicas} healthy replicas not reached in {timeout:.0f}s:\n{self.tail()}")

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # serve.shutdown, then ray.shutdown
            try:
                self.proc.wait(timeout=180)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, tiny_base_dir, tiny_hypernet_dir):
    c = Cluster(tmp_path_factory.mktemp("cluster"), tiny_base_dir, tiny_hypernet_dir)
    try:
        c.wait_healthy()
        yield c
    finally:
        c.stop()


@pytest.fixture
def client(cluster):
    return openai.OpenAI(base_url=f"{cluster.url}/v1", api_key=API_KEY, max_retries=0)


def chat(cluster, description=None, model=None, max_tokens=8, **extra):
    body = {"model": model or base_model(cluster), "messages": [{"role": "user", "content": "Classify: I love it"}],
            "max_tokens": max_tokens, "temperature": 0, **extra}
    if description is not None:
        body["task_description"] = description
    return cluster.http.post("/v1/chat/completions", json=body)


def base_model(cluster) -> str:
    return next(m["id"] for m in cluster.http.get("/v1/models").json()["data"] if not m.get("parent"))


def t2l_metric(cluster, name: str, **labels) -> dict[str, float]:
    """replica -> value of one series (t2l or vLLM), summed over other labels, from the front door's /metrics."""
    out = {}
    for family in text_string_to_metric_families(httpx.get(cluster.url + "/metrics", timeout=60).text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                replica = s.labels.get("replica", "front door")
                out[replica] = out.get(replica, 0.0) + s.value
    return out


def test_the_front_door_is_the_single_servers_api(cluster, client, tiny_hypernet_config):
    # The key guards everything but the public routes; errors are OpenAI JSON.
    r = httpx.get(cluster.url + "/v1/models")
    assert r.status_code == 401 and r.json()["error"]["type"] == "AuthenticationError"
    assert httpx.get(cluster.url + "/health").status_code == 200
    assert httpx.get(cluster.url + "/metrics").status_code == 200
    base = base_model(cluster)

    resp = client.chat.completions.with_raw_response.create(
        model=base, messages=[{"role": "user", "content": "hi"}], max_tokens=4,
        extra_body={"task_description": "Answer with the capital city of the given country."},
    )
    aid = resp.headers["x-t2l-adapter-id"]
    assert resp.parse().model == aid and resp.headers["x-t2l-replica"]
    text = "".join(
        c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model=base, messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True,
            extra_body={"task_description": "Answer with the capital city of the given country."},
        ) if c.choices
    )
    assert isinstance(text, str)
    assert client.completions.create(model=aid, prompt="Italy", max_tokens=3).model == aid
    assert aid in {m.id for m in client.models.list().data}

    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=base, messages=[{"role": "user", "content": "x"}],
                                       extra_body={"task_description": "   "})
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="t2l-" + "0" * 32, prompt="x", max_tokens=2)

    # Admin routes: create, list and show (merged over replicas), download, delete everywhere.
    made = cluster.http.post("/v1/t2l/adapters", json={"task_description": "Reverse the string."}).json()
    listed = {a["id"]: a for a in cluster.http.get("/v1/t2l/adapters").json()["data"]}
    assert made["id"] in listed and listed[made["id"]]["replicas"]
    assert cluster.http.get(f"/v1/t2l/adapters/{made['id']}").json()["description"] == "Reverse the string."
    archive = cluster.http.get(f"/v1/t2l/adapters/{made['id']}/download")
    with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
        assert f"{made['id']}/adapter_model.safetensors" in tar.getnames()
    assert cluster.http.delete(f"/v1/t2l/adapters/{made['id']}").json()["deleted"] is True
    assert cluster.http.get(f"/v1/t2l/adapters/{made['id']}").status_code == 404
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model=made["id"], prompt="x", max_tokens=2)

    # The library is uploaded to, listed from and deleted on every replica; a bad upload is one 400.
    from tests.test_library import _adapter, _body

    tensors, config = _adapter(tiny_hypernet_config.target)
    bad = cluster.http.post("/v1/t2l/library", json=_body(tensors, config, descriptions=()))
    assert bad.status_code == 400 and "descriptions" in bad.json()["error"]["message"]
    lib = cluster.http.post("/v1/t2l/library", json=_body(tensors, config)).json()
    assert lib["kind"] == "library"
    [listed] = cluster.http.get("/v1/t2l/library").json()["data"]
    assert listed["id"] == lib["id"] and len(listed["held_by"]) == 2  # both replicas serve it
    assert cluster.http.delete(f"/v1/t2l/library/{lib['id']}").json()["deleted"] is True
    assert cluster.http.get("/v1/t2l/library").json()["data"] == []


def test_one_description_is_generated_once_cluster_wide(cluster):
    before = sum(t2l_metric(cluster, "t2l_adapter_cache_total", result="miss").values())
    with cf.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: chat(cluster, "Count the vowels in the input."), range(20)))
    assert [r.status_code for r in answers] == [200] * 20
    assert len({r.headers["x-t2l-adapter-id"] for r in answers}) == 1
    # Both replicas report, labelled (a gauge: a replica exports the miss counter only once it has
    # had a miss, and which replica earlier descriptions went to depends on the random replica ids).
    assert len(t2l_metric(cluster, "t2l_adapters_on_disk")) == 2
    misses = t2l_metric(cluster, "t2l_adapter_cache_total", result="miss")
    assert sum(misses.values()) - before == 1


def test_distinct_descriptions_reach_both_replicas_and_stay_there(cluster):
    first = {i: chat(cluster, f"Distinct task number {i}.").headers["x-t2l-replica"] for i in range(8)}
    assert len(set(first.values())) == 2
    routing = cluster.info()["routing"]
    again = {i: chat(cluster, f"Distinct task number {i}.").headers["x-t2l-replica"] for i in range(8)}
    assert again == first  # Ray's multiplexed routing sends an id where it is held
    assert cluster.info()["routing"]["affinity"] - routing["affinity"] == 8


def test_a_killed_replica_is_replaced_and_loses_nothing(cluster):
    made = {}
    for i in range(6):
        r = chat(cluster, f"Acknowledged task {i}.")
        assert r.status_code == 200
        made[r.headers["x-t2l-adapter-id"]] = r.headers["x-t2l-replica"]
    info = cluster.info()
    victim = next(r for r in info["replicas"] if r["replica"] in made.values())
    on_victim = [a for a, rep in made.items() if rep == victim["replica"]]
    retries = info["routing"]["retries"]

    def slow(aid):  # running on the victim when it dies; not streamed, so sent again elsewhere
        return chat(cluster, model=aid, max_tokens=400, ignore_eos=True)  # within --max-model-len 512

    with cf.ThreadPoolExecutor(16) as pool:
        load = [pool.submit(chat, cluster, f"Load task {i}.") for i in range(4)]
        # Slow requests for adapters the victim holds, topped up to 4 in flight until one is
        # seen running there: on a loaded machine one /metrics scrape can outlast a request.
        slow_ones: list = []
        deadline = time.monotonic() + 240
        while True:
            while sum(not f.done() for f in slow_ones) < 4:
                slow_ones.append(pool.submit(slow, on_victim[len(slow_ones) % min(2, len(on_victim))]))
            # Running there, and still in flight after the scrape (a scrape can outlast them all,
            # which left nothing to be rescued by the kill).
            if t2l_metric(cluster, "vllm:num_requests_running").get(victim["replica"]) and \
                    sum(not f.done() for f in slow_ones) >= 2:
                break
            assert time.monotonic() < deadline, "the slow requests never ran on the victim"
            time.sleep(0.05)
        pending = [f for f in slow_ones if not f.done()]
        os.kill(victim["pid"], signal.SIGKILL)
        answers = [f.result() for f in slow_ones + load]
    assert [r.status_code for r in answers] == [200] * len(answers)
    # Those still running at the kill were answered again by the other replica (one may have
    # finished on the victim between the last check and the kill).
    assert any(f.result().headers["x-t2l-replica"] != victim["replica"] for f in pending)
    assert cluster.info()["routing"]["retries"] > retries

    # Every acknowledged adapter is still served by id, from a complete, verified shared copy.
    for aid in made:
        r = chat(cluster, model=aid)
        assert r.status_code == 200 and r.headers["x-t2l-adapter-id"] == aid
    shared = SharedAdapterStore(cluster.shared)
    for aid in made:
        shared.store.verified_path(aid)  # raises on a corrupt copy

    # The victim's server (and its engine) went down with it; Ray started a replacement.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and subprocess.run(
        ["ps", "-o", "pid=", "-g", str(victim["server_pid"])], capture_output=True
    ).returncode == 0:
        time.sleep(0.5)
    group = subprocess.run(["ps", "-o", "pid=", "-g", str(victim["server_pid"])], capture_output=True, text=True)
    assert group.stdout.strip() == "", f"the killed replica's server group is still running: {group.stdout}"
    back = cluster.wait_healthy(exclude={victim["replica"]})
    assert victim["replica"] not in {r["replica"] for r in back["replicas"]}
    assert not (cluster.tmp / "work" / victim["replica"]).exists()  # its private folder was cleaned up
    r = chat(cluster, "A description after the replacement.")
    assert r.status_code == 200
    assert json.loads(r.content)["model"] == r.headers["x-t2l-adapter-id"]

"""Correctness and routing of a running `t2l-vllm serve-cluster` (not a speed test).

    t2l-vllm serve-cluster --replicas 2 --enforce-eager            # in another shell
    python benchmarks/cluster_check.py --url http://127.0.0.1:8000 --kill --out benchmarks/results/cluster

Checks, in order, and writes <out>/cluster_check.json:
  1. answers: three descriptions from the README, greedy, with the replica that answered;
  2. single flight: one new description sent 20 times at once (POST /v1/t2l/adapters, which makes
     the adapter whatever the low-confidence policy would serve) -> generations cluster-wide
     (the sum over replicas of t2l_adapter_cache_total{result="miss"}, from the front door's /metrics);
  3. spread and affinity: 8 new adapters -> the replicas they landed on; a chat through each
     by id -> how many went back to the replica that made it;
  4. (--kill) kill -9 of one replica's Ray worker while 4 clients send requests (chats by id,
     new adapters) and 2 long non-streamed requests run on it: status codes, front-door retries,
     acknowledged adapters served by id afterwards, seconds until Ray's replacement is healthy.
     The kill needs the replica's pid, so run it on the machine that runs the replica.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

EXAMPLES = [
    ("Answer with the capital city of the given country.", "Italy"),
    ("Reply with the plural form of the English noun you are given.", "city"),
    ("Is the review positive or negative? Answer with one word.", "The food was cold and the waiter was rude."),
]


class Front:
    def __init__(self, url: str, api_key: str | None):
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=300)
        self.base = next(m["id"] for m in self.http.get("/v1/models").json()["data"] if not m.get("parent"))

    def chat(self, description=None, content="hi", model=None, max_tokens=16, **extra) -> httpx.Response:
        body = {"model": model or self.base, "messages": [{"role": "user", "content": content}],
                "max_tokens": max_tokens, "temperature": 0, **extra}
        if description is not None:
            body["task_description"] = description
        return self.http.post("/v1/chat/completions", json=body)

    def create(self, description: str) -> httpx.Response:
        """POST /v1/t2l/adapters: always makes the adapter, whatever the low-confidence policy serves."""
        return self.http.post("/v1/t2l/adapters", json={"task_description": description})

    def misses(self) -> float:
        total = 0.0
        for family in text_string_to_metric_families(self.http.get("/metrics").text):
            for s in family.samples:
                if s.name == "t2l_adapter_cache_total" and s.labels.get("result") == "miss":
                    total += s.value
        return total

    def cluster(self) -> dict:
        return self.http.get("/v1/t2l/cluster").json()


def check_answers(front: Front) -> list[dict]:
    out = []
    for description, content in EXAMPLES:
        r = front.chat(description, content)
        out.append({"description": description, "input": content, "status": r.status_code,
                    "answer": r.json()["choices"][0]["message"]["content"], "replica": r.headers.get("x-t2l-replica")})
    return out


def check_single_flight(front: Front, tag: str) -> dict:
    before = front.misses()
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: front.create(f"Count the vowels in the input ({tag})."), range(20)))
    return {
        "requests": 20, "seconds": round(time.perf_counter() - t0, 2),
        "statuses": dict(Counter(r.status_code for r in answers)),
        "adapter_ids": len({r.json()["id"] for r in answers if r.status_code == 200}),
        "replicas": dict(Counter(r.headers.get("x-t2l-replica") for r in answers)),
        "generations_cluster_wide": front.misses() - before,
    }


def check_spread(front: Front, tag: str) -> dict:
    made = [front.create(f"Task {i} of the spread check ({tag}).") for i in range(8)]
    first = {r.json()["id"]: r.headers.get("x-t2l-replica") for r in made}
    again = {aid: front.chat(model=aid).headers.get("x-t2l-replica") for aid in first}
    return {"replicas_first": dict(Counter(first.values())), "same_replica_again": sum(first[a] == again[a] for a in first)}


def check_kill(front: Front, tag: str) -> dict:
    made = {}
    for i in range(6):
        r = front.create(f"Acknowledged task {i} ({tag}).")
        made[r.json()["id"]] = r.headers["x-t2l-replica"]
    info = front.cluster()
    victim = next(r for r in info["replicas"] if r["replica"] in made.values())
    on_victim = [a for a, rep in made.items() if rep == victim["replica"]]
    retries0 = info["routing"]["retries"]
    stop, results = threading.Event(), []

    def load(k: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            ids = list(made)
            r = front.chat(model=ids[(i + k) % len(ids)]) if i % 2 else front.create(f"Load {k}-{i} ({tag}).")
            results.append((time.monotonic(), r.status_code, r.headers.get("x-t2l-replica")))

    with cf.ThreadPoolExecutor(8) as pool:
        clients = [pool.submit(load, k) for k in range(4)]
        long = [pool.submit(front.chat, None, "hi", aid, 64, ignore_eos=True) for aid in on_victim[:2]]
        time.sleep(2.0)
        t_kill = time.monotonic()
        os.kill(victim["pid"], signal.SIGKILL)
        long_answers = [f.result() for f in long]
        time.sleep(10)
        stop.set()
        for f in clients:
            f.result()
    after = Counter(rep for t, _, rep in results if t > t_kill)
    by_id = Counter(front.chat(model=a).status_code for a in made)
    recovered = None
    while time.monotonic() - t_kill < 600:
        replicas = front.cluster()["replicas"]
        if sum(r["healthy"] and r["replica"] != victim["replica"] for r in replicas) >= len(info["replicas"]):
            recovered = round(time.monotonic() - t_kill, 1)
            break
        time.sleep(1)
    return {
        "victim": victim["replica"],
        "load_statuses": dict(Counter(s for _, s, _ in results)),
        "load_replicas_after_kill": dict(after),
        "long_requests_on_victim": {"statuses": [r.status_code for r in long_answers],
                                    "replicas": [r.headers.get("x-t2l-replica") for r in long_answers]},
        "front_door_retries": front.cluster()["routing"]["retries"] - retries0,
        "acknowledged": len(made), "acknowledged_served_by_id": dict(by_id),
        "replacement_healthy_after_s": recovered,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--api-key", default=os.environ.get("VLLM_API_KEY"))
    p.add_argument("--kill", action="store_true", help="also kill -9 a replica under load (same machine)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/cluster"))
    args = p.parse_args()
    front = Front(args.url, args.api_key)
    tag = str(int(time.time()))  # new descriptions on every run
    report = {"url": args.url, "cluster_before": front.cluster(), "answers": check_answers(front),
              "single_flight": check_single_flight(front, tag), "spread": check_spread(front, tag)}
    if args.kill:
        report["kill"] = check_kill(front, tag)
    report["cluster_after"] = front.cluster()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cluster_check.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if not k.startswith("cluster_")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

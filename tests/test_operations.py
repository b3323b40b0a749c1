"""Operations files against a real tiny server: the Grafana dashboard, the alert rules, the scrape example.

Every metric name in examples/grafana/t2l-vllm-dashboard.json and
examples/prometheus_alerts.yml must be one the server exports on /metrics
(so they cannot drift apart); the rules pass `promtool check rules` and their
unit tests (`promtool test rules`); the dashboard's queries parse as PromQL
(checked by promtool as recording rules); examples/prometheus_scrape.sh runs a
real Prometheus against the server. promtool and prometheus come from
Debian's `prometheus` package (scripts/install.sh); without them those tests skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.server_utils import ROOT, running_tiny_server

API_KEY = "ops-key"
DASHBOARD = ROOT / "examples" / "grafana" / "t2l-vllm-dashboard.json"
RULES = ROOT / "examples" / "prometheus_alerts.yml"
RULES_TEST = ROOT / "examples" / "prometheus_alerts_test.yml"
SCRAPE_EXAMPLE = ROOT / "examples" / "prometheus_scrape.sh"
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not found (Debian package prometheus; scripts/install.sh)")
needs_prometheus = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not found (Debian package prometheus)")
# Metric names in PromQL: ours and vLLM's (vLLM's contain colons).
METRIC_RE = re.compile(r"\b(t2l_[a-z0-9_]+|vllm:[a-z0-9_:]+)")
# What the issue asks the dashboard to show, by the names it must use.
REQUIRED_ON_DASHBOARD = {
    "t2l_adapter_generation_seconds_bucket",  # generation latency by stage
    "t2l_adapter_cache_total",  # cache hit ratio
    "t2l_adapters_resident", "t2l_adapters_on_disk",
    "t2l_adapter_evictions_total",
    "t2l_adapter_generation_errors_total",
    "vllm:generation_tokens_total",  # vLLM throughput
    "vllm:num_requests_running", "vllm:num_requests_waiting",  # vLLM queue
}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count"),
            "gauge": ("",), "info": ("",), "untyped": ("",)}


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_base_dir, tiny_hypernet_dir):
    """A keyed tiny server with tiny bounds, driven until every t2l metric family has samples it can have."""
    tmp = tmp_path_factory.mktemp("operations")
    extra = ["--max-engine-adapters", "1", "--max-disk-adapters", "2", "--no-playground"]
    with running_tiny_server(tmp, tiny_base_dir, tiny_hypernet_dir, *extra, api_key=API_KEY) as srv:
        with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120) as http:
            model = http.get("/v1/models").json()["data"][0]["id"]
            # Three descriptions through bounds of 1 (engine) and 2 (disk): misses, a hit, evictions in both tiers.
            for description in ("Say yes.", "Say no.", "Say yes.", "Say maybe."):
                r = http.post("/v1/chat/completions", json={
                    "model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
                    "task_description": description,
                })
                assert r.status_code == 200, r.text
        yield srv


@pytest.fixture(scope="module")
def exported(server) -> dict[str, str]:
    """Every sample name the server's /metrics can carry -> its family type (from the # TYPE lines)."""
    text = httpx.get(f"{server.url}/metrics", timeout=30).text  # public: no key needed
    names = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ", 3)
            for suffix in SUFFIXES[kind]:
                # prometheus_client writes counters' families with or without _total.
                name = family if kind == "counter" and family.endswith("_total") else family + suffix
                names[name] = kind
    return names


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = []

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("expr", "definition") and isinstance(v, str):
                    exprs.append(v)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(dash)
    return exprs


def rule_exprs() -> list[str]:
    import yaml

    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def test_dashboard_uses_only_exported_metrics(exported):
    used = {m for e in dashboard_exprs() for m in METRIC_RE.findall(e)}
    assert used, "no metric names found in the dashboard"
    missing = sorted(used - set(exported))
    assert not missing, f"dashboard metrics not on the server's /metrics: {missing}"
    assert REQUIRED_ON_DASHBOARD <= used, sorted(REQUIRED_ON_DASHBOARD - used)


def test_dashboard_layout_is_importable():
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in dash["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        if p["type"] != "row":
            assert p["targets"] and all(t["expr"] for t in p["targets"]), p["title"]
            assert p["datasource"]["uid"] == "${datasource}", p["title"]
    assert [v["name"] for v in dash["templating"]["list"]] == ["datasource", "job"]


def test_alert_rules_use_only_exported_metrics(exported):
    used = {m for e in rule_exprs() for m in METRIC_RE.findall(e)}
    missing = sorted(used - set(exported))
    assert not missing, f"alert-rule metrics not on the server's /metrics: {missing}"
    # The three alerts the issue names: errors, p95 latency, cache thrash.
    assert {"t2l_adapter_generation_errors_total", "t2l_adapter_generation_seconds_bucket",
            "t2l_adapter_evictions_total"} <= used


def test_the_traffic_filled_the_metrics_the_panels_show(server):
    """Not only names: the fixture's requests produced samples the dashboard plots (evictions in both tiers)."""
    from prometheus_client.parser import text_string_to_metric_families

    samples = {}
    for family in text_string_to_metric_families(httpx.get(f"{server.url}/metrics", timeout=30).text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert samples[("t2l_adapter_cache_total", (("result", "miss"),))] == 3
    assert samples[("t2l_adapter_cache_total", (("result", "hit"),))] >= 1
    assert samples[("t2l_adapter_evictions_total", (("tier", "engine"),))] >= 1
    assert samples[("t2l_adapter_evictions_total", (("tier", "disk"),))] >= 1
    assert samples[("t2l_adapters_on_disk", ())] == 2
    assert samples[("t2l_adapter_generation_seconds_count", (("stage", "hypernet"),))] == 3


def test_playground_can_be_turned_off(server):
    r = httpx.get(f"{server.url}/t2l/playground", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)
    assert r.status_code == 404
    # Off means not public either: without the key it is a 401 like any other route.
    assert httpx.get(f"{server.url}/t2l/playground", timeout=30).status_code == 401


@needs_promtool
def test_promtool_checks_and_unit_tests_the_rules():
    checked = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 4 rules found" in checked.stdout
    tested = subprocess.run([PROMTOOL, "test", "rules", RULES_TEST.name], capture_output=True, text=True,
                            cwd=RULES_TEST.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    config = subprocess.run([PROMTOOL, "check", "config", str(ROOT / "examples" / "prometheus.yml")],
                            capture_output=True, text=True)
    assert config.returncode == 0, config.stdout + config.stderr


@needs_promtool
def test_dashboard_queries_parse_as_promql(tmp_path):
    """promtool parses each dashboard query as a recording rule ($job as `.*`)."""
    import yaml

    rules = [{"record": f"dashboard:query_{i}", "expr": e.replace("$job", ".*")}
             for i, e in enumerate(e for e in dashboard_exprs() if not e.startswith("label_values("))]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout


@needs_prometheus
def test_scrape_example_shows_t2l_series(server):
    with socket.socket() as s:  # a free loopback port for this Prometheus
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = subprocess.run(
        ["bash", str(SCRAPE_EXAMPLE), server.url], capture_output=True, text=True, timeout=180,
        env={**os.environ, "PROM_PORT": str(port), "TIMEOUT_S": "120"},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert f"scrapes {server.url}" in out and ": up" in out, out
    for name in ("t2l_adapters_resident", "t2l_adapters_on_disk", "t2l_adapter_cache_total",
                 "t2l_adapter_generation_seconds_bucket"):
        assert re.search(rf"^\s+{name}\s+\d+ series$", out, re.M), (name, out)
    assert re.search(r"sum\(t2l_adapters_on_disk\)\s+2$", out, re.M), out
    assert "alert rules loaded: 4" in out, out

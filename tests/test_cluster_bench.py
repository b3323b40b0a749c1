"""benchmarks/cluster_bench.py's logic without a cluster: arguments, metric deltas, resuming, the table."""

from __future__ import annotations

import argparse
import importlib.util
import json

import pytest

from benchmarks import cluster_bench as cb

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def test_arguments():
    ours, serve = cb.split_serve_args(["--policies", "plain", "--", "--enforce-eager"])
    args = cb.build_parser().parse_args(ours)
    assert args.policies == ["plain"] and args.num_descriptions == [8, 32, 128] and serve == ["--enforce-eager"]
    assert cb.replica_serve_args(serve) == ["--enforce-eager", "--low-confidence-policy", "adapter"]
    assert cb.replica_serve_args(["--low-confidence-policy=prompt"]) == ["--low-confidence-policy=prompt"]
    assert cb.policy_list("affinity, plain") == ["affinity", "plain"]
    with pytest.raises(argparse.ArgumentTypeError):
        cb.policy_list("random")


def exposition(miss: int, shared: int, register: int, resident: int, spill: int) -> str:
    lines = ["# TYPE t2l_cluster_requests_total counter",
             't2l_cluster_requests_total{routing="first"} 4.0',
             f't2l_cluster_requests_total{{routing="spill"}} {spill}.0',
             "# TYPE t2l_adapter_cache_total counter"]
    for r in ("r1", "r2"):
        lines += [f't2l_adapter_cache_total{{result="miss",replica="{r}"}} {miss}.0',
                  f't2l_adapter_cache_total{{result="shared",replica="{r}"}} {shared}.0']
    lines.append("# TYPE t2l_adapter_generation_seconds histogram")
    for r in ("r1", "r2"):
        lines += [f't2l_adapter_generation_seconds_bucket{{le="+Inf",stage="register",replica="{r}"}} {register}.0',
                  f't2l_adapter_generation_seconds_count{{stage="register",replica="{r}"}} {register}.0',
                  f't2l_adapter_generation_seconds_sum{{stage="register",replica="{r}"}} 0.5']
    lines.append("# TYPE t2l_adapters_resident gauge")
    lines += [f't2l_adapters_resident{{replica="{r}"}} {resident}.0' for r in ("r1", "r2")]
    return "\n".join(lines) + "\n"


def test_metric_deltas_and_totals_per_description():
    before = cb.replica_metrics(exposition(miss=1, shared=0, register=1, resident=1, spill=0))
    after = cb.replica_metrics(exposition(miss=5, shared=2, register=7, resident=6, spill=3))
    assert after["r1"]["registrations"] == 7 and after[""]["routed_spill"] == 3
    deltas = cb.metric_deltas(before, after)
    assert deltas["r1"] == {"cache_miss": 4, "cache_shared": 2, "registrations": 6, "resident": 6}
    t = cb.totals(deltas, n=4)  # 8 descriptions: the warm set and the cold set
    assert (t["generations"], t["shared_adoptions"], t["registrations"]) == (8, 4, 12)
    assert t["generations_per_description"] == 1.0 and t["registrations_per_description"] == 1.5
    assert t["resident_after"] == {"r1": 6, "r2": 6} and t["routed"] == {"first": 0, "spill": 3}


def test_a_replaced_replica_or_a_failed_request_invalidates_a_run():
    before = cb.replica_metrics(exposition(miss=1, shared=0, register=1, resident=1, spill=0))
    after = cb.replica_metrics(exposition(miss=5, shared=2, register=7, resident=6, spill=3))
    assert cb.invalid_reason(before, after, failed=0) is None
    assert "2 requests failed" == cb.invalid_reason(before, after, failed=2)
    restarted = cb.replica_metrics(exposition(miss=0, shared=0, register=0, resident=0, spill=3))
    assert "restarted" in cb.invalid_reason(before, restarted, failed=0)
    replaced = {("r3" if k == "r2" else k): v for k, v in after.items()}
    assert "replicas changed" in cb.invalid_reason(before, replaced, failed=0)


def fake_run(policy: str, n: int, registrations: int) -> dict:
    def mode(ttft: float) -> dict:
        return {"succeeded": 3 * n, "requests": 3 * n, "failed": 0, "output_tokens_per_s": 40.0,
                "ttft_ms": {"p50": ttft, "p95": 2 * ttft}, "ttft_first_per_description_ms": {"p50": ttft},
                "e2e_ms": {"p50": 900.0},
                "server": {"cache": {"hit": n, "shared": 0, "miss": n}, "evictions": {"engine": 0},
                           "generation_ms": {"register": {"count": n}}}}
    return {
        "policy": policy, "num_descriptions": n, "serve_bench": {"modes": {"t2l-warm": mode(500.0), "t2l-cold": mode(900.0)}},
        "totals": {"generations_per_description": 1.0, "shared_adoptions_per_description": 0.25,
                   "registrations_per_description": registrations / (2 * n), "engine_evictions": 0,
                   "registrations_by_replica": {"r1": registrations, "r2": 0}, "resident_after": {"r1": 3, "r2": 1},
                   "routed": {"first": 2 * n, "spill": 1, "affinity": 4, "none": 0}},
        "cluster_ready_s": 100.0, "load_after": [3.0, 3.0, 3.0],
    }


def fake_results() -> dict:
    results = {"workload": {"replicas": 2, "serve_args": ["--enforce-eager"], "requests_per_description": 3,
                            "concurrency": 8, "output_len": 32, "prompt_len": 32}, "runs": {}}
    for policy, n, reg in (("plain", 8, 30), ("affinity", 32, 64), ("affinity", 8, 16)):
        results["runs"][cb.run_key(policy, n)] = fake_run(policy, n, reg)
    return results


def test_table_and_resume(tmp_path, monkeypatch):
    results = fake_results()
    table = cb.rows(results)
    assert [(r["policy"], r["n"]) for r in table] == [("affinity", 8), ("affinity", 32), ("plain", 8)]
    assert table[2]["registrations_per_description"] == 1.875 and table[0]["sent"] == 48
    md = cb.markdown(results)
    assert "| affinity | 8 | 1.00 | 0.25 | 1.00 | 1.00 | 0 | 900 / 1800 | 500 / 1000 | 40.0 / 40.0 | 48 / 48 | 1 / 21 |" in md
    assert md.count("| plain | 8 |") == 4  # the main table, the per-mode one (2 rows), the per-replica one
    results["runs"]["plain/N=128"] = {**fake_run("plain", 128, 1), "invalid": "a counter went down"}
    assert len(cb.rows(results)) == 3 and "plain N=128: a counter went down" in cb.markdown(results)
    assert "| plain | 128 |" not in cb.markdown(results)
    monkeypatch.setattr(cb, "pyplot", lambda: None)  # the plot has its own test
    assert set(cb.save(results, tmp_path)) == {"json", "markdown"}
    assert json.loads((tmp_path / "results.json").read_text()) == results
    resumed = cb.load(tmp_path, fresh=False)
    assert cb.run_key("affinity", 32) in resumed["runs"] and cb.load(tmp_path, fresh=True) == {"runs": {}}


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="the plot is optional")
def test_plot(tmp_path):
    assert cb.plot(fake_results(), tmp_path / "routing.png") and (tmp_path / "routing.png").stat().st_size > 0


def test_processes_are_found_by_their_cluster_marker(tmp_path):
    """How stop() finds servers a killed replica orphaned: the cluster's shared folder in their environment."""
    import os
    import subprocess

    marker = f"T2L_VLLM_SHARED_ADAPTER_DIR={tmp_path / 'shared'}"
    proc = subprocess.Popen(["sleep", "30"], env={**os.environ, "T2L_VLLM_SHARED_ADAPTER_DIR": str(tmp_path / "shared")})
    try:
        assert cb._with_env(marker) == {proc.pid}
    finally:
        proc.kill()
        proc.wait()
    assert cb._with_env(marker) == set()

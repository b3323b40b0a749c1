"""Load test of a t2l-vllm server over many on-the-fly adapters, as users see it.

Against a running server, or one this script starts and stops:
    .venv/bin/python benchmarks/serve_bench.py --base-url http://127.0.0.1:8000 \\
        --num-descriptions 1,8,32 --requests-per-description 4 --concurrency 8 --output-len 32
    .venv/bin/python benchmarks/serve_bench.py --launch --num-descriptions 1,8,32 -- --max-engine-adapters 64
(arguments after `--` go to `t2l-vllm serve`.)

For every N (number of distinct task descriptions) the same prompts run in four
modes, one mode after another (never concurrently: vLLM 0.32's CPU LoRA path can
decode a base request through a neighbour's adapter when the two share a batch):

    base      no adapter
    static    N adapters made beforehand (POST /v1/t2l/adapters) and addressed
              by `model` id: plain vLLM multi-LoRA, plus our id lookup
    t2l-warm  the same N descriptions as `task_description` (already generated):
              static + the middleware's description path
    t2l-cold  N descriptions never seen before (a fresh random tag each run):
              every first request pays generation + registration

Each request is a streaming call of the official `openai` async client. Per mode:
requests/s, output tokens/s, TTFT, inter-token latency, end-to-end latency,
errors, and from the server's /metrics (delta over the mode) the adapter
generation time per stage and the cache hit rate. The results are the ratios
t2l-warm/static, t2l-cold/static and static/base within this run; absolute
times depend on the machine and are printed, not claimed.

Outputs (in --out-dir): serve_bench.json, serve_bench.md, serve_bench.png (the
PNG only when matplotlib is importable).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

if __package__ is None:  # run as `python benchmarks/serve_bench.py`: `benchmarks.*` resolves from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import int_list, write_outputs
from benchmarks.serving.client import RequestResult
from benchmarks.serving.prometheus import histogram_quantile
from benchmarks.serving.report import markdown, plot
from benchmarks.serving.runner import Context, run_benchmark
from benchmarks.serving.stats import summarise
from benchmarks.serving.workload import MODES, Workload, plan_requests
from t2l_vllm.serving.process import ServerProcess

# The parts live in benchmarks/serving/ (workload, client, stats, prometheus, runner,
# vllm_bench, targets, report); these names stay reachable as serve_bench.<name>.
__all__ = ["MODES", "RequestResult", "Workload", "histogram_quantile", "main", "plan_requests", "summarise"]


def mode_list(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise argparse.ArgumentTypeError(f"unknown mode(s) {unknown}; choose from {', '.join(MODES)}")
    return modes


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = p.add_mutually_exclusive_group()
    target.add_argument("--base-url", default="http://127.0.0.1:8000",
                        help="server root URL (a trailing /v1 is accepted); default http://127.0.0.1:8000")
    target.add_argument("--launch", action="store_true",
                        help="start `t2l-vllm serve` (arguments after `--` are passed to it), stop it at the end")
    p.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY"),
                   help="API key (default $OPENAI_API_KEY); with --launch the server gets it too")
    p.add_argument("--num-descriptions", type=int_list, default=[1, 8, 32],
                   help="comma-separated list of N, distinct task descriptions per run (default 1,8,32)")
    p.add_argument("--requests-per-description", type=int, default=4, help="requests per description (default 4)")
    p.add_argument("--prompt-len", type=int, default=32, help="prompt length in words, ~tokens (default 32)")
    p.add_argument("--output-len", type=int, default=32, help="output tokens per request, EOS ignored (default 32)")
    p.add_argument("--concurrency", type=int, default=8,
                   help="closed loop: requests in flight (default 8); with --request-rate: cap on in flight, 0 = none")
    p.add_argument("--request-rate", type=float, default=None, help="open loop: Poisson arrivals at this many req/s")
    p.add_argument("--endpoint", choices=["chat", "completions"], default="chat", help="API used (default chat)")
    p.add_argument("--modes", type=mode_list, default=list(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    p.add_argument("--warmup", type=int, default=4, help="warm-up requests, base and through one adapter (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of prompts, request order and arrivals (default 0)")
    p.add_argument("--vllm-bench", action="store_true",
                   help="after each base mode, run vLLM's own load tester with the same workload and report both")
    p.add_argument("--out-dir", default="runs/serve_bench", help="where the JSON, markdown and PNG go (default runs/serve_bench)")
    p.add_argument("--launch-timeout", type=float, default=900, help="seconds to wait for a launched server's /health")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def split_server_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """Our arguments, and those after `--` (for `t2l-vllm serve`)."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns the report (also written to --out-dir)."""
    ours, server_args = split_server_args(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(ours)
    if server_args and not args.launch:
        parser.error("arguments after `--` are for the launched server; add --launch")
    workload = Workload(args.requests_per_description, args.prompt_len, args.output_len, args.concurrency,
                        args.request_rate, args.endpoint, args.seed)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    server, scratch = None, None
    if args.launch:
        if not any(a.startswith("--low-confidence-policy") for a in server_args):
            # The t2l modes measure serving through generated adapters, whatever their confidence.
            server_args += ["--low-confidence-policy", "adapter"]
        if not any(a == "--reuse" or a.startswith("--reuse=") for a in server_args):
            # t2l-cold measures generation: its descriptions differ from each other and from the
            # warm set by a word or number only, which --reuse semantic would serve with another's adapter.
            server_args += ["--reuse", "off"]
        if not any(a == "--adapter-dir" or a.startswith("--adapter-dir=") for a in server_args):
            # A fresh folder: adapters and library uploads stored by earlier servers on this
            # machine would otherwise be adopted (a library adds an encoder pass per new description).
            scratch = tempfile.TemporaryDirectory(prefix="serve_bench-")
            server_args += ["--adapter-dir", scratch.name]
        server = ServerProcess(server_args, out_dir / "server.log", api_key=args.api_key)
        print(f"launching: {' '.join(server.cmd)} (log: {server.log_path})", file=sys.stderr)
        root_url = server.url
    else:
        root_url = args.base_url.rstrip("/").removesuffix("/v1")
    try:
        if server is not None:
            server.wait_ready(args.launch_timeout)
        ctx = Context(root_url, args.api_key, workload, progress=not args.no_progress)
        report = asyncio.run(run_benchmark(ctx, args.num_descriptions, args.modes, args.warmup, args.vllm_bench))
    finally:
        if server is not None:
            server.stop()
        if scratch is not None:
            scratch.cleanup()
    report["launched"] = {"serve_args": server_args} if server is not None else None
    paths = write_outputs(report, out_dir, "serve_bench", markdown, plot)
    print(markdown(report))
    print("wrote " + ", ".join(paths.values()), file=sys.stderr)
    return report


if __name__ == "__main__":
    main()

"""Warm-adapter latency during a flood of new descriptions (issue 14: admission control).

    .venv/bin/python benchmarks/flood_bench.py                       # starts the default model's server
    .venv/bin/python benchmarks/flood_bench.py --base-url http://127.0.0.1:8000 --api-key KEY
    .venv/bin/python benchmarks/flood_bench.py -- --max-pending-generations 4   # flags for `t2l-vllm serve`

Phases, one after another, on one server:
    quiet    `--warm-clients` closed-loop clients stream completions through W warm
             adapters (task_description; already generated)
    flood    the same warm traffic, plus `--flood-clients` closed-loop clients that
             POST /v1/t2l/adapters with descriptions never seen before
    quiet2   the warm traffic alone again (a drift check on this noisy machine)

Reported: warm TTFT p50/p95 per phase and the ratio flood / quiet (mean of the two
quiet phases), warm errors (an adapter in use evicted by the flood would show up
here), and what the flood got: created, refused with 429 (and whether each 429
carried Retry-After), and any 5xx. Outputs: flood_bench.json and flood_bench.md
in --out-dir.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from pathlib import Path

if __package__ is None:  # run as `python benchmarks/flood_bench.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import write_outputs
from benchmarks.serving.client import send_one
from benchmarks.serving.stats import percentiles
from benchmarks.serving.workload import TASKS, PlannedRequest, Workload, make_prompts
from t2l_vllm.serving.process import ServerProcess

PHASES = ("quiet", "flood", "quiet2")


async def warm_traffic(client, base: str, descriptions: list[str], clients: int, seconds: float, workload: Workload):
    """Closed loop for `seconds`: each client sends its next request when the last ends."""
    prompts = make_prompts(256, workload.prompt_len, workload.seed)
    results = []
    deadline = time.monotonic() + seconds

    async def worker(w: int):
        i = w
        while time.monotonic() < deadline:
            req = PlannedRequest(prompts[i % len(prompts)], i % len(descriptions), False)
            results.append(await send_one(client, base, req, descriptions[req.slot], workload))
            i += clients

    await asyncio.gather(*[worker(w) for w in range(clients)])
    return results


async def flood(http, clients: int, stop: asyncio.Event, tag: str) -> dict:
    """Closed-loop creates of new descriptions until `stop` is set."""
    counts = {"created": 0, "refused_429": 0, "retry_after_missing": 0, "server_errors": 0, "other": 0}
    n = 0

    async def worker(w: int):
        nonlocal n
        while not stop.is_set():
            n += 1
            text = f"Flood task {tag}-{w}-{n}: answer with the {n % 97}th word of the input."
            r = await http.post("/v1/t2l/adapters", json={"task_description": text})
            if r.status_code == 200:
                counts["created"] += 1
            elif r.status_code == 429:
                counts["refused_429"] += 1
                counts["retry_after_missing"] += "retry-after" not in r.headers
                # A well-behaved client waits as told (capped so the flood stays a flood).
                await asyncio.sleep(min(float(r.headers.get("retry-after", 1)), 1.0))
            elif r.status_code >= 500:
                counts["server_errors"] += 1
            else:
                counts["other"] += 1

    await asyncio.gather(*[worker(w) for w in range(clients)])
    return counts


def phase_summary(results) -> dict:
    ok = [r for r in results if r.ok]
    return {
        "requests": len(results),
        "errors": len(results) - len(ok),
        "error_samples": sorted({r.error for r in results if not r.ok})[:3],
        "ttft_ms": percentiles([r.ttft_s for r in ok]),
    }


async def run(args, base_url: str, api_key: str) -> dict:
    import httpx
    import openai

    headers = {"Authorization": f"Bearer {api_key}"}
    client = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=api_key, max_retries=0, timeout=600)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=600) as http:
        base = (await client.models.list()).data[0].id
        descriptions = list(TASKS[: args.warm_adapters])
        for d in descriptions:  # generated and registered before any timing
            r = await http.post("/v1/t2l/adapters", json={"task_description": d})
            r.raise_for_status()
        workload = Workload(1, args.prompt_len, args.output_len, args.warm_clients, None, "completions", args.seed)
        await warm_traffic(client, base, descriptions, args.warm_clients, 5, workload)  # warm-up, not reported
        report = {"args": {**vars(args), "out_dir": str(args.out_dir)}, "phases": {}}
        for phase in PHASES:
            stop = asyncio.Event()
            flooding = asyncio.create_task(flood(http, args.flood_clients, stop, secrets.token_hex(4))) \
                if phase == "flood" else None
            results = await warm_traffic(client, base, descriptions, args.warm_clients, args.seconds, workload)
            report["phases"][phase] = phase_summary(results)
            if flooding is not None:
                stop.set()
                report["flood"] = await flooding
            print(phase, report["phases"][phase], report.get("flood") if flooding else "", flush=True)
    quiet = [report["phases"][p]["ttft_ms"]["p50"] for p in ("quiet", "quiet2")]
    quiet = [q for q in quiet if q is not None]
    flood_p50 = report["phases"]["flood"]["ttft_ms"]["p50"]
    report["ttft_p50_ratio"] = flood_p50 / statistics.mean(quiet) if quiet and flood_p50 else None
    return report


def markdown(report: dict) -> str:
    a = report["args"]
    lines = [
        "# Warm-adapter TTFT during a flood of new descriptions\n",
        f"{a['warm_clients']} warm clients over {a['warm_adapters']} warm adapters, {a['seconds']:.0f} s per phase; "
        f"flood: {a['flood_clients']} clients creating new adapters; prompt ~{a['prompt_len']} tokens, "
        f"{a['output_len']} output tokens. Server: "
        + (f"`t2l-vllm serve {' '.join(a['serve_args'])}`" if not a["base_url"] else f"{a['base_url']} (not launched)")
        + ".\n",
        "| phase | warm requests | warm errors | TTFT p50 ms | TTFT p95 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for phase, s in report["phases"].items():
        t = s["ttft_ms"]
        lines.append(f"| {phase} | {s['requests']} | {s['errors']} | {t['p50']:.1f} | {t['p95']:.1f} |")
    f = report["flood"]
    ratio = report["ttft_p50_ratio"]
    lines += [
        "",
        f"**Warm TTFT p50, flood / quiet: {ratio:.2f}x** (quiet = mean of the two quiet phases; goal <= 1.5x).",
        "",
        f"Flood: {f['created']} adapters created, {f['refused_429']} refused with 429 "
        f"({f['retry_after_missing']} without Retry-After), {f['server_errors']} 5xx, {f['other']} other.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-url", help="a running server (default: start one)")
    p.add_argument("--api-key", default="flood-bench-key")
    p.add_argument("--warm-adapters", type=int, default=4)
    p.add_argument("--warm-clients", type=int, default=4)
    p.add_argument("--flood-clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=60.0, help="length of each phase")
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--output-len", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", type=Path, default=Path("benchmarks/results/reliability"))
    p.add_argument("serve_args", nargs="*", help="after --: flags for `t2l-vllm serve`")
    args = p.parse_args(argv)
    if not 1 <= args.warm_adapters <= len(TASKS):
        p.error(f"--warm-adapters must be in 1..{len(TASKS)}")

    server = None
    if args.base_url is None:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        if not any(a.startswith("--low-confidence-policy") for a in args.serve_args):
            # The warm traffic measures adapters, whatever their descriptions' confidence.
            args.serve_args += ["--low-confidence-policy", "adapter"]
        server = ServerProcess(args.serve_args, args.out_dir / "flood_bench.server.log", api_key=args.api_key)
        print(f"starting server (log: {server.log_path})", flush=True)
        server.wait_ready()
    try:
        root_url = args.base_url.rstrip("/").removesuffix("/v1") if args.base_url else server.url
        report = asyncio.run(run(args, root_url, args.api_key))
    finally:
        if server is not None:
            server.stop()
    paths = write_outputs(report, args.out_dir, "flood_bench", markdown, lambda r, path: False)
    print(markdown(report))
    print("wrote " + ", ".join(paths.values()), file=sys.stderr)
    return report


if __name__ == "__main__":
    main()

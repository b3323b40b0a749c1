"""One serve_bench run: the clients, the warm-up, then per N every mode one after another."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from dataclasses import asdict, dataclass

from benchmarks.serving.client import run_closed_loop, run_open_loop, send_one
from benchmarks.serving.prometheus import scrape_metrics, server_deltas
from benchmarks.serving.stats import mode_ratios, summarise
from benchmarks.serving.targets import evaluate_targets
from benchmarks.serving.vllm_bench import run_vllm_bench
from benchmarks.serving.workload import (
    PlannedRequest, Workload, descriptions, make_prompts, plan_requests, request_target,
)


@dataclass
class Context:
    root_url: str
    api_key: str | None
    workload: Workload
    progress: bool
    client: object = None
    http: object = None
    base_model: str = ""
    model_root: str = ""


async def discover_base(ctx: Context) -> None:
    """The served base model: the /v1/models entry without a parent (its `root` is the model folder)."""
    models = (await ctx.client.models.list()).data
    base = next((m for m in models if getattr(m, "parent", None) is None), models[0])
    ctx.base_model, ctx.model_root = base.id, getattr(base, "root", None) or base.id


async def create_adapters(ctx: Context, descs: list[str]) -> list[str]:
    """Generate + register adapters through the admin route (outside any timed window)."""
    ids = []
    for d in descs:
        r = await ctx.http.post("/v1/t2l/adapters", json={"task_description": d})
        r.raise_for_status()
        ids.append(r.json()["id"])
    return ids


async def warm_up(ctx: Context, count: int, tag: str) -> None:
    """Base requests, then requests through one throwaway adapter, so no mode pays first-call costs."""
    if count <= 0:
        return
    plan = [PlannedRequest(p, 0, False) for p in make_prompts(count, ctx.workload.prompt_len, ctx.workload.seed - 1)]
    for desc in (None, f"Warm-up task for benchmark run {tag}."):
        results = await asyncio.gather(*[send_one(ctx.client, ctx.base_model, r, desc, ctx.workload) for r in plan])
        failed = [r.error for r in results if not r.ok]
        if failed:
            raise RuntimeError(f"warm-up failed: {failed[0]}")


async def run_mode(ctx: Context, mode: str, n: int, plan: list[PlannedRequest], adapters: dict) -> dict:
    """All requests of one mode; returns its summary (client side + server metric deltas)."""
    from tqdm import tqdm

    def job_for(req: PlannedRequest):
        model, desc = request_target(mode, req.slot, ctx.base_model, adapters)
        return lambda: send_one(ctx.client, model, req, desc, ctx.workload)

    jobs = [job_for(r) for r in plan]
    before = await scrape_metrics(ctx.http)
    progress = tqdm(total=len(jobs), desc=f"N={n:<4} {mode:<9}", disable=not ctx.progress, leave=False)
    t0 = time.perf_counter()
    if ctx.workload.request_rate:
        results = await run_open_loop(jobs, ctx.workload.request_rate, ctx.workload.concurrency, ctx.workload.seed, progress)
    else:
        results = await run_closed_loop(jobs, ctx.workload.concurrency, progress)
    duration = time.perf_counter() - t0
    progress.close()
    after = await scrape_metrics(ctx.http)
    summary = summarise(mode, n, results, duration)
    summary["server"] = server_deltas(before, after)
    return summary


async def run_n(ctx: Context, n: int, modes: list[str], tag: str, vllm_bench: bool) -> dict:
    """All modes for one N, one after another (never mixing base and LoRA traffic)."""
    plan = plan_requests(n, ctx.workload)
    adapters = {"warm": descriptions(n, "warm", tag), "cold": descriptions(n, "cold", tag), "ids": []}
    if "static" in modes or "t2l-warm" in modes:
        adapters["ids"] = await create_adapters(ctx, adapters["warm"])
    out: dict = {"num_descriptions": n, "requests_per_mode": len(plan), "modes": {}}
    for mode in modes:
        summary = await run_mode(ctx, mode, n, plan, adapters)
        out["modes"][mode] = summary
        print(one_line(summary), file=sys.stderr)
        if mode == "base" and vllm_bench:
            out["vllm_bench"] = await asyncio.to_thread(run_vllm_bench, ctx, len(plan))
    out["ratios"] = mode_ratios(out["modes"])
    return out


def one_line(s: dict) -> str:
    return (
        f"N={s['num_descriptions']:<4} {s['mode']:<9} {s['succeeded']}/{s['requests']} ok  "
        f"{s['requests_per_s']} req/s  {s['output_tokens_per_s']} tok/s  "
        f"TTFT p50 {s['ttft_ms']['p50']} ms  ITL p50 {s['itl_ms']['p50']} ms  TPOT p50 {s['tpot_ms']['p50']} ms  "
        f"tokens/chunk {s['tokens_per_chunk']}"
    )


async def run_benchmark(ctx: Context, ns: list[int], modes: list[str], warmup: int, vllm_bench: bool) -> dict:
    import httpx
    import openai

    tag = uuid.uuid4().hex[:10]  # makes this run's descriptions new to the server
    headers = {"Authorization": f"Bearer {ctx.api_key}"} if ctx.api_key else {}
    timeout = httpx.Timeout(600.0, connect=30.0)
    async with openai.AsyncOpenAI(base_url=f"{ctx.root_url}/v1", api_key=ctx.api_key or "none",
                                  max_retries=0, timeout=timeout) as client, \
            httpx.AsyncClient(base_url=ctx.root_url, headers=headers, timeout=timeout) as http:
        ctx.client, ctx.http = client, http
        await discover_base(ctx)
        await warm_up(ctx, warmup, tag)
        runs = [await run_n(ctx, n, modes, tag, vllm_bench) for n in ns]
    return {
        "note": "Ratios within this run are the result; absolute times depend on the machine and its load.",
        "tag": tag,
        "server": {"url": ctx.root_url, "base_model": ctx.base_model, "model_root": ctx.model_root},
        "workload": asdict(ctx.workload),
        "modes": modes,
        "runs": runs,
        "targets": evaluate_targets(runs),
    }

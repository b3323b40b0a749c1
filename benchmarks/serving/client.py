"""The load generator: one streaming request through the `openai` client, and the closed and open loops that send them."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from benchmarks.serving.workload import PlannedRequest, Workload


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

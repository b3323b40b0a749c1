"""The load generator: one streaming request through the `openai` client, and the closed and open loops that send them."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from benchmarks.serving.workload import PlannedRequest, Workload


@dataclass
class RequestResult:
    """One request as the client saw it, timed per token (not per text chunk).

    ttft_s: first chunk that carries a token. itl_s: one entry per token after
    the first, the gap since the previous token reached the client (a chunk
    carrying k tokens gives its gap, then k - 1 zeros: a burst shows as zeros).
    text_itl_s: the gaps between chunks that carry text, the old measure, kept
    to compare: tokens that decode to "" (special tokens) widen it.
    """

    ok: bool
    first_of_slot: bool
    e2e_s: float
    ttft_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    output_tokens: int = 0
    prompt_tokens: int = 0
    error: str | None = None
    text_itl_s: list[float] = field(default_factory=list)
    token_chunks: int = 0  # chunks that carried >= 1 token
    empty_text_tokens: int = 0  # tokens in chunks whose text is ""

    @property
    def tpot_s(self) -> float | None:
        """Time per output token after the first: (E2E - TTFT) / (tokens - 1)."""
        if self.ttft_s is None or self.output_tokens < 2:
            return None
        return (self.e2e_s - self.ttft_s) / (self.output_tokens - 1)


def _chunk_text(chunk, endpoint: str) -> str:
    if not chunk.choices:
        return ""
    if endpoint == "chat":
        return chunk.choices[0].delta.content or ""
    return chunk.choices[0].text or ""


def _chunk_tokens(chunk, endpoint: str) -> int | None:
    """Tokens this chunk carries: its token ids (vLLM's `return_token_ids`); None when the server sent none."""
    if not chunk.choices:
        return None
    ids = getattr(chunk.choices[0], "token_ids", None)
    if ids is None and chunk.choices[0].model_extra:
        ids = chunk.choices[0].model_extra.get("token_ids")
    return None if ids is None else len(ids)


async def send_one(client, model: str, req: PlannedRequest, description: str | None, workload: Workload) -> RequestResult:
    """One streaming request, timed per token.

    vLLM's chat route sends no chunk for a token that decodes to "" unless
    token ids are asked for (`return_token_ids`), so they are: every chunk
    then says how many tokens it carries, and `continuous_usage_stats` gives
    the running count as a cross-check (and the count when a server ignores
    `return_token_ids`). TTFT is the first chunk carrying a token.
    """
    extra = {"ignore_eos": True, "return_token_ids": True}
    if description is not None:
        extra["task_description"] = description
    common = dict(
        model=model, max_tokens=workload.output_len, temperature=0, stream=True,
        stream_options={"include_usage": True, "continuous_usage_stats": True}, extra_body=extra,
    )
    t0 = time.perf_counter()
    result = RequestResult(ok=False, first_of_slot=req.first_of_slot, e2e_s=0.0)
    last_token, last_text, seen = None, None, 0
    try:
        if workload.endpoint == "chat":
            stream = await client.chat.completions.create(messages=[{"role": "user", "content": req.prompt}], **common)
        else:
            stream = await client.completions.create(prompt=req.prompt, **common)
        async for chunk in stream:
            now = time.perf_counter()
            count = _chunk_tokens(chunk, workload.endpoint)
            if chunk.usage:
                result.prompt_tokens = chunk.usage.prompt_tokens
                if count is None:  # no token ids: the running count says how many arrived
                    count = max(0, chunk.usage.completion_tokens - seen)
            count = count or 0
            if count:
                if last_token is None:
                    result.ttft_s = now - t0
                    result.itl_s += [0.0] * (count - 1)
                else:
                    result.itl_s += [now - last_token] + [0.0] * (count - 1)
                last_token = now
                seen += count
                result.token_chunks += 1
            if _chunk_text(chunk, workload.endpoint):
                if last_text is not None:
                    result.text_itl_s.append(now - last_text)
                last_text = now
            elif count:
                result.empty_text_tokens += count
        result.output_tokens = seen
        result.ok = seen > 0 and result.ttft_s is not None
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

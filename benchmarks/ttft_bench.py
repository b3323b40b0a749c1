"""Cold vs warm adapter TTFT, and single-stream throughput with and without a description.

Against a running server (e.g. `.venv/bin/t2l-vllm serve --low-confidence-policy adapter`, so that
every description is served through its adapter, which is what this measures):
    .venv/bin/python benchmarks/ttft_bench.py [--base-url http://127.0.0.1:8000/v1] [--n 20]

One client, requests one after another (nothing else in the batch), streaming:
- base:  no task_description
- cold:  a description never seen before (pays generation + registration)
- warm:  the same descriptions again (adapter resident)
TTFT = time from sending the request to the first content chunk. Then
--stream-repeats streaming requests of --stream-tokens tokens each with and
without a description, alternating, give decode throughput (medians, and the median of the
per-pair ratios). Ratios are the result; absolute times depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid

from openai import OpenAI


def stream_once(client: OpenAI, model: str, description: str | None, max_tokens: int, prompt: str) -> tuple[float, float, int]:
    """(ttft_s, total_s, completion_tokens) of one streaming chat request."""
    extra = {"ignore_eos": True}
    if description is not None:
        extra["task_description"] = description
    t0 = time.perf_counter()
    ttft, tokens = None, 0
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0,
        stream=True, stream_options={"include_usage": True}, extra_body=extra,
    )
    for chunk in stream:
        if ttft is None and chunk.choices and chunk.choices[0].delta.content:
            ttft = time.perf_counter() - t0
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
    total = time.perf_counter() - t0
    return (ttft if ttft is not None else total), total, tokens


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    p.add_argument("--n", type=int, default=20, help="requests per mode (distinct descriptions for cold)")
    p.add_argument("--max-tokens", type=int, default=8, help="tokens per TTFT request")
    p.add_argument("--stream-tokens", type=int, default=128, help="tokens of the throughput request")
    p.add_argument("--stream-repeats", type=int, default=5, help="alternating base / t2l streams; medians (default 5)")
    p.add_argument("--out", help="write the JSON report here too")
    args = p.parse_args()
    client = OpenAI(base_url=args.base_url, api_key=os.environ.get("OPENAI_API_KEY", "none"), max_retries=0)
    model = client.models.list().data[0].id
    prompt = "Write one sentence about the sea."
    run = uuid.uuid4().hex[:8]  # makes this run's descriptions new to the server
    descriptions = [f"Answer briefly and politely. Task {i} of benchmark run {run}." for i in range(args.n)]

    for _ in range(3):  # warm up the engine
        stream_once(client, model, None, args.max_tokens, prompt)
    base = [stream_once(client, model, None, args.max_tokens, prompt)[0] for _ in range(args.n)]
    cold = [stream_once(client, model, d, args.max_tokens, prompt)[0] for d in descriptions]
    warm = [stream_once(client, model, d, args.max_tokens, prompt)[0] for d in descriptions]

    # Alternating, so drift in the machine's load hits both modes alike; median of each.
    rates = {"base": [], "t2l": []}
    for _ in range(args.stream_repeats):
        for mode, desc in (("base", None), ("t2l", descriptions[0])):
            _, t, n = stream_once(client, model, desc, args.stream_tokens, prompt)
            rates[mode].append(n / t)
    rate = {mode: statistics.median(v) for mode, v in rates.items()}

    report = {
        "n": args.n,
        "ttft_ms": {
            mode: {"p50": 1e3 * statistics.median(v), "p95": 1e3 * pct(v, 0.95)}
            for mode, v in (("base", base), ("cold", cold), ("warm", warm))
        },
        "cold_minus_warm_p50_ms": 1e3 * (statistics.median(cold) - statistics.median(warm)),
        "warm_over_base_ttft_p50": statistics.median(warm) / statistics.median(base),
        "stream_tokens_per_s": rate,
        "stream_repeats": args.stream_repeats,
        "stream_t2l_over_base": rate["t2l"] / rate["base"],
        # Each t2l stream over the base stream just before it: one machine load per pair.
        "stream_t2l_over_base_paired_median": statistics.median(t / b for b, t in zip(rates["base"], rates["t2l"])),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()

"""Fire many requests at once, each with its own task description (asyncio, OpenAI SDK).

Every description becomes its own adapter; the server generates each once and
runs them all through vLLM's multi-LoRA batching.

    .venv/bin/python examples/many_descriptions_async.py [--n 16] [--base-url ...]
"""

import argparse
import asyncio
import os
import time

from openai import AsyncOpenAI

TASKS = [
    "Classify the sentiment of the text as positive or negative.",
    "Translate the English word into French.",
    "Answer with the capital city of the given country.",
    "Extract the year mentioned in the sentence.",
    "Reverse the letters of the given word.",
    "Answer with the plural form of the given noun.",
    "Say whether the number is even or odd.",
    "Answer with the opposite of the given adjective.",
]
INPUTS = ["I love this!", "house", "Japan", "It was built in 1889.", "stone", "mouse", "17", "cold"]


async def one(client: AsyncOpenAI, model: str, i: int) -> tuple[str, str, float]:
    t0 = time.perf_counter()
    resp = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": INPUTS[i % len(INPUTS)]}],
        max_tokens=16,
        temperature=0,
        # Distinct descriptions: the variant number makes each one new.
        extra_body={"task_description": f"{TASKS[i % len(TASKS)]} (variant {i // len(TASKS)})"},
    )
    return resp.model, resp.choices[0].message.content, time.perf_counter() - t0


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    p.add_argument("--n", type=int, default=16)
    args = p.parse_args()
    async with AsyncOpenAI(base_url=args.base_url, api_key=os.environ.get("OPENAI_API_KEY", "none")) as client:
        model = (await client.models.list()).data[0].id
        t0 = time.perf_counter()
        results = await asyncio.gather(*[one(client, model, i) for i in range(args.n)])
        wall = time.perf_counter() - t0
    for adapter, text, latency in results:
        print(f"{adapter}  {latency * 1e3:7.0f} ms  {text!r}")
    print(f"{args.n} requests, {len({r[0] for r in results})} adapters, {wall:.2f} s wall")


if __name__ == "__main__":
    asyncio.run(main())

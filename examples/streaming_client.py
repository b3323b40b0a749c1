"""Stream a chat completion through a generated adapter (OpenAI SDK).

    .venv/bin/python examples/streaming_client.py [--base-url http://127.0.0.1:8000/v1]
"""

import argparse
import os
import sys

from openai import OpenAI


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    p.add_argument("--description", default="Write a short, upbeat product description for the given item.")
    p.add_argument("--prompt", default="A stainless steel water bottle")
    args = p.parse_args()
    client = OpenAI(base_url=args.base_url, api_key=os.environ.get("OPENAI_API_KEY", "none"))
    model = client.models.list().data[0].id

    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": args.prompt}],
        max_tokens=64,
        stream=True,
        extra_body={"task_description": args.description},
    )
    adapter = None
    for chunk in stream:
        adapter = chunk.model
        if chunk.choices and chunk.choices[0].delta.content:
            sys.stdout.write(chunk.choices[0].delta.content)
            sys.stdout.flush()
    print(f"\n[served by {adapter}]")


if __name__ == "__main__":
    main()

"""Chat through an adapter generated from a task description (OpenAI SDK).

    .venv/bin/t2l-vllm serve            # in another terminal
    .venv/bin/python examples/chat_client.py [--base-url http://127.0.0.1:8000/v1]
"""

import argparse
import os

from openai import OpenAI


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    args = p.parse_args()
    client = OpenAI(base_url=args.base_url, api_key=os.environ.get("OPENAI_API_KEY", "none"))
    model = client.models.list().data[0].id  # the base model

    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": "What is the capital of Italy?"}],
        max_tokens=32,
        temperature=0,
        extra_body={"task_description": "Answer with the capital city of the given country, in one word."},
    )
    resp = raw.parse()
    print("adapter:", raw.headers.get("x-t2l-adapter-id"))
    print("model:  ", resp.model)
    print("answer: ", resp.choices[0].message.content)

    # The adapter id is a model name now: use it directly, no description needed.
    again = client.chat.completions.create(
        model=resp.model, messages=[{"role": "user", "content": "What is the capital of Spain?"}], max_tokens=32, temperature=0
    )
    print("by id:  ", again.choices[0].message.content)


if __name__ == "__main__":
    main()

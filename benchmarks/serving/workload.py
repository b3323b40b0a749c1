"""What serve_bench sends: the modes, the prompts, and one request plan per N shared by every mode."""

from __future__ import annotations

import random
from dataclasses import dataclass

MODES = ("base", "static", "t2l-warm", "t2l-cold")
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


def request_target(mode: str, slot: int, base_model: str, adapters: dict) -> tuple[str, str | None]:
    """(model, task_description) of a request in `mode` that uses description number `slot`."""
    if mode == "base":
        return base_model, None
    if mode == "static":
        return adapters["ids"][slot], None
    return base_model, adapters["warm" if mode == "t2l-warm" else "cold"][slot]

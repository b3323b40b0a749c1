"""Examples -> token batches for causal-LM training with completion-only labels.

One example is (prompt tokens, answer tokens): the prompt is rendered by
`t2l_vllm.prompts` exactly as `t2l-vllm eval` renders it, and only the answer
tokens (target + end of turn) carry a label; every prompt and padding
position is labelled IGNORE_INDEX so it never counts in the loss.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Mapping

import torch

from t2l_vllm.prompts import answer_ids, prompt_ids
from t2l_vllm.tasks.families import TaskFamily
from t2l_vllm.tasks.splits import family_seed, train_descriptions

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Batch:
    """input_ids, labels, attention_mask: [batch, seq]; labels are IGNORE_INDEX off the answer."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor


def tokenize_example(tokenizer, style: str, example: dict, max_tokens: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for one example; long prompts lose tokens from the left."""
    prompt = prompt_ids(tokenizer, style, example["description"], example["input"])
    answer = answer_ids(tokenizer, example["target"])
    if len(answer) >= max_tokens:
        raise ValueError(f"target of task {example['task']!r} needs {len(answer)} tokens; max_tokens is {max_tokens}")
    prompt = prompt[-(max_tokens - len(answer)) :]
    return prompt + answer, [IGNORE_INDEX] * len(prompt) + answer


def collate(rows: list[tuple[list[int], list[int]]], pad_id: int) -> Batch:
    """Right-pad rows to the longest one."""
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, lab) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(lab)] = torch.tensor(lab)
        mask[i, : len(ids)] = 1
    return Batch(input_ids, labels, mask)


def pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def sample_step(
    families: list[TaskFamily],
    tasks_per_batch: int,
    seed: int,
    step: int,
    descriptions: Callable[[TaskFamily], tuple[str, ...]] = train_descriptions,
    siblings: Mapping[str, tuple[str, ...]] | None = None,
) -> list[dict]:
    """The examples of one training step: `tasks_per_batch` distinct families, one example each.

    Every example gets a description drawn from `descriptions(family)` (the
    suite's training descriptions; the original suite's by default). The draw
    depends only on (seed, step), so a resumed run sees exactly the batches an
    uninterrupted run would have seen.

    With `siblings` (family -> families to pair it with, a suite's sibling
    map), a family that has a sibling among `families` comes with one of them
    in the step, so the hypernetwork sees "longest" next to "shortest" and must
    tell them apart (see `_with_siblings`). Without it the draw is the
    original one, unchanged.
    """
    if not families:
        raise ValueError("no task families to sample from")
    rng = random.Random(family_seed(seed, f"step-{step}"))
    k = min(tasks_per_batch, len(families))
    chosen = rng.sample(families, k) if siblings is None else _with_siblings(families, k, siblings, rng)
    examples = []
    for fam in chosen:
        inp, target = fam.generate(rng)
        description = rng.choice(descriptions(fam))
        examples.append({"task": fam.name, "description": description, "input": inp, "target": target})
    return examples


def _with_siblings(
    families: list[TaskFamily], k: int, siblings: Mapping[str, tuple[str, ...]], rng: random.Random
) -> list[TaskFamily]:
    """k distinct families in which every family with a sibling among `families` has one beside it.

    Families are taken in a random order; one whose siblings are all absent
    from `families` comes alone; one with a sibling already in the step comes
    alone too; otherwise it brings a randomly drawn sibling, if the pair fits.
    Only when no family fits the last slot is it filled by an unpaired one.
    """
    by_name = {f.name: f for f in families}
    order = rng.sample(families, len(families))
    step: list[TaskFamily] = []
    names: set[str] = set()
    for fam in order:
        if len(step) == k:
            break
        if fam.name in names:
            continue
        partners = [n for n in siblings.get(fam.name, ()) if n in by_name and n != fam.name]
        if not partners or any(n in names for n in partners):
            step.append(fam)
            names.add(fam.name)
        elif len(step) + 2 <= k:
            partner = by_name[rng.choice(partners)]
            step += [fam, partner]
            names |= {fam.name, partner.name}
    for fam in order:
        if len(step) == k:
            break
        if fam.name not in names:
            step.append(fam)
            names.add(fam.name)
    return step

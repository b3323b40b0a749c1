"""Offline, seeded task suite for training and evaluating the hypernetwork.

Short-answer task families (families.py) built on small word lists
(wordlists.py) and open-ended ones (open_families.py: rewrites, summaries,
labels named in the description, JSON, lists, tables, phrase translation),
split into training / held-out families and descriptions, and written as JSONL
with the keys task, description, input, target (splits.py). That is the
"v1" suite; compositional/ holds the compositional suite (operations x inputs x
formats, issue 13), and suites.py picks one for training and `make-tasks`.
Nothing here touches the network or the filesystem at import.
"""

from t2l_vllm.tasks.base import ANSWER_TYPES
from t2l_vllm.tasks.families import FAMILIES, TaskFamily
from t2l_vllm.tasks.splits import (
    ANSWER_SELECTORS,
    EXAMPLE_KEYS,
    HELD_OUT_DESCRIPTIONS_PER_FAMILY,
    HELD_OUT_FAMILIES,
    SPLITS,
    held_out_descriptions,
    held_out_families,
    make_examples,
    read_jsonl,
    train_descriptions,
    training_families,
    write_jsonl,
)

__all__ = [
    "ANSWER_SELECTORS",
    "ANSWER_TYPES",
    "EXAMPLE_KEYS",
    "FAMILIES",
    "HELD_OUT_DESCRIPTIONS_PER_FAMILY",
    "HELD_OUT_FAMILIES",
    "SPLITS",
    "TaskFamily",
    "held_out_descriptions",
    "held_out_families",
    "make_examples",
    "read_jsonl",
    "train_descriptions",
    "training_families",
    "write_jsonl",
]

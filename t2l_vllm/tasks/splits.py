"""Train / held-out splits of the task suite and the JSONL example format.

Three splits, so that evaluation can tell apart "learned the training tasks",
"understands new wordings of known tasks" and "transfers to unseen tasks":

- "train": training families, their training descriptions;
- "heldout-desc": training families, their last HELD_OUT_DESCRIPTIONS_PER_FAMILY
  descriptions (never used for training);
- "heldout-family": held-out families, all their descriptions. Each held-out
  family has a sibling of the same kind in training (smaller_number /
  larger_number, english_to_spanish / english_to_french, ...), so transfer is
  plausible, but never appears in training in any form.

Families have an `answer` type (base.py): "short" (exact-match answers, the
original 54 families) or "open" (sentences and structured text,
open_families.py). `make_examples(None, ...)` keeps generating the short
families only unless asked otherwise (`answer="open"` or `"all"`), so the
documented commands still reproduce examples/tasks/ byte for byte.

Every example is one JSON object per line with exactly the string keys
task, description, input, target. Generation is deterministic given the seed:
each family gets its own `random.Random` seeded from a SHA-256 of the seed and
the family name (Python's hash() is salted per process, so it is not used), so
adding or reordering families does not change another family's examples.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Iterable

from t2l_vllm.tasks.base import ANSWER_TYPES
from t2l_vllm.tasks.families import FAMILIES, TaskFamily

HELD_OUT_FAMILIES: tuple[str, ...] = (
    "smaller_number",      # sibling: larger_number
    "min_of_list",         # sibling: max_of_list
    "vowel_or_consonant",  # sibling: even_or_odd, contains_letter_a
    "count_consonants",    # sibling: count_vowels
    "last_letter",         # sibling: first_letter
    "english_to_spanish",  # sibling: english_to_french
    "animal_sound",        # sibling: animal_class
    "day_before",          # sibling: day_after
    "email_username",      # sibling: email_domain
    "date_iso_to_us",      # sibling: date_iso_to_dmy
    "camel_to_snake",      # sibling: snake_to_camel
    # open-ended families (answer="open")
    "rewrite_future_tense",     # sibling: rewrite_past_tense
    "summarize_match_report",   # sibling: summarize_weather, summarize_sales, ...
    "news_topic",               # sibling: ticket_category, email_intent
    "extract_person_json",      # sibling: extract_contact_json
    "names_to_sorted_bullets",  # sibling: items_to_bullets
    "csv_to_markdown_table",    # sibling: records_to_markdown_table
    "phrase_to_german",         # sibling: phrase_to_french, phrase_to_spanish
    "answer_in_uppercase",      # sibling: answer_full_sentence
)
HELD_OUT_DESCRIPTIONS_PER_FAMILY = 2

SPLITS = ("train", "heldout-desc", "heldout-family")
EXAMPLE_KEYS = ("task", "description", "input", "target")
# Which families by answer type: one of ANSWER_TYPES, or all of them.
ANSWER_SELECTORS = (*ANSWER_TYPES, "all")


def _family(family: str | TaskFamily) -> TaskFamily:
    if isinstance(family, TaskFamily):
        return family
    try:
        return FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown task family {family!r}") from None


def _check_answer(answer: str) -> None:
    if answer not in ANSWER_SELECTORS:
        raise ValueError(f"answer must be one of {ANSWER_SELECTORS}, got {answer!r}")


def _of_answer(families: list[TaskFamily], answer: str) -> list[TaskFamily]:
    _check_answer(answer)
    return [f for f in families if answer == "all" or f.answer == answer]


def training_families(answer: str = "all") -> list[TaskFamily]:
    """Families not held out, in registry order; `answer` = "short", "open" or "all"."""
    return _of_answer([f for name, f in FAMILIES.items() if name not in HELD_OUT_FAMILIES], answer)


def held_out_families(answer: str = "all") -> list[TaskFamily]:
    """Families never seen in training, in HELD_OUT_FAMILIES order; `answer` as in training_families."""
    return _of_answer([FAMILIES[name] for name in HELD_OUT_FAMILIES], answer)


def split_families(split: str, answer: str | None = None) -> list[TaskFamily]:
    """The families `make_examples(None, split, ...)` generates: answer=None means "short"."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    selector = answer or "short"
    return held_out_families(selector) if split == "heldout-family" else training_families(selector)


def train_descriptions(family: str | TaskFamily) -> tuple[str, ...]:
    """Descriptions training may use: all but the last few of a training family."""
    fam = _family(family)
    if fam.name in HELD_OUT_FAMILIES:
        raise ValueError(f"{fam.name} is a held-out family: none of its descriptions are for training")
    return fam.descriptions[:-HELD_OUT_DESCRIPTIONS_PER_FAMILY]


def held_out_descriptions(family: str | TaskFamily) -> tuple[str, ...]:
    """Descriptions kept for evaluation: the last few of a training family, all of a held-out one."""
    fam = _family(family)
    if fam.name in HELD_OUT_FAMILIES:
        return fam.descriptions
    return fam.descriptions[-HELD_OUT_DESCRIPTIONS_PER_FAMILY:]


def family_seed(seed: int, name: str) -> int:
    """Stable per-family seed (same in every process and Python version)."""
    digest = hashlib.sha256(f"{seed}:{name}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def make_examples(
    families: Iterable[str | TaskFamily] | None,
    split: str,
    n_per_family: int,
    seed: int,
    answer: str | None = None,
) -> list[dict]:
    """n_per_family examples per family for the split, grouped by family in the given order.

    `families=None` means every family of the split whose answer type matches
    `answer` ("short", "open" or "all"); `answer=None` there means "short", the
    suite as it was before the open-ended families, so existing commands keep
    producing the same files. With an explicit family list, `answer=None`
    accepts any family and a given `answer` must match every family listed.
    Asking for a family that does not belong to the split is a ValueError, so
    held-out data cannot leak into training by mistake. Each example's
    description is drawn uniformly from the split's descriptions of its family.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if n_per_family < 0:
        raise ValueError(f"n_per_family must be >= 0, got {n_per_family}")
    if answer is not None:
        _check_answer(answer)
    if families is None:
        fams = split_families(split, answer)
    else:
        fams = [_family(f) for f in families]
    examples: list[dict] = []
    for fam in fams:
        held_out = fam.name in HELD_OUT_FAMILIES
        if (split == "heldout-family") != held_out:
            raise ValueError(f"family {fam.name!r} does not belong to split {split!r}")
        if answer not in (None, "all") and fam.answer != answer:
            raise ValueError(f"family {fam.name!r} has {fam.answer!r} answers, not {answer!r}")
        descriptions = train_descriptions(fam) if split == "train" else held_out_descriptions(fam)
        rng = random.Random(family_seed(seed, fam.name))
        for _ in range(n_per_family):
            description = rng.choice(descriptions)
            inp, target = fam.generate(rng)
            examples.append({"task": fam.name, "description": description, "input": inp, "target": target})
    return examples


def validate_example(example: object) -> None:
    """Raise ValueError unless `example` has exactly the four non-empty string keys."""
    if not isinstance(example, dict):
        raise ValueError(f"expected a JSON object, got {type(example).__name__}")
    keys = set(example)
    if keys != set(EXAMPLE_KEYS):
        missing = sorted(set(EXAMPLE_KEYS) - keys)
        extra = sorted(keys - set(EXAMPLE_KEYS))
        raise ValueError(f"keys must be exactly {list(EXAMPLE_KEYS)} (missing {missing}, extra {extra})")
    for key in EXAMPLE_KEYS:
        value = example[key]
        if not isinstance(value, str):
            raise ValueError(f"{key!r} must be a string, got {type(value).__name__}")
        if not value.strip():
            raise ValueError(f"{key!r} must be non-empty")


def write_jsonl(path: str | Path, examples: Iterable[dict]) -> None:
    """Write examples one JSON object per line (UTF-8, non-ASCII kept readable)."""
    lines = []
    for i, example in enumerate(examples, start=1):
        try:
            validate_example(example)
        except ValueError as e:
            raise ValueError(f"example {i}: {e}") from None
        lines.append(json.dumps({k: example[k] for k in EXAMPLE_KEYS}, ensure_ascii=False))
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def read_jsonl(path: str | Path) -> list[dict]:
    """Read and validate a JSONL example file; errors name the 1-based line number.

    Blank lines are skipped (a trailing newline or an empty last line is common
    in hand-edited files); every other line must be a valid example.
    """
    examples = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read task file {path}: {e}") from None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            example = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: line {lineno}: invalid JSON ({e.msg})") from None
        try:
            validate_example(example)
        except ValueError as e:
            raise ValueError(f"{path}: line {lineno}: {e}") from None
        examples.append(example)
    return examples

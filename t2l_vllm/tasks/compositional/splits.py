"""Splits of the compositional suite, versioned by SUITE_VERSION.

Five splits, each answering one question about what the hypernetwork learned:

- "train": training families, their training descriptions (all but the last
  HELD_OUT_DESCRIPTIONS_PER_FAMILY, as in the original suite);
- "heldout-desc": training families, their held-out descriptions: new wordings
  of known tasks;
- "heldout-combination": families whose operation and format are both trained,
  but never together (HELD_OUT_COMBINATIONS): composition of seen parts;
- "heldout-family": families with a part never seen in training: an operation
  of HELD_OUT_OPERATIONS (each with a trained mirror or sibling) or a format
  of HELD_OUT_FORMATS;
- "mirror": the eleven short held-out families of the original suite
  (smaller_number, min_of_list, ..., camel_to_snake), exactly as families.py
  defines them, with all their descriptions: no compositional family computes
  the same function on the same input (operations.py), so this measures
  whether training on many mirror pairs lets the hypernetwork tell
  "smaller" from "larger" for a pair it never saw.

Everything is a pure function of the names of the parts: examples use
`family_seed(seed, family)` per family, and which operations keep a held-out
combination is decided per operation by `family_seed(COMBINATION_SEED, op)`.
"""

from __future__ import annotations

import random
from typing import Iterable

from t2l_vllm.tasks import splits as v1
from t2l_vllm.tasks.base import TaskFamily
from t2l_vllm.tasks.compositional.formats import FORMATS
from t2l_vllm.tasks.compositional.operations import OPERATIONS
from t2l_vllm.tasks.compositional.suite import COMBINATIONS, FAMILIES, Combination
from t2l_vllm.tasks.splits import HELD_OUT_DESCRIPTIONS_PER_FAMILY, family_seed
from t2l_vllm.tasks.suites import COMPOSITIONAL_SPLITS

SUITE_VERSION = "compositional-v1"
SPLITS = COMPOSITIONAL_SPLITS

# Operations never trained, in any format; the comment names what training has instead.
HELD_OUT_OPERATIONS: tuple[str, ...] = (
    "shortest_word",      # string: mirror longest_word
    "count_odd",          # number: mirror count_even
    "digit_sum",          # number: siblings add, first_digit, last_digit
    "previous_date",      # date: mirror next_date
    "country_of",         # lookup: mirror capital_of
    "has_double_letter",  # classification: siblings starts_with_vowel, is_palindrome
    "last_name",          # extraction: mirror first_name
    "kebab_to_words",     # formatting: mirror to_kebab
)
# Formats never trained, with any operation; the comment names the trained sibling.
HELD_OUT_FORMATS: tuple[str, ...] = (
    "brackets",  # short: answer_prefix, json_answer also wrap the answer
    "numbered",  # open: bullets
)
COMBINATION_SEED = 20_260_415
# About one operation in COMBINATION_EVERY keeps one of its trained formats for heldout-combination.
COMBINATION_EVERY = 3

# The mirror split: the original suite's short held-out families.
MIRROR_FAMILIES: tuple[str, ...] = tuple(f.name for f in v1.held_out_families("short"))


def _held_out_combinations() -> tuple[tuple[str, str], ...]:
    """(operation, format) pairs never trained together, both trained apart.

    An operation qualifies when the hash of its name says so; it gives up one
    format it has in the grid, drawn by the same hash among its formats that
    are not held out entirely. The result is checked: the operation keeps
    another trained format and the format another trained operation.
    """
    formats_of: dict[str, list[str]] = {}
    for c in COMBINATIONS.values():
        if c.fmt.name not in HELD_OUT_FORMATS and c.fmt.name not in formats_of.setdefault(c.op.name, []):
            formats_of[c.op.name].append(c.fmt.name)
    pairs = []
    for op in OPERATIONS:
        h = family_seed(COMBINATION_SEED, op)
        if op in HELD_OUT_OPERATIONS or h % COMBINATION_EVERY != 0:
            continue
        fmts = sorted(formats_of[op])
        pairs.append((op, fmts[(h // COMBINATION_EVERY) % len(fmts)]))
    held = set(pairs)
    trained = {(c.op.name, c.fmt.name) for c in COMBINATIONS.values() if _held_out_part(c) is None} - held
    for op, fmt in pairs:
        if not any(o == op for o, _ in trained) or not any(f == fmt for _, f in trained):
            raise ValueError(f"held-out combination ({op}, {fmt}): {op} or {fmt} is left with no training family")
    return tuple(pairs)


def _held_out_part(c: Combination) -> str | None:
    if c.op.name in HELD_OUT_OPERATIONS:
        return f"operation {c.op.name}"
    if c.fmt.name in HELD_OUT_FORMATS:
        return f"format {c.fmt.name}"
    return None


def _check_parts() -> None:
    unknown = [op for op in HELD_OUT_OPERATIONS if op not in OPERATIONS]
    unknown += [fmt for fmt in HELD_OUT_FORMATS if fmt not in FORMATS]
    unknown += [name for name in MIRROR_FAMILIES if name in FAMILIES]
    if unknown:
        raise ValueError(f"held-out parts unknown to the suite (or mirror families inside it): {unknown}")


_check_parts()
HELD_OUT_COMBINATIONS: tuple[tuple[str, str], ...] = _held_out_combinations()
# Every family the suite's splits hold: the grid, then the mirror families.
ALL_FAMILIES: dict[str, TaskFamily] = {**FAMILIES, **{name: v1.FAMILIES[name] for name in MIRROR_FAMILIES}}


def split_of(name: str) -> str:
    """"train", "heldout-combination", "heldout-family" or "mirror" for a family name."""
    if name in MIRROR_FAMILIES:
        return "mirror"
    try:
        c = COMBINATIONS[name]
    except KeyError:
        raise ValueError(f"unknown compositional family {name!r}") from None
    if _held_out_part(c) is not None:
        return "heldout-family"
    if (c.op.name, c.fmt.name) in HELD_OUT_COMBINATIONS:
        return "heldout-combination"
    return "train"


def _of_answer(families: list[TaskFamily], answer: str) -> list[TaskFamily]:
    if answer not in v1.ANSWER_SELECTORS:
        raise ValueError(f"answer must be one of {v1.ANSWER_SELECTORS}, got {answer!r}")
    return [f for f in families if answer == "all" or f.answer == answer]


def families_of_split(split: str, answer: str | None = "all") -> list[TaskFamily]:
    """A split's families in grid order ("heldout-desc": the training families); answer None: "all"."""
    answer = answer or "all"
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split == "mirror":
        return _of_answer([v1.FAMILIES[name] for name in MIRROR_FAMILIES], answer)
    wanted = "train" if split == "heldout-desc" else split
    return _of_answer([f for name, f in FAMILIES.items() if split_of(name) == wanted], answer)


def training_families(answer: str = "all") -> list[TaskFamily]:
    return families_of_split("train", answer)


def _family(family: str | TaskFamily) -> TaskFamily:
    name = family.name if isinstance(family, TaskFamily) else family
    fam = ALL_FAMILIES.get(name)
    if fam is None:
        raise ValueError(f"unknown compositional family {name!r}")
    return fam


def train_descriptions(family: str | TaskFamily) -> tuple[str, ...]:
    """Descriptions training may use: all but the last few of a training family."""
    fam = _family(family)
    if split_of(fam.name) != "train":
        raise ValueError(
            f"{fam.name} is a held-out family ({split_of(fam.name)}): none of its descriptions are for training"
        )
    return fam.descriptions[:-HELD_OUT_DESCRIPTIONS_PER_FAMILY]


def split_descriptions(family: str | TaskFamily, split: str) -> tuple[str, ...]:
    """The descriptions a split draws from for a family of it."""
    fam = _family(family)
    home = split_of(fam.name)
    if (split == "heldout-desc" and home != "train") or (split != "heldout-desc" and home != split):
        raise ValueError(f"family {fam.name!r} does not belong to split {split!r}")
    if split == "train":
        return train_descriptions(fam)
    if split == "heldout-desc":
        return fam.descriptions[-HELD_OUT_DESCRIPTIONS_PER_FAMILY:]
    return fam.descriptions


def make_examples(
    families: Iterable[str | TaskFamily] | None,
    split: str,
    n_per_family: int,
    seed: int,
    answer: str | None = None,
) -> list[dict]:
    """n_per_family examples per family of the split, grouped by family in the given order.

    `families=None`: every family of the split with answer type `answer`
    (None: "all"). The descriptions of a family are used in turn from a seeded
    starting point, so n examples of a family with k descriptions cover
    min(n, k) of them (heldout-desc with n=2: each held-out description once).
    A family outside the split is a ValueError, so held-out data cannot leak
    into training by mistake.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if n_per_family < 0:
        raise ValueError(f"n_per_family must be >= 0, got {n_per_family}")
    fams = families_of_split(split, answer) if families is None else [_family(f) for f in families]
    if split == "mirror":
        # Exactly as the original suite generates its held-out families (same seed, same
        # draws): the mirror file is a per-family prefix of examples/tasks/heldout-family.jsonl
        # at seed 1000, so old and new checkpoints are compared on the same examples.
        for fam in fams:
            split_descriptions(fam, split)  # membership check
        return v1.make_examples(fams, "heldout-family", n_per_family, seed, answer=answer)
    examples = []
    for fam in fams:
        if answer not in (None, "all") and fam.answer != answer:
            raise ValueError(f"family {fam.name!r} has {fam.answer!r} answers, not {answer!r}")
        descriptions = split_descriptions(fam, split)
        rng = random.Random(family_seed(seed, fam.name))
        start = rng.randrange(len(descriptions))
        for i in range(n_per_family):
            inp, target = fam.generate(rng)
            description = descriptions[(start + i) % len(descriptions)]
            examples.append({"task": fam.name, "description": description, "input": inp, "target": target})
    return examples


def operation_of(family: TaskFamily) -> str:
    """The operation a family computes (a mirror family is its own operation)."""
    c = COMBINATIONS.get(family.name)
    return c.op.name if c is not None else family.name


def sibling_map(families: list[TaskFamily]) -> dict[str, tuple[str, ...]]:
    """family -> the families among `families` a training step should pair it with.

    Its mirror when that is among them ("shortest" for "longest", same input
    and format); otherwise the other operations of its group on the same input
    in the same format; otherwise those of its group in the same format. Empty
    when none of these is among `families`.
    """
    present = {f.name for f in families}
    out = {}
    for fam in families:
        c = COMBINATIONS.get(fam.name)
        if c is None:
            out[fam.name] = ()
            continue
        if c.mirror in present:
            out[fam.name] = (c.mirror,)
            continue
        same_group = [COMBINATIONS[n] for n in present if n in COMBINATIONS and n != fam.name
                      and COMBINATIONS[n].op.group == c.op.group and COMBINATIONS[n].fmt == c.fmt
                      and COMBINATIONS[n].op != c.op]
        same_input = [o.name for o in same_group if o.inp == c.inp]
        out[fam.name] = tuple(sorted(same_input or [o.name for o in same_group]))
    return out

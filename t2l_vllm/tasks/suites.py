"""The task suites training and `make-tasks` can use, behind one small interface.

- "v1": the original suite (families.py, open_families.py, splits.py): 87
  families; what every command used before `--suite` existed, and still the
  default.
- "compositional": the grid of operations x inputs x formats
  (compositional/), with its own splits and the mirror split.

A `Suite` holds what the trainers need: the training families for an answer
type, their training descriptions, the split generator, which families a
training step should pair (`siblings`), and what operation a family computes
(for `nested_subset`). The compositional suite is imported only when asked
for, so the v1 commands do not pay for building it.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Mapping

from t2l_vllm.tasks.base import TaskFamily

SUITES = ("v1", "compositional")
# The answer types a suite's commands use when --answer is not given: v1 keeps its
# historical short-only default; the compositional suite mixes both by design.
DEFAULT_ANSWER = {"v1": "short", "compositional": "all"}
# Named here, not in compositional/splits.py, so that the CLI can list them without building the grid.
COMPOSITIONAL_SPLITS = ("train", "heldout-desc", "heldout-combination", "heldout-family", "mirror")
# Fixed (not the training seed), so every run draws the same nested subsets.
SUBSET_SEED = 20_260_416


@dataclass(frozen=True)
class Suite:
    """One task suite, as the trainers and `make-tasks` see it.

    families: every family of the suite, held-out ones included (oracles train on all).
    training_families: answer ("short", "open", "all") -> training families, in suite order.
    train_descriptions: family -> the descriptions training may use.
    split_families: (split, answer or None) -> the families make_examples(None, ...) generates.
    make_examples: (families or None, split, n_per_family, seed, answer) -> examples.
    operation_of: family -> the operation it computes (v1: the family itself).
    siblings: families -> {family: the families among them a step pairs it with}.
    """

    name: str
    splits: tuple[str, ...]
    default_answer: str
    families: Mapping[str, TaskFamily]
    training_families: Callable[[str], list[TaskFamily]]
    train_descriptions: Callable[[TaskFamily], tuple[str, ...]]
    split_families: Callable[[str, str | None], list[TaskFamily]]
    make_examples: Callable[..., list[dict]]
    operation_of: Callable[[TaskFamily], str]
    siblings: Callable[[list[TaskFamily]], dict[str, tuple[str, ...]]]


def _same_kind(families: list[TaskFamily]) -> dict[str, tuple[str, ...]]:
    """v1 siblings: the other families of the same kind (larger_number's arithmetic kin)."""
    by_kind = defaultdict(list)
    for fam in families:
        by_kind[fam.kind].append(fam.name)
    return {fam.name: tuple(n for n in by_kind[fam.kind] if n != fam.name) for fam in families}


def get_suite(name: str) -> Suite:
    if name == "v1":
        from t2l_vllm.tasks import splits

        return Suite(
            name="v1", splits=splits.SPLITS, default_answer=DEFAULT_ANSWER["v1"], families=splits.FAMILIES,
            training_families=splits.training_families, train_descriptions=splits.train_descriptions,
            split_families=splits.split_families, make_examples=splits.make_examples,
            operation_of=lambda fam: fam.name, siblings=_same_kind,
        )
    if name == "compositional":
        from t2l_vllm.tasks.compositional import splits as comp

        return Suite(
            name="compositional", splits=comp.SPLITS, default_answer=DEFAULT_ANSWER["compositional"],
            families=comp.ALL_FAMILIES,
            training_families=comp.training_families, train_descriptions=comp.train_descriptions,
            split_families=comp.families_of_split, make_examples=comp.make_examples,
            operation_of=comp.operation_of, siblings=comp.sibling_map,
        )
    raise ValueError(f"suite must be one of {SUITES}, got {name!r}")


def find_family(name: str) -> TaskFamily | None:
    """A family of any suite by name (v1 first; the suites' names never collide)."""
    from t2l_vllm.tasks.families import FAMILIES

    if name in FAMILIES:
        return FAMILIES[name]
    from t2l_vllm.tasks.compositional.suite import FAMILIES as GRID

    return GRID.get(name)


def nested_order(families: list[TaskFamily], operation_of: Callable[[TaskFamily], str]) -> list[TaskFamily]:
    """`families` in a fixed seeded order whose prefixes are the nested subsets of --max-families.

    Round-robin over groups (`kind`), and within a group round-robin over
    operations, each level shuffled with SUBSET_SEED from sorted names: the
    first n families cover min(n, number of groups) groups, then spread over
    operations before a second format of any operation comes in. The order
    depends only on the set of families given, not on their order.
    """
    rng = random.Random(SUBSET_SEED)
    tree: dict[str, dict[str, list[TaskFamily]]] = defaultdict(lambda: defaultdict(list))
    for fam in sorted(families, key=lambda f: f.name):
        tree[fam.kind][operation_of(fam)].append(fam)

    def round_robin(queues: list[list]) -> list:
        out = []
        while any(queues):
            out += [q.pop(0) for q in queues if q]
        return out

    groups = sorted(tree)
    rng.shuffle(groups)
    per_group = []
    for group in groups:
        ops = sorted(tree[group])
        rng.shuffle(ops)
        queues = []
        for op in ops:
            fams = list(tree[group][op])
            rng.shuffle(fams)
            queues.append(fams)
        per_group.append(round_robin(queues))
    return round_robin(per_group)


def nested_subset(
    families: list[TaskFamily], max_families: int, operation_of: Callable[[TaskFamily], str]
) -> list[TaskFamily]:
    """The first `max_families` of `nested_order` (0: all), kept in the order of `families`.

    Keeping the given order makes `max_families=len(families)` the same run as 0.
    """
    if max_families < 0:
        raise ValueError(f"max_families must be >= 0, got {max_families}")
    if max_families > len(families):
        raise ValueError(f"max_families is {max_families} but there are only {len(families)} families")
    if max_families == 0:
        return list(families)
    chosen = {f.name for f in nested_order(families, operation_of)[:max_families]}
    return [f for f in families if f.name in chosen]


def select_training_families(suite: str | Suite, answer: str, max_families: int = 0) -> list[TaskFamily]:
    """The families a run trains on: the suite's training families of `answer`, cut to a nested subset."""
    s = get_suite(suite) if isinstance(suite, str) else suite
    return nested_subset(s.training_families(answer), max_families, s.operation_of)

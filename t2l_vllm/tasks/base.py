"""The TaskFamily record shared by the short-answer and open-ended families.

A family is a name, a kind (families of one kind are siblings: a held-out
family transfers from a training family of its kind), ten or more
descriptions, a seeded generator, and the type of its answers:

- "short": one word, number or short phrase on one line, scored by exact match;
- "open": one or more sentences or structured text (a JSON object, a markdown
  list or table, CSV), possibly over several lines, scored by a reference-based
  text metric (chrF / ROUGE-L) rather than exact match.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

MIN_DESCRIPTIONS = 10
ANSWER_TYPES = ("short", "open")


@dataclass(frozen=True)
class TaskFamily:
    """One procedurally generated task and the ways of describing it."""

    name: str
    kind: str
    descriptions: tuple[str, ...]
    generate: Callable[[random.Random], tuple[str, str]]
    answer: str = "short"

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise ValueError("task family name must be non-empty")
        if not self.kind or not self.kind.strip():
            raise ValueError(f"{self.name}: kind must be non-empty")
        if self.answer not in ANSWER_TYPES:
            raise ValueError(f"{self.name}: answer must be one of {ANSWER_TYPES}, got {self.answer!r}")
        if not isinstance(self.descriptions, tuple):
            raise ValueError(f"{self.name}: descriptions must be a tuple")
        if any(not isinstance(d, str) or not d.strip() for d in self.descriptions):
            raise ValueError(f"{self.name}: every description must be a non-empty string")
        if len(set(self.descriptions)) != len(self.descriptions):
            raise ValueError(f"{self.name}: descriptions must be unique")
        if len(self.descriptions) < MIN_DESCRIPTIONS:
            raise ValueError(
                f"{self.name}: needs at least {MIN_DESCRIPTIONS} descriptions, "
                f"got {len(self.descriptions)}"
            )


class FamilyRegistry:
    """Families declared one call each (`spec`), built into TaskFamily records once (`build`)."""

    def __init__(self, answer: str):
        self.answer = answer
        self._specs: dict[str, tuple[str, Callable, tuple[str, ...]]] = {}

    def spec(self, name: str, kind: str, generate: Callable, *descriptions: str) -> None:
        if name in self._specs:
            raise ValueError(f"duplicate task family {name!r}")
        self._specs[name] = (kind, generate, descriptions)

    def build(self) -> dict[str, TaskFamily]:
        return {
            name: TaskFamily(name=name, kind=kind, descriptions=tuple(descs), generate=gen, answer=self.answer)
            for name, (kind, gen, descs) in self._specs.items()
        }

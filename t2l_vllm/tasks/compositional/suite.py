"""The combination grid: operation x input type x output format -> TaskFamily records.

Every operation is combined with every input type it reads. Each such pair
gets the plain format and FORMATS_PER_INPUT - 1 more, drawn (seeded by the
pair's names) from the formats that can write its answers (formats.py
`Format.accepts`): the full grid would be about 800 families, more than
is needed to span every part many times over, and every family costs
training descriptions to embed and index. A family is named
"<operation>.<input>.<format>" (the original suite's names have no dots, so
the two never collide), its `kind` is the operation's group (families of one
group are siblings) and its `answer` type is the format's.

Per family, `Combination` keeps the parts, the style of each description and
the family's mirror (the mirror operation on the matching input in the same
format), which training uses to pair "longest" with "shortest" in one step.

Everything is deterministic: a family's formats, descriptions and examples
come from RNGs seeded by names only (its own, and its mirror operation's),
so adding or removing an operation changes no other family (but the mirror
link of its mirror's families).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from t2l_vllm.tasks.base import TaskFamily
from t2l_vllm.tasks.compositional.describe import STYLES, Example, describe, estimate_tokens
from t2l_vllm.tasks.compositional.formats import FORMATS, Format, as_text
from t2l_vllm.tasks.compositional.inputs import INPUT_TYPES, InputType
from t2l_vllm.tasks.compositional.operations import OPERATIONS, Operation
from t2l_vllm.tasks.splits import HELD_OUT_DESCRIPTIONS_PER_FAMILY, family_seed

DESCRIPTION_SEED = 20_260_413
GRID_SEED = 20_260_414
# Formats per (operation, input): plain plus this many minus one drawn from the rest.
FORMATS_PER_INPUT = 5
EXAMPLE_DRAWS = 10
# Redraws before giving up on an input the operation finds ambiguous (a tie, an already sorted list).
MAX_DRAWS = 1000


def family_name(op: str, inp: str, fmt: str) -> str:
    return f"{op}.{inp}.{fmt}"


@dataclass(frozen=True)
class Generator:
    """rng -> (input text, target): draws an input the operation accepts, applies it, renders it."""

    op: Operation
    inp: InputType
    fmt: Format

    def __call__(self, rng: random.Random) -> tuple[str, str]:
        text, target, _ = self.draw(rng)
        return text, target

    def draw(self, rng: random.Random) -> tuple[str, str, str]:
        """(input text, target, the answer as plain text before the format)."""
        for _ in range(MAX_DRAWS):
            text, value = self.inp.generate(rng)
            if self.op.valid is None or self.op.valid(value):
                answer = self.op.apply(value)
                return text, self.fmt.render(answer, self.op, text), as_text(answer)
        raise ValueError(f"{self.op.name} rejected {MAX_DRAWS} draws of {self.inp.name}")


@dataclass(frozen=True)
class Combination:
    """One family of the grid with its parts.

    styles[i] is the style of family.descriptions[i]. The last
    HELD_OUT_DESCRIPTIONS_PER_FAMILY descriptions (held out from training, as in
    the original suite) come from two different styles, which vary by family.
    mirror: name of the mirror family, "" when the grid has none.
    """

    op: Operation
    inp: InputType
    fmt: Format
    family: TaskFamily
    styles: tuple[str, ...]
    mirror: str

    @property
    def name(self) -> str:
        return self.family.name


def _mirror_input(mirror: Operation, inp: str) -> str | None:
    """The input the mirror operation reads in place of `inp`: the same one, or its only one."""
    if inp in mirror.inputs:
        return inp
    return mirror.inputs[0] if len(mirror.inputs) == 1 else None


def _combination(op: Operation, inp: InputType, fmt: Format, mirror: str) -> Combination:
    name = family_name(op.name, inp.name, fmt.name)
    generate = Generator(op, inp, fmt)
    rng = random.Random(family_seed(DESCRIPTION_SEED, name))
    # Descriptions share the 128 training tokens with the input and answer: they show the
    # shortest of a few drawn examples and are budgeted against the longest (describe.py).
    draws = sorted((estimate_tokens(d[0]) + estimate_tokens(d[1]), d) for d in
                   (generate.draw(rng) for _ in range(EXAMPLE_DRAWS)))
    shortest, longest = draws[0][1], draws[-1][1]
    descriptions = describe(op, inp, fmt, Example.from_draws(shortest, longest[:2]), rng)
    # Held out: one description of each of two styles drawn per family, moved to the end.
    held_styles = rng.sample(STYLES, HELD_OUT_DESCRIPTIONS_PER_FAMILY)
    held = [next(d for d in reversed(descriptions) if d.style == s) for s in held_styles]
    ordered = [d for d in descriptions if d not in held] + held
    family = TaskFamily(
        name=name, kind=op.group, descriptions=tuple(d.text for d in ordered), generate=generate, answer=fmt.answer
    )
    return Combination(op, inp, fmt, family, tuple(d.style for d in ordered), mirror)


def formats_for(op: Operation, inp: InputType, formats: dict[str, Format]) -> list[Format]:
    """Plain, then FORMATS_PER_INPUT - 1 other formats that accept (op, inp), in `formats` order.

    The other formats are the first acceptable ones of an order shuffled by
    the operation's name and the input's name alone, so it does not change
    when other parts are added. A mirror pair shuffles by both operations'
    names and the input's position in their `inputs` (mirrors list their
    inputs in matching order), so "longest" and "shortest", or "capital of"
    and "country of", mostly come in the same formats and can be paired.
    """
    key = f"{op.name}.{inp.name}"
    if op.mirror:
        key = "|".join(sorted((op.name, op.mirror))) + f".{op.inputs.index(inp.name)}"
    order = [name for name in formats if name != "plain"]
    random.Random(family_seed(GRID_SEED, key)).shuffle(order)
    chosen = [name for name in order if formats[name].accepts(op, inp)][: FORMATS_PER_INPUT - 1]
    return [f for f in formats.values() if f.name == "plain" or f.name in chosen]


def build_grid(
    operations: dict[str, Operation] = OPERATIONS,
    input_types: dict[str, InputType] = INPUT_TYPES,
    formats: dict[str, Format] = FORMATS,
) -> dict[str, Combination]:
    """The families of every (operation, input) pair, in operation, input, format order."""
    if "plain" not in formats:
        raise ValueError("the grid needs the plain format")
    chosen = {
        (op.name, i): formats_for(op, input_types[i], formats)
        for op in operations.values() for i in op.inputs
    }
    grid_names = {family_name(op, i, f.name) for (op, i), fmts in chosen.items() for f in fmts}
    grid: dict[str, Combination] = {}
    for op in operations.values():
        for inp_name in op.inputs:
            for fmt in chosen[op.name, inp_name]:
                mirror = ""
                if op.mirror in operations:
                    m_inp = _mirror_input(operations[op.mirror], inp_name)
                    candidate = family_name(op.mirror, m_inp, fmt.name) if m_inp else ""
                    mirror = candidate if candidate in grid_names else ""
                combo = _combination(op, input_types[inp_name], fmt, mirror)
                grid[combo.name] = combo
    _check_descriptions_unique(grid)
    return grid


def _check_descriptions_unique(grid: dict[str, Combination]) -> None:
    # A description shared by two families would make the task ambiguous.
    seen: dict[str, str] = {}
    for combo in grid.values():
        for d in combo.family.descriptions:
            if d in seen:
                raise ValueError(f"description {d!r} of {combo.name} also describes {seen[d]}")
            seen[d] = combo.name


COMBINATIONS: dict[str, Combination] = build_grid()
FAMILIES: dict[str, TaskFamily] = {name: c.family for name, c in COMBINATIONS.items()}

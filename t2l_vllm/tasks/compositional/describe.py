"""Descriptions of a compositional family, composed from its parts' phrases in six styles.

A description names the operation (one of its `does` or `asks` phrases, with
one of the input type's phrases in the slot) and the output format (one of
its instructions, its terse fragment, its spelled-out shape, or a worked
example), so the target follows from description + input. Every family gets
DESCRIPTIONS_PER_STYLE descriptions in each style of STYLES, each from a
different template, so a family's descriptions are distinct by construction.

Styles: terse ("Two numbers -> sum, as JSON ..."), verbose (the input
announced, the task and the format stated at length), second person ("Your
task: ..."), question ("What is the sum of the two numbers? ..."), example (a
worked input -> output pair from the family's own generator) and
format_spelled (the reply's shape written out with placeholders).

Descriptions also have a length budget: they share training's 128 tokens with
the input and the answer whenever the description is in the prompt.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from t2l_vllm.tasks.compositional.formats import Format
from t2l_vllm.tasks.compositional.inputs import InputType
from t2l_vllm.tasks.compositional.operations import Operation

STYLES = ("terse", "verbose", "second_person", "question", "example", "format_spelled")
DESCRIPTIONS_PER_STYLE = 4

# Fields: do / Do (an operation phrase with the input filled in), ask / Ask (a question
# phrase, no question mark), input / tag (the input's noun phrase, with / without "the"),
# brief (how the input is announced), noun / Noun, what / What (the noun with the labels of a
# classification: "parity (even or odd)"), fmt (a format instruction sentence),
# terse (the format's terse fragment), shape (the reply spelled out), group, ex_in / ex_out
# (a worked example) and ex_value (its answer before formatting).
TEMPLATES: dict[str, tuple[str, ...]] = {
    "terse": (
        "{Do}{terse}.",
        "{Tag} -> {what}{terse}.",
        "{What}, for {input}{terse}.",
        "{Tag}: give the {what}{terse}.",
        "{What} of {input}{terse}, nothing else.",
    ),
    "verbose": (
        "You will be given {brief}, for example '{ex_in}'. Your job is to {do}. {fmt} Do not explain.",
        "The input is {brief}. Read it carefully and {do}. {fmt} No commentary, please.",
        "Each message you receive contains {brief}. For every message, {do}; nothing else is needed. {fmt}",
        "This is {group} task. The user sends {brief}, and you should {do}. {fmt} Be precise.",
        "Look at the input ({brief}). {Do}. {fmt} Make sure the answer is exact.",
    ),
    "second_person": (
        "Your task: {do}. {fmt}",
        "You are given {brief}. You need to {do}. {fmt}",
        "You should {do}. {fmt}",
        "You are an assistant that will {do}. {fmt}",
        "Your job is to {do}. {fmt}",
    ),
    "question": (
        "{Ask}? {fmt}",
        "Can you {do}? {fmt}",
        "Given {brief}, {ask}? {fmt}",
        "Could you please {do}? {fmt}",
        "{Ask}? Please answer as {shape}.",
    ),
    # Some example templates leave the format instruction out: the worked example shows it.
    # Some example templates leave the format instruction out (the worked example shows it);
    # the last four give the example's bare answer (ex_value) and state the format apart, which
    # keeps them short when the formatted answer is long (a table, a JSON record).
    "example": (
        "{Do}. Example: '{ex_in}' -> '{ex_out}'.",
        "{Do}. For instance, '{ex_in}' gives '{ex_out}'. {fmt}",
        "Input '{ex_in}', output '{ex_out}'. In general: {do}.",
        "Example: '{ex_in}' => '{ex_out}'. The same goes for any input: {do}. {fmt}",
        "{Do}, as in this example: '{ex_in}' -> '{ex_out}'.",
        "{Do}; for '{ex_in}' that is {ex_value}. {fmt}",
        "{fmt} Example: the answer for '{ex_in}' is {ex_value}, since you {do}.",
        "{Do}. {fmt} For example, the answer for '{ex_in}' is {ex_value}.",
        "Here, {do}. {fmt} (With '{ex_in}', the answer would be {ex_value}.)",
    ),
    "format_spelled": (
        "{Do}. Output format: {shape}.",
        "{Do}. Reply in exactly this shape: {shape}.",
        "Format the reply as {shape}. The task: {do}.",
        "{Do}. Answer format: {shape}.",
    ),
}

GROUP_WORDS = {
    "string": "a string manipulation", "number": "an arithmetic", "date": "a date and time", "lookup": "a lookup",
    "classification": "a classification", "extraction": "an extraction", "formatting": "a formatting",
}


@dataclass(frozen=True)
class Description:
    style: str
    text: str


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _shown(text: str) -> str:
    """An example inside a one-line description: line breaks written as \\n."""
    return text.replace("\n", "\\n")


# A description shares the 128 training tokens with the chat template (about 16 tokens), the
# input and the answer when it is in the prompt (t2l+desc, the multi-task LoRA). Tokens are
# estimated without a tokenizer (estimate_tokens), and the budget is what PROMPT_TOKENS leaves
# after the family's longest drawn input and answer, never under MIN_TOKENS.
PROMPT_TOKENS = 86
MIN_TOKENS = 24
# Phrase draws of a template before it gives way to the next one of its style.
REDRAWS = 4
# Pieces SmolLM2's BPE mostly keeps whole: a digit, a space before a digit, a line break,
# a word, any other mark.
_TOKEN = re.compile(r"\d| (?=\d)|\n|[A-Za-z]+|[^\sA-Za-z\d]")
_LONG_WORD = re.compile(r"[A-Za-z]{9,}")


def estimate_tokens(text: str) -> int:
    """A BPE token count estimate: one per piece of _TOKEN, two for a word past 8 letters."""
    return len(_TOKEN.findall(text)) + len(_LONG_WORD.findall(text))


@dataclass(frozen=True)
class Example:
    """The worked example descriptions show, and the family's description budget in tokens."""

    input: str
    target: str
    value: str
    budget: int

    @classmethod
    def from_draws(cls, shown: tuple[str, str, str], longest: tuple[str, str]) -> "Example":
        """`shown`: (input, target, bare answer); `longest`: the longest drawn (input, target)."""
        budget = max(MIN_TOKENS, PROMPT_TOKENS - estimate_tokens(longest[0]) - estimate_tokens(longest[1]))
        return cls(*shown, budget)


def describe(op: Operation, inp: InputType, fmt: Format, example: Example, rng: random.Random) -> list[Description]:
    """DESCRIPTIONS_PER_STYLE descriptions per style, styles in STYLES order.

    Each style's descriptions use distinct templates (drawn from `rng`), and each
    template's phrase slots are drawn from `rng` too, so the same family always
    gets the same descriptions and two families differ wherever their parts do.
    Drafts over the family's token budget (`example.budget`) are redrawn a few
    times; a template that never fits gives way to another of its style, and
    only when a style runs out of templates are its shortest drafts kept.
    """
    what = f"{op.noun} ({op.labels})" if op.labels else op.noun
    fixed = dict(
        brief=inp.brief, noun=op.noun, Noun=_cap(op.noun), what=what, What=_cap(what),
        terse=fmt.terse_fragment(op), shape=fmt.shape(op),
        group=GROUP_WORDS[op.group], ex_in=_shown(example.input), ex_out=_shown(example.target),
        ex_value=example.value,
    )
    instructions = fmt.instructions(op)
    out = []
    for style in STYLES:
        fitting, over = [], []  # over: (estimated tokens, draft)
        for template in rng.sample(TEMPLATES[style], len(TEMPLATES[style])):
            if len(fitting) == DESCRIPTIONS_PER_STYLE:
                break
            drafts = []
            for _ in range(REDRAWS):
                text = _fill(template, op, inp, instructions, fixed, rng)
                drafts.append((estimate_tokens(text), text))
                if drafts[-1][0] <= example.budget:
                    fitting.append(text)
                    break
            else:
                over.append(min(drafts))
        shortest_over = [text for _, text in sorted(over)]
        out += [Description(style, d) for d in (fitting + shortest_over)[:DESCRIPTIONS_PER_STYLE]]
    return out


def _fill(template: str, op: Operation, inp: InputType, instructions: tuple[str, ...], fixed: dict,
          rng: random.Random) -> str:
    """The template with phrases drawn from `rng` and the family's `fixed` fields."""
    phrase = rng.choice(inp.phrases)
    do = rng.choice(op.does).format(input=phrase)
    ask = rng.choice(op.asks).format(input=phrase)
    tag = phrase[len("the "):]
    return template.format(
        do=do, Do=_cap(do), ask=ask, Ask=_cap(ask), input=phrase, tag=tag, Tag=_cap(tag),
        fmt=rng.choice(instructions), **fixed,
    )

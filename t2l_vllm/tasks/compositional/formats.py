"""Output formats of the compositional suite: how an operation's value is written as the target.

A format renders a value (plus the operation's noun and key and the input
text, for the formats that use them), says in a few phrasings what the reply
must look like, and can check a target against its own constraint: every
constraint here is mechanical (uppercase, brackets, a JSON object with named
keys, a sentence of a stated form, a table or list layout), so a test can
verify every generated target satisfies it.

Answer types follow the layout: one-line answers that have a single exact
spelling are "short" (exact match); sentences, records, tables and lists are
"open" (scored by a text metric), like the open-ended families of
open_families.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable

from t2l_vllm.tasks.base import ANSWER_TYPES
from t2l_vllm.tasks.compositional.inputs import InputType
from t2l_vllm.tasks.compositional.operations import RESULT_KINDS, Operation
from t2l_vllm.tasks.families import number_to_words

SCALAR_KINDS = frozenset({"number", "word", "text", "label", "yesno"})
LIST_KINDS = frozenset({"words", "numbers"})


def as_text(value: Any) -> str:
    """An operation's value as plain text: lists joined by ', '."""
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


def slot(op: Operation) -> str:
    """The placeholder descriptions write for the answer."""
    return {"number": "<number>", "words": "<item>", "numbers": "<number>"}.get(op.result, "<answer>")


def _json_value_shape(op: Operation) -> str:
    """How the answer appears as a JSON value: numbers bare, text quoted, lists as arrays."""
    if op.result == "number":
        return "<number>"
    if op.result == "numbers":
        return "[<number>, ...]"
    if op.result == "words":
        return '["<item>", ...]'
    return '"<answer>"'


@dataclass(frozen=True)
class Format:
    """One way of writing the answer.

    results: the operation result kinds it can render.
    says / says_list: full instruction sentences for scalar / list answers (may use {noun},
        {key}, {shape}); descriptions pick one.
    terse: a fragment appended to terse descriptions (", as JSON {shape}"); may be empty.
    shape: op -> the reply spelled out with placeholders ('{"answer": <number>}').
    render: (value, op, input text) -> target.
    check: target -> whether it satisfies the format's constraint.
    answer: "short" or "open" (base.py).
    small_numbers: only for operations whose answers are whole numbers 0-99 on this input.
    copies_input: the answer repeats the input (a record, a table): not for long inputs.
    """

    name: str
    answer: str
    results: frozenset[str]
    says: tuple[str, ...]
    says_list: tuple[str, ...]
    terse: str
    terse_list: str
    shape: Callable[[Operation], str]
    render: Callable[[Any, Operation, str], str]
    check: Callable[[str], bool]
    small_numbers: bool = False
    copies_input: bool = False

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"format name must be an identifier, got {self.name!r}")
        if self.answer not in ANSWER_TYPES:
            raise ValueError(f"{self.name}: answer must be one of {ANSWER_TYPES}")
        if not self.results or not self.results <= set(RESULT_KINDS):
            raise ValueError(f"{self.name}: results must be a non-empty subset of {RESULT_KINDS}")
        if self.results & SCALAR_KINDS and len(self.says) < 2:
            raise ValueError(f"{self.name}: needs at least 2 'says' phrasings for scalar answers")
        if self.results & LIST_KINDS and len(self.says_list) < 2:
            raise ValueError(f"{self.name}: needs at least 2 'says_list' phrasings for list answers")

    def accepts(self, op: Operation, inp: InputType) -> bool:
        """Whether this format can write `op`'s answers on that input."""
        if op.result not in self.results or (self.copies_input and inp.long):
            return False
        return inp.name in op.small_on if self.small_numbers else True

    def instructions(self, op: Operation) -> tuple[str, ...]:
        phrasings = self.says_list if op.result in LIST_KINDS else self.says
        return tuple(p.format(noun=op.noun, key=op.key, shape=self.shape(op)) for p in phrasings)

    def terse_fragment(self, op: Operation) -> str:
        fragment = self.terse_list if op.result in LIST_KINDS else self.terse
        return fragment.format(noun=op.noun, key=op.key, shape=self.shape(op))


# ---------------------------------------------------------------- checks


def _one_line(t: str) -> bool:
    return bool(t) and "\n" not in t and t == t.strip()


def _json_keys(t: str, keys: int) -> bool:
    try:
        obj = json.loads(t)
    except json.JSONDecodeError:
        return False
    return _one_line(t) and isinstance(obj, dict) and len(obj) == keys


_TABLE = re.compile(r"\| Input \| Answer \|\n\|---\|---\|\n\| [^\n|]+ \| [^\n|]+ \|")
_WORDS_NUMBER = re.compile(r"[a-z]+(-[a-z]+)?")


def _lines_match(t: str, pattern: str) -> bool:
    lines = t.split("\n")
    return len(lines) >= 2 and all(re.fullmatch(pattern.replace("N", str(i)), line) for i, line in enumerate(lines, 1))


ALL_KINDS = frozenset(RESULT_KINDS)
NOT_LISTS = SCALAR_KINDS
CASEABLE = frozenset({"word", "label", "yesno", "words"})

FORMATS: dict[str, Format] = {f.name: f for f in (
    Format(
        "plain", "short", ALL_KINDS,
        says=("Reply with the answer only.", "Give just the answer, with nothing else.",
              "Output only the result, no explanation."),
        says_list=("Reply with the items separated by a comma and a space, nothing else.",
                   "Give the items on one line as a comma-separated list.",
                   "Output only the items, joined by ', '."),
        terse="", terse_list=", comma-separated",
        shape=lambda op: "<item>, <item>, <item>" if op.result in LIST_KINDS else f"{slot(op)}, with no other words",
        render=lambda v, op, inp: as_text(v), check=_one_line,
    ),
    Format(
        "uppercase", "short", CASEABLE,
        says=("Write the answer in capital letters.", "Answer in uppercase only.",
              "Give the answer in ALL CAPS and nothing else."),
        says_list=("Write the items in capital letters, separated by commas.",
                   "Answer in uppercase, with the items joined by ', '.",
                   "Give the items in ALL CAPS on one line, comma-separated."),
        terse=", in capitals", terse_list=", in capitals, comma-separated",
        shape=lambda op: ("<ITEM>, <ITEM>, <ITEM>" if op.result in LIST_KINDS else "<ANSWER>") + " in uppercase",
        render=lambda v, op, inp: as_text(v).upper(),
        check=lambda t: _one_line(t) and t == t.upper() and any(c.isalpha() for c in t),
    ),
    Format(
        "brackets", "short", NOT_LISTS,
        says=("Put the answer inside square brackets, like [answer].",
              "Wrap the result in square brackets and write nothing else.",
              "Enclose the answer in [ and ]."),
        says_list=(), terse=", in [brackets]", terse_list="",
        shape=lambda op: f"[{slot(op)}]",
        render=lambda v, op, inp: f"[{as_text(v)}]",
        check=lambda t: _one_line(t) and t.startswith("[") and t.endswith("]"),
    ),
    Format(
        "answer_prefix", "short", ALL_KINDS,
        says=("Start the reply with 'Answer: ' followed by the result.",
              "Write 'Answer:' and then the answer, on one line.",
              "Reply in the form '{shape}'."),
        says_list=("Start the reply with 'Answer: ' followed by the items, separated by commas.",
                   "Write 'Answer:' and then the items joined by ', ', on one line.",
                   "Reply in the form 'Answer: <item>, <item>, <item>'."),
        terse=", after 'Answer: '", terse_list=", after 'Answer: ', comma-separated",
        shape=lambda op: "Answer: " + ("<item>, <item>, <item>" if op.result in LIST_KINDS else slot(op)),
        render=lambda v, op, inp: f"Answer: {as_text(v)}",
        check=lambda t: _one_line(t) and t.startswith("Answer: "),
    ),
    Format(
        "json_answer", "short", ALL_KINDS,
        says=("Reply with a JSON object of the form {shape}.",
              'Return JSON with a single key "answer", like {shape}.',
              "Output only the JSON {shape}, nothing else."),
        says_list=("Reply with a JSON object of the form {shape}.",
                   'Return JSON with a single key "answer" holding the list, like {shape}.',
                   "Output only the JSON {shape}, nothing else."),
        terse=", as JSON {shape}", terse_list=", as JSON {shape}",
        shape=lambda op: '{"answer": ' + _json_value_shape(op) + "}",
        render=lambda v, op, inp: json.dumps({"answer": v}, ensure_ascii=False),
        check=lambda t: _json_keys(t, 1) and "answer" in json.loads(t),
    ),
    Format(
        "in_words", "short", frozenset({"number"}),
        says=("Write the number in English words, like forty-two.",
              "Spell the answer out in lowercase words, hyphenated like twenty-one.",
              "Give the result in words, not digits (e.g. seventeen, sixty-five)."),
        says_list=(), terse=", spelled out in words", terse_list="",
        shape=lambda op: "the number in lowercase English words, like forty-two",
        render=lambda v, op, inp: number_to_words(v),
        check=lambda t: _WORDS_NUMBER.fullmatch(t) is not None,
        small_numbers=True,
    ),
    Format(
        "sentence", "open", frozenset({"number", "word", "text", "label"}),
        says=('Answer in one sentence of the form "The {noun} is <answer>."',
              'Write a full sentence, "The {noun} is ...", ending with a full stop.',
              'Reply with the sentence "The {noun} is <answer>." and nothing more.'),
        says_list=(), terse=', as "The {noun} is ..."', terse_list="",
        shape=lambda op: f'"The {op.noun} is {slot(op)}."',
        render=lambda v, op, inp: f"The {op.noun} is {as_text(v)}.",
        check=lambda t: _one_line(t) and t.startswith("The ") and t.endswith("."),
    ),
    Format(
        "json_record", "open", NOT_LISTS,
        says=("Reply with the JSON record {shape}.",
              'Return JSON with "input" (the input, copied) and "{key}" (the answer).',
              "Answer with a JSON object like {shape}, the input copied as a string."),
        says_list=(), terse=", as JSON {shape}", terse_list="",
        shape=lambda op: '{"input": "<input>", "' + op.key + '": ' + _json_value_shape(op) + "}",
        render=lambda v, op, inp: json.dumps({"input": inp, op.key: v}, ensure_ascii=False),
        check=lambda t: _json_keys(t, 2) and "input" in json.loads(t),
        copies_input=True,
    ),
    Format(
        "table", "open", NOT_LISTS,
        says=("Give a markdown table with the columns Input and Answer and one row.",
              "Reply with a markdown table: header | Input | Answer |, then |---|---|, then one row.",
              "Format the reply as a one-row markdown table with columns Input and Answer."),
        says_list=(), terse=", as an Input | Answer markdown table", terse_list="",
        shape=lambda op: f"a markdown table: | Input | Answer |, then |---|---|, then | <input> | {slot(op)} |",
        render=lambda v, op, inp: f"| Input | Answer |\n|---|---|\n| {inp} | {as_text(v)} |",
        check=lambda t: _TABLE.fullmatch(t) is not None,
        copies_input=True,
    ),
    Format(
        "bullets", "open", LIST_KINDS,
        says=(), says_list=("List the items as a markdown bullet list, one per line, each starting with '- '.",
                            "Reply with one '- ' bullet per item, each on its own line.",
                            "Give a bulleted list with one item per line."),
        terse="", terse_list=", as '- ' bullets",
        shape=lambda op: "one '- <item>' line per item",
        render=lambda v, op, inp: "\n".join(f"- {x}" for x in v),
        check=lambda t: _lines_match(t, r"- \S.*"),
    ),
    Format(
        "numbered", "open", LIST_KINDS,
        says=(), says_list=("List the items as a numbered list, one per line: '1. ', '2. ', and so on.",
                            "Reply with a numbered list, one item per line.",
                            "Give the items as lines numbered 1., 2., 3. and so on."),
        terse="", terse_list=", as a numbered list",
        shape=lambda op: "one line per item, numbered '1. <item>', '2. <item>' and so on",
        render=lambda v, op, inp: "\n".join(f"{i}. {x}" for i, x in enumerate(v, 1)),
        check=lambda t: _lines_match(t, r"N\. \S.*"),
    ),
)}

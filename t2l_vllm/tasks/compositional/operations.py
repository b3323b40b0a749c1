"""Operations of the compositional suite: a function from an input's value to the answer's value.

Each operation belongs to one group (its family `kind`, so families of one
group are siblings) and names the input types it reads. Its phrases are the
fragments descriptions are built from (describe.py):

- does: imperative phrases with an "{input}" slot ("return the largest of {input}");
- asks: question phrases, same slot, no question mark ("what is the sum of {input}");
- noun: what the answer is ("sum"), for "The sum is 59." and for terse descriptions;
- labels: the answer words of a classification ("even or odd"), which terse
  descriptions add to the noun so that they say what to answer;
- key: the JSON key of the answer in a record ({"input": ..., "sum": 59}).

`mirror` names the operation that does the opposite on the same kind of input
(longest / shortest word, capital of / country of): training can put the two
in one step so that the hypernetwork must tell them apart. `valid` rejects
input values whose answer would be ambiguous (a tie for the longest word) or
trivial (a list already sorted); generators draw again.

The eleven held-out "mirror" families of the original suite (smaller_number,
min_of_list, vowel_or_consonant, count_consonants, last_letter,
english_to_spanish, animal_sound, day_before, email_username, date_iso_to_us,
camel_to_snake) have no operation here computing the same function: the
mirror split evaluates them exactly as they are defined in families.py.
"""

from __future__ import annotations

import datetime
import string
from dataclasses import dataclass
from typing import Any, Callable

from t2l_vllm.tasks import wordlists as wl
from t2l_vllm.tasks.compositional import inputs as ins
from t2l_vllm.tasks.families import number_to_words

GROUPS = ("string", "number", "date", "lookup", "classification", "extraction", "formatting")

# What an operation returns, which decides the formats it can be rendered in (formats.py):
#   number: an int;  word: lowercase-able letters ("paris", "Paris");  text: case or punctuation
#   matter ("2021-03-05", "Fe", "redApple");  label: one of a few words named in the description;
#   yesno: "yes" or "no";  words: a list of strings;  numbers: a list of ints.
RESULT_KINDS = ("number", "word", "text", "label", "yesno", "words", "numbers")
VOWELS = "aeiou"


@dataclass(frozen=True)
class Operation:
    name: str
    group: str
    inputs: tuple[str, ...]
    apply: Callable[[Any], Any]
    result: str
    noun: str
    key: str
    does: tuple[str, ...]
    asks: tuple[str, ...]
    mirror: str = ""
    labels: str = ""
    valid: Callable[[Any], bool] | None = None
    # Input types on which every answer is a whole number from 0 to 99 (it can be spelled out).
    small_on: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"operation name must be an identifier, got {self.name!r}")
        if self.group not in GROUPS:
            raise ValueError(f"{self.name}: group must be one of {GROUPS}, got {self.group!r}")
        if self.result not in RESULT_KINDS:
            raise ValueError(f"{self.name}: result must be one of {RESULT_KINDS}, got {self.result!r}")
        unknown = [i for i in self.inputs + self.small_on if i not in ins.INPUT_TYPES]
        if not self.inputs or unknown:
            raise ValueError(f"{self.name}: needs known input types, unknown: {unknown}")
        if not set(self.small_on) <= set(self.inputs):
            raise ValueError(f"{self.name}: small_on must be a subset of inputs")
        if self.small_on and self.result != "number":
            raise ValueError(f"{self.name}: small_on needs a number result")
        for kind, phrases in (("does", self.does), ("asks", self.asks)):
            if len(phrases) < 2 or len(set(phrases)) != len(phrases):
                raise ValueError(f"{self.name}: needs at least 2 distinct {kind} phrases")
            if any("{input}" not in p for p in phrases):
                raise ValueError(f"{self.name}: every {kind} phrase needs an {{input}} slot")
        if not self.noun or not self.key.isidentifier():
            raise ValueError(f"{self.name}: needs a noun and an identifier key")
        if self.result in ("label", "yesno") and not self.labels:
            raise ValueError(f"{self.name}: a {self.result} result needs its labels spelled out")


# ---------------------------------------------------------------- helpers


def _words_of(sentence_or_list) -> list[str]:
    """Words of a sentence (punctuation stripped) or the items of a word list."""
    if isinstance(sentence_or_list, str):
        return [w.strip(string.punctuation) for w in sentence_or_list.split()]
    return list(sentence_or_list)


def _unique_extreme(values: list, key, pick) -> bool:
    """True when exactly one item has the extreme key (no tie for longest, largest...)."""
    best = pick(key(v) for v in values)
    return sum(key(v) == best for v in values) == 1


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))


def _is_leap(y: int) -> bool:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def _has_double(word: str) -> bool:
    return any(a == b for a, b in zip(word, word[1:]))


def _add_days(d: datetime.date, n: int) -> str:
    return (d + datetime.timedelta(days=n)).isoformat()


def _to_24(value: tuple[int, int]) -> str:
    return ins.time_24(*value)


def _to_12(value: tuple[int, int]) -> str:
    return ins.time_12(*value)


def _op(name, group, inputs, apply, result, noun, key, does, asks, **extra) -> Operation:
    return Operation(name=name, group=group, inputs=tuple(inputs), apply=apply, result=result, noun=noun,
                     key=key, does=tuple(does), asks=tuple(asks), **extra)


_LONGEST_VALID = {"valid": lambda v: _unique_extreme(_words_of(v), len, max)}
_SHORTEST_VALID = {"valid": lambda v: _unique_extreme(_words_of(v), len, min)}

OPERATIONS: dict[str, Operation] = {op.name: op for op in (
    # ------------------------------------------------------------------ string
    _op("reverse_word", "string", ["word"], lambda w: w[::-1], "word", "reversed word", "reversed",
        ["reverse the letters of {input}", "spell {input} backwards", "write {input} back to front"],
        ["what is {input} spelled backwards", "how does {input} read from right to left"]),
    _op("word_length", "string", ["word"], len, "number", "number of letters", "length",
        ["count the letters in {input}", "give the length of {input} in letters", "say how many letters {input} has"],
        ["how many letters are in {input}", "how long is {input}, counted in letters"], small_on=("word",)),
    _op("count_vowels", "string", ["word", "phrase"], lambda v: sum(c in VOWELS for c in "".join(_words_of(v))),
        "number", "number of vowels", "vowels",
        ["count the vowels (a, e, i, o, u) in {input}", "say how many vowels there are in {input}",
         "tally the vowels a, e, i, o and u in {input}"],
        ["how many vowels are there in {input}", "how many of the letters in {input} are vowels"],
        small_on=("word", "phrase")),
    _op("first_letter", "string", ["word"], lambda w: w[0], "word", "first letter", "first_letter",
        ["give the first letter of {input}", "return the letter {input} starts with",
         "write down the opening letter of {input}"],
        ["what letter does {input} begin with", "which letter comes first in {input}"]),
    _op("remove_vowels", "string", ["word"], lambda w: "".join(c for c in w if c not in VOWELS), "word",
        "word without its vowels", "without_vowels",
        ["delete every vowel from {input}", "strip the vowels a, e, i, o and u out of {input}",
         "write {input} with all of its vowels removed"],
        ["what is left of {input} once its vowels are removed", "how does {input} look without vowels"]),
    _op("sort_letters", "string", ["word"], lambda w: "".join(sorted(w)), "word", "word with its letters sorted",
        "sorted_letters",
        ["sort the letters of {input} alphabetically", "rearrange the letters of {input} into alphabetical order",
         "put the letters of {input} in A-to-Z order"],
        ["what are the letters of {input} in alphabetical order", "how does {input} look with its letters sorted"],
        valid=lambda w: "".join(sorted(w)) != w),
    _op("double_letters", "string", ["word"], lambda w: "".join(c * 2 for c in w), "word",
        "word with every letter doubled", "doubled",
        ["write each letter of {input} twice", "double every letter in {input}",
         "repeat every character of {input} two times in a row"],
        ["what does {input} look like with every letter doubled", "how is {input} written with each letter twice"]),
    _op("count_words", "string", ["sentence"], lambda s: len(_words_of(s)), "number", "number of words", "words",
        ["count the words in {input}", "say how many words {input} has", "give the word count of {input}"],
        ["how many words are in {input}", "what is the word count of {input}"], small_on=("sentence",)),
    _op("longest_word", "string", ["word_list", "sentence"], lambda v: max(_words_of(v), key=len), "word",
        "longest word", "longest",
        ["return the longest word in {input}", "pick out the word with the most letters in {input}",
         "find the longest word in {input}"],
        ["which word in {input} is the longest", "what is the longest word in {input}"],
        mirror="shortest_word", **_LONGEST_VALID),
    _op("shortest_word", "string", ["word_list", "sentence"], lambda v: min(_words_of(v), key=len), "word",
        "shortest word", "shortest",
        ["return the shortest word in {input}", "pick out the word with the fewest letters in {input}",
         "find the shortest word in {input}"],
        ["which word in {input} is the shortest", "what is the shortest word in {input}"],
        mirror="longest_word", **_SHORTEST_VALID),
    _op("first_item", "string", ["word_list"], lambda v: v[0], "word", "first word", "first",
        ["return the first word of {input}", "give the word that comes first in {input}",
         "pick the opening item of {input}"],
        ["which word comes first in {input}", "what is the first item of {input}"], mirror="last_item"),
    _op("last_item", "string", ["word_list"], lambda v: v[-1], "word", "last word", "last",
        ["return the last word of {input}", "give the word that comes last in {input}",
         "pick the final item of {input}"],
        ["which word comes last in {input}", "what is the final item of {input}"], mirror="first_item"),
    _op("sort_words_az", "string", ["word_list"], sorted, "words", "words in alphabetical order", "sorted",
        ["sort {input} alphabetically", "put {input} in alphabetical order", "arrange {input} from A to Z"],
        ["what are {input} in alphabetical order", "how do {input} read when sorted from A to Z"],
        mirror="sort_words_za", valid=lambda v: list(v) != sorted(v)),
    _op("sort_words_za", "string", ["word_list"], lambda v: sorted(v, reverse=True), "words",
        "words in reverse alphabetical order", "sorted",
        ["sort {input} in reverse alphabetical order", "put {input} in Z-to-A order", "arrange {input} from Z to A"],
        ["what are {input} in reverse alphabetical order", "how do {input} read when sorted from Z to A"],
        mirror="sort_words_az", valid=lambda v: list(v) != sorted(v, reverse=True)),
    _op("reverse_items", "string", ["word_list"], lambda v: list(reversed(v)), "words", "words in reverse order",
        "reversed",
        ["reverse the order of {input}", "list {input} from last to first", "turn {input} around, item by item"],
        ["what are {input} in reverse order", "how do {input} read from the last item to the first"]),
    _op("unique_items", "string", ["word_list_repeats"], lambda v: list(dict.fromkeys(v)), "words",
        "distinct words", "unique",
        ["remove the repeats from {input}, keeping each word where it first appears",
         "list every word of {input} once, in order of first appearance",
         "drop the duplicates from {input} while keeping the original order"],
        ["which distinct words appear in {input}, in order of first appearance",
         "what is left of {input} once the repeats are removed"]),
    _op("alphabet_position", "string", ["letter"], lambda c: ord(c) - ord("a") + 1, "number",
        "position in the alphabet", "position",
        ["give the position of {input} in the alphabet, counting a as 1",
         "say where {input} comes in the alphabet (a = 1)",
         "convert {input} to its number in the alphabet, with a as 1"],
        ["what is the position of {input} in the alphabet, counting a as 1",
         "where in the alphabet does {input} come, with a as 1"],
        mirror="letter_at_position", small_on=("letter",)),
    _op("letter_at_position", "string", ["alphabet_position"], lambda n: chr(ord("a") + n - 1), "word",
        "letter at that position", "letter",
        ["give the lowercase letter at {input} in the alphabet (1 = a)",
         "name the letter found at {input}, counting a as 1",
         "convert {input} into the matching lowercase letter (1 is a, 26 is z)"],
        ["which letter of the alphabet is at {input}, counting a as 1", "what letter sits at {input}, with a as 1"],
        mirror="alphabet_position"),
    _op("next_letter", "string", ["letter"], lambda c: chr(ord(c) + 1), "word", "next letter", "next_letter",
        ["give the letter after {input} in the alphabet", "name the letter that follows {input} in the alphabet",
         "say which letter comes right after {input} in the alphabet"],
        ["which letter comes right after {input} in the alphabet", "what letter follows {input} in the alphabet"],
        mirror="previous_letter", valid=lambda c: c != "z"),
    _op("previous_letter", "string", ["letter"], lambda c: chr(ord(c) - 1), "word", "previous letter",
        "previous_letter",
        ["give the letter before {input} in the alphabet", "name the letter that precedes {input} in the alphabet",
         "say which letter comes right before {input} in the alphabet"],
        ["which letter comes right before {input} in the alphabet", "what letter precedes {input} in the alphabet"],
        mirror="next_letter", valid=lambda c: c != "a"),
    # ------------------------------------------------------------------ number
    _op("add", "number", ["number_pair", "digit_pair", "number_list"], sum, "number", "sum", "sum",
        ["add up {input}", "compute the sum of {input}", "give the total of {input}"],
        ["what do {input} add up to", "what is the sum of {input}"], small_on=("digit_pair",)),
    _op("largest", "number", ["number_pair", "number_list"], max, "number", "largest number", "largest",
        ["return the largest of {input}", "pick the biggest value among {input}", "find the maximum of {input}"],
        ["which of {input} is the largest", "what is the biggest value among {input}"],
        valid=lambda v: _unique_extreme(list(v), int, max)),
    _op("difference", "number", ["number_pair"], lambda v: abs(v[0] - v[1]), "number", "difference", "difference",
        ["subtract the smaller of {input} from the larger", "give the gap between {input}",
         "compute how far apart {input} are"],
        ["how far apart are {input}", "what is the difference between {input}, larger minus smaller"]),
    _op("product", "number", ["digit_pair"], lambda v: v[0] * v[1], "number", "product", "product",
        ["multiply {input} together", "give the product of {input}", "compute {input} multiplied by each other"],
        ["what is the product of {input}", "what do you get when you multiply {input}"], small_on=("digit_pair",)),
    _op("increment", "number", ["number"], lambda n: n + 1, "number", "next number", "next",
        ["add one to {input}", "give the number that follows {input}", "increase {input} by one"],
        ["what number comes right after {input}", "what is {input} plus one"], mirror="decrement"),
    _op("decrement", "number", ["number"], lambda n: n - 1, "number", "previous number", "previous",
        ["subtract one from {input}", "give the number just before {input}", "decrease {input} by one"],
        ["what number comes right before {input}", "what is {input} minus one"], mirror="increment",
        valid=lambda n: n >= 1),
    _op("double", "number", ["number"], lambda n: 2 * n, "number", "double", "double",
        ["multiply {input} by two", "double {input}", "give twice {input}"],
        ["what is twice {input}", "what do you get when you double {input}"], mirror="halve"),
    _op("halve", "number", ["number"], lambda n: n // 2, "number", "half", "half",
        ["divide {input} by two", "halve {input}", "give half of {input}"],
        ["what is half of {input}", "what do you get when you halve {input}"], mirror="double",
        valid=lambda n: n % 2 == 0),
    _op("digit_sum", "number", ["number"], lambda n: sum(map(int, str(n))), "number", "digit sum", "digit_sum",
        ["add up the digits of {input}", "give the sum of the digits in {input}",
         "total the individual digits of {input}"],
        ["what do the digits of {input} add up to", "what is the digit sum of {input}"], small_on=("number",)),
    _op("first_digit", "number", ["number"], lambda n: int(str(n)[0]), "number", "first digit", "first_digit",
        ["give the leading digit of {input}", "return the first digit of {input}",
         "write the digit {input} starts with"],
        ["which digit does {input} start with", "what is the leading digit of {input}"],
        mirror="last_digit", valid=lambda n: n >= 10, small_on=("number",)),
    _op("last_digit", "number", ["number"], lambda n: n % 10, "number", "last digit", "last_digit",
        ["give the final digit of {input}", "return the last digit of {input}", "write the units digit of {input}"],
        ["which digit does {input} end with", "what is the units digit of {input}"],
        mirror="first_digit", valid=lambda n: n >= 10, small_on=("number",)),
    _op("round_down_ten", "number", ["number"], lambda n: n - n % 10, "number", "number rounded down to the tens",
        "rounded_down",
        ["round {input} down to the multiple of ten below it", "drop {input} to the nearest lower multiple of ten",
         "floor {input} to a multiple of ten"],
        ["what multiple of ten lies just below {input}", "what is {input} rounded down to the tens"],
        mirror="round_up_ten", valid=lambda n: n % 10 != 0),
    _op("round_up_ten", "number", ["number"], lambda n: n - n % 10 + 10, "number", "number rounded up to the tens",
        "rounded_up",
        ["round {input} up to the multiple of ten above it", "raise {input} to the nearest higher multiple of ten",
         "ceil {input} to a multiple of ten"],
        ["what multiple of ten lies just above {input}", "what is {input} rounded up to the tens"],
        mirror="round_down_ten", valid=lambda n: n % 10 != 0),
    _op("count_items", "number", ["number_list", "word_list"], len, "number", "number of items", "count",
        ["count the items in {input}", "say how many items there are in {input}",
         "give the number of elements in {input}"],
        ["how many items are in {input}", "how many entries are there in {input}"],
        small_on=("number_list", "word_list")),
    _op("count_even", "number", ["number_list"], lambda v: sum(n % 2 == 0 for n in v), "number",
        "number of even numbers", "even_count",
        ["count the even numbers in {input}", "say how many of {input} are even", "tally the even values in {input}"],
        ["how many of {input} are even", "how many even values are there in {input}"],
        mirror="count_odd", small_on=("number_list",)),
    _op("count_odd", "number", ["number_list"], lambda v: sum(n % 2 == 1 for n in v), "number",
        "number of odd numbers", "odd_count",
        ["count the odd numbers in {input}", "say how many of {input} are odd", "tally the odd values in {input}"],
        ["how many of {input} are odd", "how many odd values are there in {input}"],
        mirror="count_even", small_on=("number_list",)),
    _op("sort_ascending", "number", ["number_list"], sorted, "numbers", "numbers in ascending order", "sorted",
        ["sort {input} from smallest to largest", "arrange {input} in ascending order",
         "order {input} from low to high"],
        ["what are {input} in ascending order", "how do {input} read when sorted from low to high"],
        mirror="sort_descending", valid=lambda v: list(v) != sorted(v)),
    _op("sort_descending", "number", ["number_list"], lambda v: sorted(v, reverse=True), "numbers",
        "numbers in descending order", "sorted",
        ["sort {input} from largest to smallest", "arrange {input} in descending order",
         "order {input} from high to low"],
        ["what are {input} in descending order", "how do {input} read when sorted from high to low"],
        mirror="sort_ascending", valid=lambda v: list(v) != sorted(v, reverse=True)),
    _op("keep_even", "number", ["number_list"], lambda v: [n for n in v if n % 2 == 0], "numbers", "even numbers",
        "even",
        ["keep only the even numbers of {input}, in their original order",
         "filter {input} down to their even values, keeping the order",
         "list the even numbers in {input} in the order they appear"],
        ["which of {input} are even, in their original order", "what is left of {input} after removing the odd ones"],
        mirror="keep_odd", valid=lambda v: 2 <= sum(n % 2 == 0 for n in v) < len(v)),
    _op("keep_odd", "number", ["number_list"], lambda v: [n for n in v if n % 2 == 1], "numbers", "odd numbers",
        "odd",
        ["keep only the odd numbers of {input}, in their original order",
         "filter {input} down to their odd values, keeping the order",
         "list the odd numbers in {input} in the order they appear"],
        ["which of {input} are odd, in their original order", "what is left of {input} after removing the even ones"],
        mirror="keep_even", valid=lambda v: 2 <= sum(n % 2 == 1 for n in v) < len(v)),
    # -------------------------------------------------------------------- date
    _op("year_of", "date", ["date_iso", "date_text"], lambda d: d.year, "number", "year", "year",
        ["give the year of {input}", "extract the year from {input}", "return the year in which {input} falls"],
        ["which year is {input} in", "what is the year of {input}"]),
    _op("month_of", "date", ["date_iso"], lambda d: wl.MONTHS[d.month - 1], "word", "month", "month",
        ["name the month of {input}", "give the month name of {input}", "write out the month that {input} falls in"],
        ["which month is {input} in", "what month does {input} fall in"]),
    _op("weekday_of", "date", ["date_iso", "date_text"], lambda d: wl.DAYS[d.weekday()], "word", "day of the week",
        "weekday",
        ["give the day of the week of {input}", "name the weekday on which {input} falls",
         "work out which day of the week {input} is"],
        ["which day of the week is {input}", "what weekday does {input} fall on"]),
    _op("day_of_month", "date", ["date_iso", "date_text"], lambda d: d.day, "number", "day of the month", "day",
        ["give the day of the month of {input}", "extract the day number from {input}",
         "return which day of its month {input} is"],
        ["which day of the month is {input}", "what is the day number of {input}"],
        small_on=("date_iso", "date_text")),
    _op("next_date", "date", ["date_iso"], lambda d: _add_days(d, 1), "text", "next day's date", "next_date",
        ["give the date one day after {input}, as YYYY-MM-DD", "add one day to {input} and write it as YYYY-MM-DD",
         "write the day after {input} in YYYY-MM-DD form"],
        ["what date, in YYYY-MM-DD form, comes one day after {input}",
         "which YYYY-MM-DD date is the day after {input}"],
        mirror="previous_date"),
    _op("previous_date", "date", ["date_iso"], lambda d: _add_days(d, -1), "text", "previous day's date",
        "previous_date",
        ["give the date one day before {input}, as YYYY-MM-DD",
         "subtract one day from {input} and write it as YYYY-MM-DD",
         "write the day before {input} in YYYY-MM-DD form"],
        ["what date, in YYYY-MM-DD form, comes one day before {input}",
         "which YYYY-MM-DD date is the day before {input}"],
        mirror="next_date"),
    _op("iso_to_text", "date", ["date_iso"], ins.date_text, "text", "date written out", "date",
        ["write {input} out as 'Month day, year', like March 5, 2021",
         "convert {input} to the long form with the month name, such as March 5, 2021",
         "spell out the month of {input} in a 'Month day, year' date (March 5, 2021)"],
        ["how is {input} written as 'Month day, year', like March 5, 2021",
         "what is {input} in the long 'Month day, year' form"],
        mirror="text_to_iso"),
    _op("text_to_iso", "date", ["date_text"], lambda d: d.isoformat(), "text", "ISO date", "date",
        ["convert {input} to ISO format (YYYY-MM-DD)", "rewrite {input} as YYYY-MM-DD",
         "turn {input} into an ISO 8601 date, YYYY-MM-DD"],
        ["what is {input} in YYYY-MM-DD form", "how is {input} written as an ISO date (YYYY-MM-DD)"],
        mirror="iso_to_text"),
    _op("iso_to_dmy", "date", ["date_iso"], lambda d: d.strftime("%d/%m/%Y"), "text", "date in DD/MM/YYYY form",
        "date",
        ["rewrite {input} as DD/MM/YYYY", "convert {input} to day/month/year with slashes (DD/MM/YYYY)",
         "put {input} in the European DD/MM/YYYY format"],
        ["what is {input} in DD/MM/YYYY form", "how is {input} written day first, as DD/MM/YYYY"]),
    _op("weekday_after", "date", ["weekday"], lambda i: wl.DAYS[(i + 1) % 7], "word", "following day", "next_day",
        ["give the day that follows {input}", "name the weekday after {input}", "say which day comes after {input}"],
        ["which day comes after {input}", "what day follows {input}"]),
    _op("weekday_two_after", "date", ["weekday"], lambda i: wl.DAYS[(i + 2) % 7], "word", "day two days later",
        "day_after_next",
        ["give the day two days after {input}", "name the weekday that comes two days after {input}",
         "skip one day after {input} and say which day you land on"],
        ["which day is two days after {input}", "what weekday comes two days after {input}"]),
    _op("month_after", "date", ["month"], lambda i: wl.MONTHS[(i + 1) % 12], "word", "following month", "next_month",
        ["give the month after {input}", "name the month that follows {input}",
         "say which month comes next after {input}"],
        ["which month comes after {input}", "what month follows {input}"], mirror="month_before"),
    _op("month_before", "date", ["month"], lambda i: wl.MONTHS[(i - 1) % 12], "word", "preceding month",
        "previous_month",
        ["give the month before {input}", "name the month that precedes {input}",
         "say which month comes just before {input}"],
        ["which month comes before {input}", "what month precedes {input}"], mirror="month_after"),
    _op("month_number", "date", ["month"], lambda i: i + 1, "number", "month number", "month_number",
        ["give the number of {input} in the calendar, January being 1",
         "convert {input} to its month number (January = 1)",
         "say which number month {input} is, counting January as 1"],
        ["what is the month number of {input}, with January as 1", "which number month is {input}, January being 1"],
        mirror="month_name", small_on=("month",)),
    _op("month_name", "date", ["month_number"], lambda n: wl.MONTHS[n - 1], "word", "month name", "month",
        ["name the month with {input}, 1 being January", "convert {input} into a month name (1 = January)",
         "write the month name for {input}, where 1 is January"],
        ["which month has {input}, with 1 as January", "what month is {input}, counting January as 1"],
        mirror="month_number"),
    _op("time_24_to_12", "date", ["time_24"], _to_12, "text", "12-hour time", "time",
        ["convert {input} to 12-hour time with AM or PM, like 2:35 PM",
         "rewrite {input} on the 12-hour clock (2:35 PM)",
         "turn {input} into am/pm time such as 9:05 AM"],
        ["what is {input} on the 12-hour clock, like 2:35 PM", "how is {input} written with AM or PM, like 9:05 AM"],
        mirror="time_12_to_24"),
    _op("time_12_to_24", "date", ["time_12"], _to_24, "text", "24-hour time", "time",
        ["convert {input} to 24-hour HH:MM time, like 14:35", "rewrite {input} on the 24-hour clock (09:05)",
         "turn {input} into zero-padded HH:MM time such as 14:35"],
        ["what is {input} on the 24-hour clock, as HH:MM", "how is {input} written in 24-hour HH:MM form"],
        mirror="time_24_to_12"),
    # ------------------------------------------------------------------ lookup
    _op("capital_of", "lookup", ["country"], wl.COUNTRY_CAPITALS.__getitem__, "word", "capital", "capital",
        ["give the capital city of {input}", "name the capital of {input}", "return the capital of {input}"],
        ["what is the capital of {input}", "which city is the capital of {input}"], mirror="country_of"),
    _op("country_of", "lookup", ["capital"], ins.CAPITAL_COUNTRIES.__getitem__, "word", "country", "country",
        ["name the country whose capital is {input}", "give the country that has {input} as its capital",
         "say which country {input} is the capital of"],
        ["which country has {input} as its capital", "of which country is {input} the capital"], mirror="capital_of"),
    _op("to_french", "lookup", ["english_word"], wl.ENGLISH_FRENCH.__getitem__, "word", "French word", "french",
        ["translate {input} into French", "give the French for {input}", "write {input} in French"],
        ["what is {input} in French", "how do you say {input} in French"], mirror="from_french"),
    _op("from_french", "lookup", ["french_word"], ins.FRENCH_ENGLISH.__getitem__, "word", "English word", "english",
        ["translate {input} into English", "give the English for {input}", "write {input} in English"],
        ["what is {input} in English", "what does {input} mean in English"], mirror="to_french"),
    _op("antonym", "lookup", ["antonym_word"], ins.ANTONYMS.__getitem__, "word", "opposite", "opposite",
        ["give the opposite of {input}", "return the antonym of {input}",
         "write the word that means the opposite of {input}"],
        ["what is the opposite of {input}", "which word means the opposite of {input}"]),
    _op("element_symbol", "lookup", ["element"], wl.CHEMICAL_SYMBOLS.__getitem__, "text", "chemical symbol", "symbol",
        ["give the chemical symbol of {input}", "write the periodic-table symbol for {input}",
         "return the element symbol of {input}"],
        ["what is the chemical symbol of {input}", "which symbol stands for {input} in the periodic table"],
        mirror="element_name"),
    _op("element_name", "lookup", ["element_symbol"], ins.SYMBOL_ELEMENTS.__getitem__, "word", "element", "element",
        ["name the element with {input}", "give the element whose symbol is written as {input}",
         "spell out the name of the element that {input} stands for"],
        ["which element has {input}", "what element does {input} stand for"], mirror="element_symbol"),
    _op("object_color", "lookup", ["colored_thing"], wl.OBJECT_COLORS.__getitem__, "word", "colour", "color",
        ["give the typical colour of {input}", "name the colour usually associated with {input}",
         "say what colour {input} normally is"],
        ["what colour is {input} usually", "which colour do you associate with {input}"]),
    _op("plural", "lookup", ["noun"], ins.plural_of, "word", "plural", "plural",
        ["give the plural of {input}", "write {input} in its plural form", "turn {input} into the plural"],
        ["what is the plural of {input}", "how do you write {input} in the plural"], mirror="singular"),
    _op("singular", "lookup", ["plural_noun"], lambda noun: noun, "word", "singular", "singular",
        ["give the singular of {input}", "write {input} in its singular form", "turn {input} back into the singular"],
        ["what is the singular of {input}", "how do you write {input} in the singular"], mirror="plural"),
    # ----------------------------------------------------------- classification
    _op("even_or_odd", "classification", ["number"], lambda n: "even" if n % 2 == 0 else "odd", "label", "parity",
        "parity",
        ["say whether {input} is even or odd", "classify {input} as even or odd", "label {input} with even or odd"],
        ["is {input} even or odd", "which is {input}, even or odd"], labels="even or odd"),
    _op("sentiment", "classification", ["review"], lambda label: label, "label", "sentiment", "sentiment",
        ["classify the sentiment of {input} as positive or negative", "say whether {input} is positive or negative",
         "label {input} positive or negative"],
        ["is {input} positive or negative", "what is the sentiment of {input}, positive or negative"],
        labels="positive or negative"),
    _op("fruit_or_vegetable", "classification", ["produce"], lambda w: "fruit" if w in wl.FRUITS else "vegetable",
        "label", "category", "category",
        ["say whether {input} is a fruit or a vegetable", "classify {input} as fruit or vegetable",
         "label {input} with fruit or vegetable"],
        ["is {input} a fruit or a vegetable", "which is {input}, a fruit or a vegetable"], labels="fruit or vegetable"),
    _op("animal_class", "classification", ["animal"], wl.ANIMAL_CLASSES.__getitem__, "label", "animal class",
        "class",
        ["classify {input} as mammal, bird, fish, amphibian, reptile or insect",
         "say which class {input} belongs to: mammal, bird, fish, amphibian, reptile or insect",
         "label {input} with its class (mammal, bird, fish, amphibian, reptile or insect)"],
        ["is {input} a mammal, bird, fish, amphibian, reptile or insect",
         "which class is {input} in: mammal, bird, fish, amphibian, reptile or insect"],
             labels="mammal, bird, fish, amphibian, reptile or insect"),
    _op("weekend_or_weekday", "classification", ["weekday"], lambda i: "weekend" if i >= 5 else "weekday", "label",
        "kind of day", "day_type",
        ["say whether {input} is a weekday or a weekend day, answering weekday or weekend",
         "classify {input} as weekday or weekend", "label {input} weekday or weekend"],
        ["is {input} a weekday or part of the weekend", "which is {input}, weekday or weekend"],
        labels="weekday or weekend"),
    _op("am_or_pm", "classification", ["time_24"], lambda v: "AM" if v[0] < 12 else "PM", "text", "period of the day",
        "period",
        ["say whether {input} is in the morning (AM) or afternoon and evening (PM)", "classify {input} as AM or PM",
         "label {input} AM or PM"],
        ["is {input} AM or PM", "does {input} fall in the AM or the PM half of the day"], labels="AM or PM"),
    _op("is_palindrome", "classification", ["word_or_palindrome"], lambda w: "yes" if w == w[::-1] else "no",
        "yesno", "palindrome check", "palindrome",
        ["answer yes if {input} reads the same backwards, otherwise no", "say yes or no: is {input} a palindrome",
         "check whether {input} is a palindrome, answering yes or no"],
        ["is {input} a palindrome (yes or no)", "does {input} read the same backwards, yes or no"], labels="yes or no"),
    _op("is_prime", "classification", ["small_number"], lambda n: "yes" if _is_prime(n) else "no", "yesno",
        "prime check", "prime",
        ["answer yes if {input} is a prime number, otherwise no", "say yes or no: is {input} prime",
         "check whether {input} is prime, answering yes or no"],
        ["is {input} a prime number (yes or no)", "is {input} prime, yes or no"], labels="yes or no"),
    _op("is_leap_year", "classification", ["year"], lambda y: "yes" if _is_leap(y) else "no", "yesno",
        "leap-year check", "leap_year",
        ["answer yes if {input} is a leap year, otherwise no", "say yes or no: is {input} a leap year",
         "check whether {input} is a leap year in the Gregorian calendar, answering yes or no"],
        ["is {input} a leap year (yes or no)", "does {input} have a February 29, yes or no"], labels="yes or no"),
    _op("starts_with_vowel", "classification", ["word"], lambda w: "yes" if w[0] in VOWELS else "no", "yesno",
        "vowel-start check", "starts_with_vowel",
        ["answer yes if {input} starts with a vowel, otherwise no",
         "say yes or no: does {input} begin with a, e, i, o or u",
         "check whether the first letter of {input} is a vowel, answering yes or no"],
        ["does {input} start with a vowel (yes or no)", "is the first letter of {input} a vowel, yes or no"],
        labels="yes or no"),
    _op("has_double_letter", "classification", ["word"], lambda w: "yes" if _has_double(w) else "no", "yesno",
        "double-letter check", "double_letter",
        ["answer yes if {input} has the same letter twice in a row, otherwise no",
         "say yes or no: does {input} contain a double letter such as 'll' or 'pp'",
         "check whether {input} has two identical letters side by side, answering yes or no"],
        ["does {input} contain a double letter (yes or no)",
         "has {input} got two identical letters in a row, yes or no"], labels="yes or no"),
    # -------------------------------------------------------------- extraction
    _op("extract_number", "extraction", ["number_sentence"], lambda n: n, "number", "number mentioned", "number",
        ["extract the number from {input}", "pull the number mentioned in {input} out",
         "return the only number that appears in {input}"],
        ["which number is mentioned in {input}", "what number appears in {input}"]),
    _op("extract_year", "extraction", ["year_sentence"], lambda y: y, "number", "year mentioned", "year",
        ["extract the year from {input}", "pull the year mentioned in {input} out",
         "return the four-digit year that appears in {input}"],
        ["which year is mentioned in {input}", "what year appears in {input}"]),
    _op("email_domain", "extraction", ["email", "email_sentence"], lambda domain: domain, "text", "email domain",
        "domain",
        ["extract the email domain (everything after the @) from {input}", "pull the mail domain out of {input}",
         "take the part after the @ sign from {input}"],
        ["what is the email domain in {input}", "which domain follows the @ in {input}"]),
    _op("first_name", "extraction", ["full_name", "name_sentence"], lambda parts: parts[0], "word", "first name",
        "first_name",
        ["extract the first name from {input}", "pull the person's given name out of {input}",
         "take the first name of the person in {input}"],
        ["what is the first name in {input}", "which given name appears in {input}"], mirror="last_name"),
    _op("last_name", "extraction", ["full_name", "name_sentence"], lambda parts: parts[-1], "word", "surname",
        "last_name",
        ["extract the surname from {input}", "pull the person's family name out of {input}",
         "take the last name of the person in {input}"],
        ["what is the surname in {input}", "which family name appears in {input}"], mirror="first_name"),
    _op("extract_time", "extraction", ["time_sentence"], lambda t: t, "text", "time mentioned", "time",
        ["extract the HH:MM time from {input}", "pull the clock time out of {input}, as HH:MM",
         "return the time of day written in {input}, as HH:MM"],
        ["what time (HH:MM) is mentioned in {input}", "which clock time appears in {input}, as HH:MM"]),
    _op("extract_city", "extraction", ["city_sentence"], lambda c: c, "word", "city mentioned", "city",
        ["extract the city from {input}", "pull the name of the city out of {input}",
         "return the place name that appears in {input}"],
        ["which city is mentioned in {input}", "what city appears in {input}"]),
    _op("url_host", "extraction", ["url"], lambda host: host, "text", "host name", "host",
        ["extract the host name (between // and the next /) from {input}",
         "pull the host out of {input}: everything between https:// and the next slash",
         "return the site's host name from {input}, without https:// and without the path"],
        ["what is the host name in {input}, between // and the next /",
         "which host does {input} point to, without the path"]),
    # -------------------------------------------------------------- formatting
    _op("snake_to_camel", "formatting", ["snake_identifier"], lambda w: w[0] + "".join(x.capitalize() for x in w[1:]),
        "text", "camelCase name", "camel",
        ["convert {input} to camelCase", "rewrite {input} in camel case, like redAppleJuice",
         "drop the underscores from {input} and capitalise every word after the first"],
        ["what is {input} in camelCase", "how is {input} written in camel case"]),
    _op("to_kebab", "formatting", ["phrase"], "-".join, "text", "kebab-case slug", "slug",
        ["join the words of {input} with hyphens", "turn {input} into kebab-case",
         "make a hyphenated slug from {input}"],
        ["what is {input} in kebab-case", "how does {input} look with hyphens between the words"],
        mirror="kebab_to_words"),
    _op("kebab_to_words", "formatting", ["kebab"], " ".join, "text", "space-separated phrase", "words",
        ["replace the hyphens in {input} with spaces", "split {input} back into words separated by spaces",
         "turn {input} into plain words with spaces between them"],
        ["what is {input} with spaces instead of hyphens", "how does {input} read as space-separated words"],
        mirror="to_kebab"),
    _op("to_snake", "formatting", ["phrase"], "_".join, "text", "snake_case name", "snake",
        ["join the words of {input} with underscores", "turn {input} into snake_case",
         "make an underscore-separated identifier from {input}"],
        ["what is {input} in snake_case", "how does {input} look with underscores between the words"]),
    _op("title_case", "formatting", ["phrase"], lambda w: " ".join(x.capitalize() for x in w), "text",
        "title-cased phrase", "title",
        ["capitalise the first letter of each word in {input}", "put {input} in title case",
         "start every word of {input} with a capital letter"],
        ["what is {input} in title case", "how does {input} look with every word capitalised"]),
    _op("initials", "formatting", ["full_name", "phrase"], lambda w: "".join(x[0].upper() for x in w), "text",
        "abbreviation", "initials",
        ["write the capitalised first letter of each word in {input}, joined together",
         "abbreviate {input} to its uppercase initial letters, with no dots or spaces",
         "build an uppercase acronym from the first letters of {input}"],
        ["what are the uppercase initials of {input}", "what acronym do the first letters of {input} make"]),
    _op("add_thousands_separators", "formatting", ["big_number"], lambda n: f"{n:,}", "text",
        "number with thousands separators", "formatted",
        ["insert commas as thousands separators into {input}",
         "write {input} with a comma between groups of three digits",
         "format {input} with thousands separators, like 1,234,567"],
        ["how is {input} written with thousands separators",
         "what does {input} look like with commas every three digits"],
        mirror="strip_separators"),
    _op("strip_separators", "formatting", ["comma_number"], lambda n: n, "number", "number without separators",
        "number",
        ["remove the commas from {input}", "write {input} as plain digits",
         "strip the grouping commas out of {input}"],
        ["what is {input} without its commas", "how is {input} written with no thousands separators"],
        mirror="add_thousands_separators"),
    _op("phone_format", "formatting", ["phone_digits"], lambda d: f"({d[:3]}) {d[3:6]}-{d[6:]}", "text",
        "formatted phone number", "phone",
        ["format {input} as (XXX) XXX-XXXX", "write {input} as a US phone number like (555) 123-4567",
         "add brackets, a space and a dash to {input}: (XXX) XXX-XXXX"],
        ["how is {input} written as (XXX) XXX-XXXX",
         "what does {input} look like as a US phone number, (555) 123-4567 style"]),
    _op("zero_pad", "formatting", ["small_number"], lambda n: f"{n:04d}", "text", "four-digit code", "code",
        ["pad {input} with leading zeros to four digits", "write {input} as a four-digit code with leading zeros",
         "left-fill {input} with zeros to a width of four"],
        ["what is {input} as a four-digit code with leading zeros",
         "how is {input} written zero-padded to four digits"]),
    _op("number_to_words", "formatting", ["small_number"], number_to_words, "word", "number in words", "words",
        ["write {input} in English words, hyphenating like forty-two", "spell out {input} in words (twenty-one style)",
         "convert {input} into lowercase English words, like forty-two"],
        ["how is {input} written in English words, like forty-two", "what is {input} spelled out in words"],
        mirror="words_to_number"),
    _op("words_to_number", "formatting", ["number_words"], lambda n: n, "number", "number in digits", "number",
        ["convert {input} into digits", "write {input} as a numeral", "turn {input} into a number written with digits"],
        ["what is {input} in digits", "how is {input} written as a numeral"], mirror="number_to_words"),
)}

"""Input types of the compositional suite: what the user message holds, and a seeded generator for it.

An input type is a noun phrase the descriptions can use ("the two numbers",
"the ISO date") and a generator that returns the message text together with
the parsed value an operation reads (a tuple of ints, a `datetime.date`, a
list of words...). Operations compute on the value, never by parsing the
text back, so every target is exact by construction.

Data comes from the repo's word lists (wordlists.py, open_wordlists.py: the
latter partly from the pinned `faker` package's en_US lists) and from small
constants here; generators draw only from the `random.Random` they are given.
"""

from __future__ import annotations

import datetime
import random
from dataclasses import dataclass
from typing import Any, Callable

from t2l_vllm.tasks import open_wordlists as ow
from t2l_vllm.tasks import wordlists as wl
from t2l_vllm.tasks.families import number_to_words, regular_plural

# (message text, value an operation reads)
Generated = tuple[str, Any]


@dataclass(frozen=True)
class InputType:
    """One kind of user message.

    phrases: noun phrases for the input inside a description ("the two numbers"),
        each starting with "the" so that they read after a verb or a preposition.
    brief: how the input is announced ("two numbers separated by a comma").
    generate: rng -> (text, value).
    long: the text costs many tokens (digits are one token each): formats that copy the
        input into the answer (a JSON record, a table) leave it out, so that description,
        input and answer fit training's 128 tokens.
    """

    name: str
    phrases: tuple[str, ...]
    brief: str
    generate: Callable[[random.Random], Generated]
    long: bool = False

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"input type name must be an identifier, got {self.name!r}")
        if len(self.phrases) < 2 or len(set(self.phrases)) != len(self.phrases):
            raise ValueError(f"input type {self.name}: needs at least 2 distinct phrases")
        if any(not p.startswith("the ") for p in self.phrases):
            raise ValueError(f"input type {self.name}: every phrase must start with 'the '")
        if not self.brief.strip():
            raise ValueError(f"input type {self.name}: brief must be non-empty")


# ---------------------------------------------------------------- helpers


def _date(rng: random.Random) -> datetime.date:
    start = datetime.date(1950, 1, 1).toordinal()
    end = datetime.date(2030, 12, 31).toordinal()
    return datetime.date.fromordinal(rng.randint(start, end))


def date_text(d: datetime.date) -> str:
    """'March 5, 2021' (US long form, no leading zero)."""
    return f"{wl.MONTHS[d.month - 1]} {d.day}, {d.year}"


def time_24(hour: int, minute: int) -> str:
    """'09:05', '14:35'."""
    return f"{hour:02d}:{minute:02d}"


def time_12(hour: int, minute: int) -> str:
    """'9:05 AM', '2:35 PM', '12:10 AM' for 00:10."""
    return f"{(hour - 1) % 12 + 1}:{minute:02d} {'AM' if hour < 12 else 'PM'}"


def _full_name(rng: random.Random) -> str:
    return f"{rng.choice(ow.FIRST_NAMES)} {rng.choice(ow.LAST_NAMES)}"


def _distinct_words(rng: random.Random, lo: int, hi: int) -> list[str]:
    return rng.sample(wl.COMMON_WORDS, rng.randint(lo, hi))


# Sentences built from open_wordlists: "<Name> <verb>s <complement> <when>."
def _activity_sentence(rng: random.Random) -> str:
    _, third, _, complement = rng.choice(ow.ACTIVITIES)
    return f"{rng.choice(ow.FIRST_NAMES)} {third} {complement} {rng.choice(ow.HABIT_TIMES)}."


_NUMBER_SENTENCES = (
    "The shelf holds {x} jars of jam.",
    "Our school has {x} teachers this year.",
    "The hike took {x} minutes longer than planned.",
    "She ran {x} laps around the track.",
    "There were {x} people waiting at the gate.",
    "The bakery sold {x} loaves before noon.",
)
_YEAR_SENTENCES = (
    "The museum first opened its doors in {x}.",
    "My aunt moved to the coast in {x}.",
    "The old lighthouse was rebuilt in {x}.",
    "In {x} the town built a new library.",
    "The band recorded its first album in {x}.",
    "This recipe has been in the family since {x}.",
)
_EMAIL_SENTENCES = (
    "Questions can go to {x} at any time.",
    "Please send the invoice to {x} by Monday.",
    "You can write to me at {x}.",
    "The new contact for bookings is {x}.",
    "Reply to {x} if you want a seat.",
)
_NAME_SENTENCES = (
    "The keynote was given by {x} this morning.",
    "I had coffee with {x} after the meeting.",
    "The parcel is addressed to {x}.",
    "Our new neighbour, {x}, plays the cello.",
    "The award went to {x} this year.",
)
_TIME_SENTENCES = (
    "The last train leaves at {x} tonight.",
    "Our meeting is booked for {x}.",
    "The shop opens at {x} on weekdays.",
    "Please be at the gate by {x}.",
    "The film starts at {x}, so do not be late.",
)
_CITY_SENTENCES = (
    "Our flight to {x} lands early tomorrow.",
    "My cousin has lived in {x} for ten years.",
    "The conference is held in {x} every spring.",
    "We spent a rainy weekend in {x}.",
    "The parcel was shipped from {x} on Tuesday.",
)
# Review sentences as in families.py's sentiment task: the adjective decides the label.
_REVIEW_SENTENCES = (
    "The {noun} was {adj}.",
    "What a {adj} {noun}!",
    "I found the {noun} {adj}.",
    "Honestly, the {noun} was {adj}.",
    "That {noun} was truly {adj}.",
)
_URL_HOSTS = (
    "acme.com", "shop.acme.com", "news.example.org", "example.org", "docs.python.org",
    "blog.startup.dev", "library.org", "mail.company.net", "maps.city.gov", "store.bakery.co.uk",
)
_URL_PATHS = ("about", "cart", "help/faq", "news/today", "login", "products/42", "contact", "blog/post-7")


def _sentence_gen(templates: tuple[str, ...], draw: Callable[[random.Random], Any], show=str):
    """Generator: a template filled with a drawn value; the value is what operations read."""

    def generate(rng: random.Random) -> Generated:
        value = draw(rng)
        return rng.choice(templates).format(x=show(value)), value

    return generate


def _integer(lo: int, hi: int) -> Callable[[random.Random], Generated]:
    """Generator: a whole number in [lo, hi], shown in digits."""

    def generate(rng: random.Random) -> Generated:
        n = rng.randint(lo, hi)
        return str(n), n

    return generate


def _indexed(names: tuple[str, ...]) -> Callable[[random.Random], Generated]:
    """Generator: one of `names`, read by operations as its index (Monday = 0, January = 0)."""

    def generate(rng: random.Random) -> Generated:
        i = rng.randrange(len(names))
        return names[i], i

    return generate


def _pick(pool) -> Callable[[random.Random], Generated]:
    """Generator: one item of `pool`, shown as itself."""
    pool = tuple(pool)

    def generate(rng: random.Random) -> Generated:
        item = rng.choice(pool)
        return item, item

    return generate


def _numbers(values: Callable[[random.Random], list[int]]) -> Callable[[random.Random], Generated]:
    def generate(rng: random.Random) -> Generated:
        nums = values(rng)
        return ", ".join(map(str, nums)), tuple(nums)

    return generate


def _words_list(values: Callable[[random.Random], list[str]]) -> Callable[[random.Random], Generated]:
    def generate(rng: random.Random) -> Generated:
        words = values(rng)
        return ", ".join(words), tuple(words)

    return generate


def _gen_sentence(rng):
    sentence = _activity_sentence(rng)
    return sentence, sentence


def _gen_date_iso(rng):
    d = _date(rng)
    return d.isoformat(), d


def _gen_date_text(rng):
    d = _date(rng)
    return date_text(d), d


def _gen_time_24(rng):
    h, m = rng.randrange(24), rng.randrange(60)
    return time_24(h, m), (h, m)


def _gen_time_12(rng):
    h, m = rng.randrange(24), rng.randrange(60)
    return time_12(h, m), (h, m)


def _gen_email(rng) -> tuple[str, str]:
    first, last = rng.choice(wl.FIRST_NAMES).lower(), rng.choice(wl.LAST_NAMES).lower()
    user = rng.choice((f"{first}.{last}", first, f"{first[0]}{last}", f"{first}{rng.randint(1, 99)}"))
    domain = rng.choice(wl.EMAIL_DOMAINS)
    return f"{user}@{domain}", domain


def _gen_email_address(rng):
    email, domain = _gen_email(rng)
    return email, domain


def _gen_email_sentence(rng):
    email, domain = _gen_email(rng)
    return rng.choice(_EMAIL_SENTENCES).format(x=email), domain


def _gen_full_name(rng):
    name = _full_name(rng)
    return name, tuple(name.split())


def _gen_name_sentence(rng):
    name = _full_name(rng)
    return rng.choice(_NAME_SENTENCES).format(x=name), tuple(name.split())


def _gen_time_sentence(rng):
    h, m = rng.randrange(6, 23), rng.choice((0, 5, 10, 15, 20, 30, 40, 45, 50))
    text = time_24(h, m)
    return rng.choice(_TIME_SENTENCES).format(x=text), text


def _gen_review(rng):
    positive = rng.random() < 0.5
    adj = rng.choice(wl.POSITIVE_WORDS if positive else wl.NEGATIVE_WORDS)
    text = rng.choice(_REVIEW_SENTENCES).format(noun=rng.choice(wl.REVIEW_NOUNS), adj=adj)
    return text, "positive" if positive else "negative"


def _gen_url(rng):
    host = rng.choice(_URL_HOSTS)
    return f"https://{host}/{rng.choice(_URL_PATHS)}", host


def _gen_word_or_palindrome(rng):
    word = rng.choice(wl.PALINDROMES if rng.random() < 0.5 else wl.COMMON_WORDS)
    return word, word


def _gen_produce(rng):
    word = rng.choice(wl.FRUITS if rng.random() < 0.5 else wl.VEGETABLES)
    return word, word


def _gen_phrase(rng):
    words = _distinct_words(rng, 2, 4)
    return " ".join(words), tuple(words)


def _gen_snake(rng):
    words = _distinct_words(rng, 2, 3)
    return "_".join(words), tuple(words)


def _gen_kebab(rng):
    words = _distinct_words(rng, 2, 4)
    return "-".join(words), tuple(words)


def _gen_big_number(rng):
    n = rng.randint(1_000, 9_999_999)
    return str(n), n


def _gen_comma_number(rng):
    n = rng.randint(1_000, 9_999_999)
    return f"{n:,}", n


def _gen_phone(rng):
    digits = str(rng.randint(2, 9)) + "".join(str(rng.randrange(10)) for _ in range(9))
    return digits, digits


def _gen_number_words(rng):
    n = rng.randint(0, 99)
    return number_to_words(n), n


def _gen_repeated_words(rng):
    # 3-4 distinct words, one or two of them repeated, shuffled: 5-6 items in all.
    distinct = _distinct_words(rng, 3, 4)
    items = distinct + rng.sample(distinct, rng.randint(1, 2))
    rng.shuffle(items)
    return ", ".join(items), tuple(items)


def _gen_letter(rng):
    letter = rng.choice("abcdefghijklmnopqrstuvwxyz")
    return letter, letter


_SINGULAR_NOUNS: tuple[str, ...] = tuple(wl.IRREGULAR_PLURALS) + wl.REGULAR_NOUNS


def plural_of(noun: str) -> str:
    return wl.IRREGULAR_PLURALS.get(noun) or regular_plural(noun)


def _gen_plural_noun(rng):
    noun = rng.choice(_SINGULAR_NOUNS)
    return plural_of(noun), noun


def _gen_lookup_key(table: dict[str, str]):
    keys = tuple(table)

    def generate(rng):
        key = rng.choice(keys)
        return key, key

    return generate


def _invert(table: dict[str, str]) -> dict[str, str]:
    inverted = {v: k for k, v in table.items()}
    if len(inverted) != len(table):
        raise ValueError("lookup table values are not unique, cannot invert")
    return inverted


# Symmetric antonym table: both words of every pair are inputs.
ANTONYMS: dict[str, str] = {**wl.ANTONYMS, **_invert(wl.ANTONYMS)}
CAPITAL_COUNTRIES: dict[str, str] = _invert(wl.COUNTRY_CAPITALS)
FRENCH_ENGLISH: dict[str, str] = _invert(wl.ENGLISH_FRENCH)
SYMBOL_ELEMENTS: dict[str, str] = _invert(wl.CHEMICAL_SYMBOLS)


def _t(name, phrases, brief, generate, long=False) -> InputType:
    return InputType(name=name, phrases=tuple(phrases), brief=brief, generate=generate, long=long)


INPUT_TYPES: dict[str, InputType] = {t.name: t for t in (
    # --- words and text
    _t("word", ("the word", "the given word", "the input word"), "a single lowercase word", _pick(wl.COMMON_WORDS)),
    _t("word_or_palindrome", ("the word", "the given word", "the single word"),
       "one lowercase word (some read the same backwards)", _gen_word_or_palindrome),
    _t("letter", ("the letter", "the given letter", "the single letter"), "one lowercase letter", _gen_letter),
    _t("phrase", ("the phrase", "the group of words", "the short lowercase phrase"),
       "two to four lowercase words separated by spaces", _gen_phrase),
    _t("sentence", ("the sentence", "the given sentence", "the input sentence"),
       "one short English sentence", _gen_sentence),
    _t("word_list", ("the listed words", "the comma-separated words", "the words in the list"),
       "a comma-separated list of words", _words_list(lambda rng: _distinct_words(rng, 3, 6))),
    _t("word_list_repeats", ("the listed words, some repeated", "the comma-separated words, some of them repeated",
                             "the words in the list, duplicates included"),
       "a comma-separated list of words in which some words occur more than once", _gen_repeated_words),
    _t("review", ("the review", "the short review", "the customer comment"), "a one-sentence review", _gen_review),
    _t("produce", ("the food", "the produce item", "the name of the food"),
       "the name of a fruit or a vegetable", _gen_produce),
    # --- numbers
    _t("number", ("the number", "the given integer", "the input number"), "a whole number from 0 to 999",
       _integer(0, 999)),
    _t("small_number", ("the small number", "the given number below 100", "the number under one hundred"),
       "a whole number from 0 to 99", _integer(0, 99)),
    _t("number_pair", ("the two numbers", "the pair of numbers", "the two comma-separated integers"),
       "two whole numbers separated by a comma", _numbers(lambda rng: rng.sample(range(100), 2))),
    _t("digit_pair", ("the two digits", "the pair of single digits", "the two one-digit numbers"),
       "two digits from 2 to 9 separated by a comma", _numbers(lambda rng: [rng.randint(2, 9), rng.randint(2, 9)])),
    _t("number_list", ("the listed numbers", "the comma-separated numbers", "the numbers in the list"),
       "a comma-separated list of whole numbers", _numbers(lambda rng: rng.sample(range(100), rng.randint(3, 6))),
       long=True),
    _t("big_number", ("the large number", "the big integer", "the long number"),
       "a whole number with four to seven digits and no separators", _gen_big_number),
    _t("comma_number", ("the comma-grouped number", "the number with thousands separators", "the formatted number"),
       "a large number written with commas between groups of three digits", _gen_comma_number),
    _t("number_words", ("the number written in words", "the spelled-out number", "the number in English words"),
       "a number from zero to ninety-nine written in English words", _gen_number_words),
    _t("phone_digits", ("the ten-digit string", "the raw phone number", "the ten-digit number"),
       "a ten-digit US phone number with no spaces or punctuation", _gen_phone, long=True),
    _t("alphabet_position", ("the alphabet position", "the position number", "the given position (1 to 26)"),
       "a whole number from 1 to 26", _integer(1, 26)),
    _t("year", ("the year", "the given year", "the four-digit year"), "a year between 1800 and 2100",
       _integer(1800, 2100)),
    # --- dates and times
    _t("date_iso", ("the ISO date", "the given date", "the YYYY-MM-DD date"),
       "a date written as YYYY-MM-DD", _gen_date_iso, long=True),
    _t("date_text", ("the written date", "the date in 'Month day, year' form", "the spelled-out date"),
       "a date written like 'March 5, 2021'", _gen_date_text),
    _t("weekday", ("the weekday", "the day of the week", "the given day name"), "the name of a day of the week",
       _indexed(wl.DAYS)),
    _t("month", ("the given month", "the month name", "the named month"), "the name of a month",
       _indexed(wl.MONTHS)),
    _t("month_number", ("the month number", "the number of the month", "the given month number (1 to 12)"),
       "a month number from 1 to 12", _integer(1, 12)),
    _t("time_24", ("the 24-hour time", "the time in 24-hour HH:MM form", "the 24-hour clock time"),
       "a 24-hour clock time", _gen_time_24),
    _t("time_12", ("the 12-hour time", "the time with AM or PM", "the am/pm clock time"),
       "a 12-hour clock time with AM or PM", _gen_time_12),
    # --- lookups (keys of the word lists' tables)
    _t("country", ("the country", "the country name", "the given country"), "the name of a country",
       _gen_lookup_key(wl.COUNTRY_CAPITALS)),
    _t("capital", ("the capital city", "the city name", "the given capital"), "the name of a capital city",
       _gen_lookup_key(CAPITAL_COUNTRIES)),
    _t("english_word", ("the English word", "the given English word", "the English input word"),
       "one English word", _gen_lookup_key(wl.ENGLISH_FRENCH)),
    _t("french_word", ("the French word", "the given French word", "the French input word"),
       "one French word", _gen_lookup_key(FRENCH_ENGLISH)),
    _t("antonym_word", ("the adjective or verb", "the given word", "the common word"),
       "one everyday English word that has a clear opposite", _gen_lookup_key(ANTONYMS)),
    _t("element", ("the chemical element", "the element name", "the given element"),
       "the name of a chemical element", _gen_lookup_key(wl.CHEMICAL_SYMBOLS)),
    _t("element_symbol", ("the chemical symbol", "the element symbol", "the given symbol"),
       "a chemical element's symbol", _gen_lookup_key(SYMBOL_ELEMENTS)),
    _t("animal", ("the animal", "the animal name", "the given animal"), "the name of an animal",
       _gen_lookup_key(wl.ANIMAL_CLASSES)),
    _t("colored_thing", ("the thing", "the object or food", "the named thing"),
       "the name of an object, food or animal with a typical colour", _gen_lookup_key(wl.OBJECT_COLORS)),
    _t("noun", ("the noun", "the singular noun", "the given noun"), "one English noun in the singular",
       _pick(_SINGULAR_NOUNS)),
    _t("plural_noun", ("the plural noun", "the noun in the plural", "the given plural"),
       "one English noun in the plural", _gen_plural_noun),
    # --- text to extract from
    _t("number_sentence", ("the sentence", "the statement", "the text"), "a sentence that mentions one number",
       _sentence_gen(_NUMBER_SENTENCES, lambda rng: rng.randint(2, 999))),
    _t("year_sentence", ("the sentence", "the statement", "the text"), "a sentence that mentions a year",
       _sentence_gen(_YEAR_SENTENCES, lambda rng: rng.randint(1800, 2030))),
    _t("email", ("the email address", "the address", "the given email"), "one email address", _gen_email_address),
    _t("email_sentence", ("the sentence", "the message", "the text"), "a sentence that contains an email address",
       _gen_email_sentence, long=True),
    _t("full_name", ("the full name", "the person's name", "the given full name"),
       "a first name and a surname", _gen_full_name),
    _t("name_sentence", ("the sentence", "the message", "the text"), "a sentence that mentions one person by full name",
       _gen_name_sentence),
    _t("time_sentence", ("the sentence", "the message", "the text"), "a sentence that mentions a time of day",
       _gen_time_sentence),
    _t("city_sentence", ("the sentence", "the message", "the text"), "a sentence that mentions one city",
       _sentence_gen(_CITY_SENTENCES, lambda rng: rng.choice(ow.CITIES))),
    _t("url", ("the URL", "the web address", "the link"), "one https web address", _gen_url, long=True),
    # --- identifiers
    _t("snake_identifier", ("the snake_case name", "the identifier", "the underscore-separated name"),
       "a lowercase identifier with words joined by underscores", _gen_snake),
    _t("kebab", ("the hyphenated slug", "the kebab-case string", "the dash-joined phrase"),
       "lowercase words joined by hyphens", _gen_kebab),
)}

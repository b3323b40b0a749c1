"""Task families: a name, a kind, ten or more descriptions, and a seeded generator.

Each family is a short-answer task that SmolLM2-135M-Instruct can learn from a
LoRA: the input is the raw user message (no instructions inside it) and the
target is the exact expected answer (one word, number or short phrase, one
line). The hypernetwork only ever sees the description, so descriptions vary in
style (terse, verbose, imperative, second person, question, with an example) to
make it learn the task rather than the wording.

Generators take a `random.Random` and must draw from it only (never the global
random state), so that a seed fully determines the examples.

FAMILIES, the registry the rest of the package uses, holds these short-answer
families (SHORT_FAMILIES) followed by the open-ended ones of open_families.py;
`TaskFamily.answer` tells them apart.
"""

from __future__ import annotations

import datetime
import random
from typing import Callable

from t2l_vllm.tasks import wordlists as wl
from t2l_vllm.tasks.base import ANSWER_TYPES, MIN_DESCRIPTIONS, FamilyRegistry, TaskFamily  # noqa: F401 (re-exported)
from t2l_vllm.tasks.open_families import OPEN_FAMILIES

VOWELS = "aeiou"


# ---------------------------------------------------------------- helpers


def regular_plural(noun: str) -> str:
    """English plural of a regular noun: -es after sibilants, -ies after consonant+y."""
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in VOWELS:
        return noun[:-1] + "ies"
    return noun + "s"


def number_to_words(n: int) -> str:
    """0..99 spelled out in English, tens and units joined by a hyphen."""
    if not 0 <= n <= 99:
        raise ValueError(f"number_to_words handles 0..99, got {n}")
    if n < 20:
        return wl.UNIT_WORDS[n]
    tens, units = divmod(n, 10)
    return wl.TENS_WORDS[tens] + ("" if units == 0 else "-" + wl.UNIT_WORDS[units])


def _random_date(rng: random.Random) -> datetime.date:
    start = datetime.date(1950, 1, 1).toordinal()
    end = datetime.date(2030, 12, 31).toordinal()
    return datetime.date.fromordinal(rng.randint(start, end))


def _email(rng: random.Random) -> tuple[str, str, str]:
    """(email, username, domain) built from the name lists."""
    first = rng.choice(wl.FIRST_NAMES).lower()
    last = rng.choice(wl.LAST_NAMES).lower()
    style = rng.randrange(4)
    if style == 0:
        user = f"{first}.{last}"
    elif style == 1:
        user = first
    elif style == 2:
        user = first[0] + last
    else:
        user = f"{first}{rng.randint(1, 99)}"
    domain = rng.choice(wl.EMAIL_DOMAINS)
    return f"{user}@{domain}", user, domain


def _words(rng: random.Random, lo: int, hi: int) -> list[str]:
    return [rng.choice(wl.COMMON_WORDS) for _ in range(rng.randint(lo, hi))]


def _number_list(rng: random.Random, k_lo: int, k_hi: int, v_lo: int, v_hi: int) -> list[int]:
    return [rng.randint(v_lo, v_hi) for _ in range(rng.randint(k_lo, k_hi))]


def _two_distinct(rng: random.Random, lo: int, hi: int) -> tuple[int, int]:
    a, b = rng.sample(range(lo, hi + 1), 2)
    return a, b


# ------------------------------------------------------------- generators


def _gen_add(rng):
    a, b = rng.randint(0, 99), rng.randint(0, 99)
    return f"{a} + {b}", str(a + b)


def _gen_subtract(rng):
    a = rng.randint(0, 99)
    b = rng.randint(0, a)
    return f"{a} - {b}", str(a - b)


def _gen_multiply(rng):
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    return f"{a} x {b}", str(a * b)


def _gen_larger(rng):
    a, b = _two_distinct(rng, 0, 999)
    return f"{a}, {b}", str(max(a, b))


def _gen_smaller(rng):
    a, b = _two_distinct(rng, 0, 999)
    return f"{a}, {b}", str(min(a, b))


def _gen_next_number(rng):
    n = rng.randint(0, 998)
    return str(n), str(n + 1)


def _gen_previous_number(rng):
    n = rng.randint(1, 999)
    return str(n), str(n - 1)


def _gen_sum_list(rng):
    nums = _number_list(rng, 3, 5, 1, 20)
    return ", ".join(map(str, nums)), str(sum(nums))


def _gen_max_list(rng):
    nums = _number_list(rng, 3, 6, 0, 99)
    return ", ".join(map(str, nums)), str(max(nums))


def _gen_min_list(rng):
    nums = _number_list(rng, 3, 6, 0, 99)
    return ", ".join(map(str, nums)), str(min(nums))


def _gen_double(rng):
    n = rng.randint(0, 499)
    return str(n), str(2 * n)


def _gen_even_odd(rng):
    n = rng.randint(0, 999)
    return str(n), "even" if n % 2 == 0 else "odd"


_SENTIMENT_TEMPLATES = (
    "The {noun} was {adj}.",
    "What a {adj} {noun}!",
    "I found the {noun} {adj}.",
    "Honestly, the {noun} was {adj}.",
    "That {noun} was truly {adj}.",
    "Our {noun} yesterday was {adj}.",
)


def _gen_sentiment(rng):
    positive = rng.random() < 0.5
    adj = rng.choice(wl.POSITIVE_WORDS if positive else wl.NEGATIVE_WORDS)
    noun = rng.choice(wl.REVIEW_NOUNS)
    text = rng.choice(_SENTIMENT_TEMPLATES).format(noun=noun, adj=adj)
    return text, "positive" if positive else "negative"


def _gen_fruit_veg(rng):
    if rng.random() < 0.5:
        return rng.choice(wl.FRUITS), "fruit"
    return rng.choice(wl.VEGETABLES), "vegetable"


def _gen_contains_a(rng):
    word = rng.choice(wl.COMMON_WORDS)
    return word, "yes" if "a" in word else "no"


def _gen_palindrome(rng):
    word = rng.choice(wl.PALINDROMES if rng.random() < 0.5 else wl.COMMON_WORDS)
    return word, "yes" if word == word[::-1] else "no"


def _gen_vowel_consonant(rng):
    if rng.random() < 0.5:
        return rng.choice(VOWELS), "vowel"
    return rng.choice("bcdfghjklmnpqrstvwxz"), "consonant"


def _gen_reverse(rng):
    word = rng.choice(wl.COMMON_WORDS)
    return word, word[::-1]


def _gen_uppercase(rng):
    text = " ".join(_words(rng, 1, 3))
    return text, text.upper()


def _gen_lowercase(rng):
    words = [w.upper() if rng.random() < 0.5 else w.capitalize() for w in _words(rng, 1, 3)]
    text = " ".join(words)
    return text, text.lower()


def _gen_capitalize(rng):
    words = _words(rng, 2, 3)
    return " ".join(words), " ".join(w.capitalize() for w in words)


def _gen_word_length(rng):
    word = rng.choice(wl.COMMON_WORDS)
    return word, str(len(word))


def _gen_count_vowels(rng):
    word = rng.choice(wl.COMMON_WORDS)
    return word, str(sum(c in VOWELS for c in word))


def _gen_count_consonants(rng):
    word = rng.choice(wl.COMMON_WORDS)
    return word, str(sum(c not in VOWELS for c in word))


def _gen_first_letter(rng):
    word = rng.choice(wl.COMMON_WORDS)
    return word, word[0]


def _gen_last_letter(rng):
    word = rng.choice(wl.COMMON_WORDS)
    return word, word[-1]


def _gen_remove_vowels(rng):
    word = rng.choice(wl.COMMON_WORDS)
    return word, "".join(c for c in word if c not in VOWELS)


def _gen_next_letter(rng):
    letter = rng.choice("abcdefghijklmnopqrstuvwxy")
    return letter, chr(ord(letter) + 1)


def _gen_sort_letters(rng):
    letters = rng.sample("abcdefghijklmnopqrstuvwxyz", 3)
    while letters == sorted(letters):  # an already sorted input teaches nothing
        rng.shuffle(letters)
    return "".join(letters), "".join(sorted(letters))


def _gen_initials(rng):
    names = [rng.choice(wl.FIRST_NAMES)]
    if rng.random() < 0.3:
        names.append(rng.choice(wl.FIRST_NAMES))
    names.append(rng.choice(wl.LAST_NAMES))
    return " ".join(names), "".join(n[0] for n in names)


def _gen_plural(rng):
    if rng.random() < 0.4:
        noun = rng.choice(list(wl.IRREGULAR_PLURALS))
        return noun, wl.IRREGULAR_PLURALS[noun]
    noun = rng.choice(wl.REGULAR_NOUNS)
    return noun, regular_plural(noun)


def _gen_month_after(rng):
    i = rng.randrange(12)
    return wl.MONTHS[i], wl.MONTHS[(i + 1) % 12]


def _gen_day_after(rng):
    i = rng.randrange(7)
    return wl.DAYS[i], wl.DAYS[(i + 1) % 7]


def _gen_day_before(rng):
    i = rng.randrange(7)
    return wl.DAYS[i], wl.DAYS[(i - 1) % 7]


def _gen_number_to_word(rng):
    n = rng.randint(0, 99)
    return str(n), number_to_words(n)


_NUMBER_TEMPLATES = (
    "I bought {n} apples at the market.",
    "There are {n} students in the room.",
    "The train leaves in {n} minutes.",
    "She has read {n} books so far.",
    "We counted {n} birds on the lake.",
    "The recipe needs {n} grams of sugar.",
)


def _gen_extract_number(rng):
    n = rng.randint(2, 999)
    return rng.choice(_NUMBER_TEMPLATES).format(n=n), str(n)


_YEAR_TEMPLATES = (
    "She was born in {y}.",
    "The bridge was finished in {y} after long delays.",
    "In {y}, the company opened its first store.",
    "They moved to Lisbon in {y}.",
    "The novel was first published in {y}.",
    "My grandfather bought this house back in {y}.",
)


def _gen_extract_year(rng):
    y = rng.randint(1800, 2030)
    return rng.choice(_YEAR_TEMPLATES).format(y=y), str(y)


_EMAIL_TEMPLATES = (
    "Please contact {e} for details.",
    "My email is {e}",
    "Send the report to {e} by Friday.",
    "You can reach me at {e} anytime.",
    "For questions, write to {e}.",
)


def _gen_email_domain(rng):
    email, _, domain = _email(rng)
    return rng.choice(_EMAIL_TEMPLATES).format(e=email), domain


def _gen_email_username(rng):
    email, user, _ = _email(rng)
    return rng.choice(_EMAIL_TEMPLATES).format(e=email), user


_NAME_TEMPLATES = (
    "Yesterday I met {n} at the park.",
    "The package was delivered to {n} this morning.",
    "We are having lunch with {n} on the weekend.",
    "Have you seen {n} today?",
    "I think {n} left the keys on the table.",
    "The prize went to {n} after a close vote.",
)


def _gen_extract_name(rng):
    name = rng.choice(wl.FIRST_NAMES)
    return rng.choice(_NAME_TEMPLATES).format(n=name), name


def _gen_date_dmy(rng):
    d = _random_date(rng)
    return d.isoformat(), d.strftime("%d/%m/%Y")


def _gen_date_us(rng):
    d = _random_date(rng)
    return d.isoformat(), d.strftime("%m/%d/%Y")


def _gen_snake_to_camel(rng):
    words = _words(rng, 2, 3)
    return "_".join(words), words[0] + "".join(w.capitalize() for w in words[1:])


def _gen_camel_to_snake(rng):
    words = _words(rng, 2, 3)
    return words[0] + "".join(w.capitalize() for w in words[1:]), "_".join(words)


def _gen_kebab(rng):
    words = _words(rng, 2, 4)
    return " ".join(words), "-".join(words)


def lookup_generator(table: dict[str, str]) -> Callable[[random.Random], tuple[str, str]]:
    """Generator for a lookup family: a uniformly drawn key and its value."""
    keys = tuple(table)  # insertion order, so a seed picks the same key every run

    def generate(rng: random.Random) -> tuple[str, str]:
        key = rng.choice(keys)
        return key, table[key]

    return generate


def _invert(table: dict[str, str]) -> dict[str, str]:
    inverted = {v: k for k, v in table.items()}
    if len(inverted) != len(table):
        raise ValueError("lookup table values are not unique, cannot invert")
    return inverted


# ------------------------------------------------------------ descriptions
# Keyed by family name; (kind, generator, descriptions). The last
# HELD_OUT_DESCRIPTIONS_PER_FAMILY entries of a training family are its
# held-out descriptions (see splits.py), so those are written to differ in
# style from the rest.

_REGISTRY = FamilyRegistry("short")
_spec = _REGISTRY.spec


# --- arithmetic

_spec(
    "add_numbers", "arithmetic", _gen_add,
    "Add the two numbers.",
    "Compute the sum of two integers and answer with the number only.",
    "You will be given an addition like '12 + 7'. Reply with the result.",
    "Addition: give the total.",
    "What is the sum? Respond with just the number.",
    "Work out a + b for the two whole numbers provided and output only the answer, no words.",
    "Example: '23 + 45' gives '68'. Do the same for the input.",
    "Sum the pair of numbers.",
    "Your job is simple arithmetic: take both numbers, add them together, and write the total.",
    "Calculate the result of the plus expression. For instance '5 + 9' -> '14'.",
)

_spec(
    "subtract_numbers", "arithmetic", _gen_subtract,
    "Subtract the second number from the first.",
    "Compute the difference a - b and answer with the number only.",
    "You get an expression like '50 - 8'. Reply with the result.",
    "Subtraction.",
    "What is left after taking away the second number? Give just the number.",
    "Evaluate the minus expression between two whole numbers and output the answer alone.",
    "Example: '90 - 35' gives '55'.",
    "Take the smaller number away from the bigger one, as written, and report the difference.",
    "Your task: perform the subtraction shown and write only the resulting integer.",
    "Find the difference. For instance '17 - 9' -> '8'.",
)

_spec(
    "multiply_digits", "arithmetic", _gen_multiply,
    "Multiply the two digits.",
    "Give the product of two single-digit numbers.",
    "You will see something like '6 x 7'. Answer with the product only.",
    "Times tables: what is a times b?",
    "Compute the multiplication and reply with a number.",
    "Example: '4 x 8' -> '32'. Multiply the numbers in the input the same way.",
    "Product of two small numbers.",
    "Act as a multiplication table for digits 2 to 9 and output the result with no explanation.",
    "Your job: multiply the two numbers separated by an x and write the answer.",
    "Multiply. For instance '3 x 9' is '27'.",
)

_spec(
    "larger_number", "arithmetic", _gen_larger,
    "Return the larger of the two numbers.",
    "Which number is bigger? Answer with that number.",
    "You receive two numbers separated by a comma. Output the greater one.",
    "Max of two.",
    "Compare the two integers and write the one with the higher value.",
    "Example: '412, 87' -> '412'.",
    "Pick the bigger number from the pair and reply with it alone.",
    "Given a pair of whole numbers, identify which is larger and repeat it exactly.",
    "Your task is to look at both numbers and tell me the greater value, digits only.",
    "Find the maximum of the two values. For instance '15, 51' gives '51'.",
)

_spec(
    "smaller_number", "arithmetic", _gen_smaller,
    "Return the smaller of the two numbers.",
    "Which number is less? Answer with that number.",
    "You receive two numbers separated by a comma. Output the lesser one.",
    "Min of two.",
    "Compare the two integers and write the one with the lower value.",
    "Example: '412, 87' -> '87'.",
    "Pick the smaller number from the pair and reply with it alone.",
    "Given a pair of whole numbers, identify which is smaller and repeat it exactly.",
    "Your task is to look at both numbers and tell me the lesser value, digits only.",
    "Find the minimum of the two values. For instance '15, 51' gives '15'.",
)

_spec(
    "next_number", "arithmetic", _gen_next_number,
    "Give the number that comes after the input.",
    "Add one to the number.",
    "Successor of n.",
    "You will see an integer. Reply with the integer that follows it.",
    "What number comes next when counting up? Answer with digits.",
    "Example: '41' -> '42'.",
    "Increment the given whole number by 1 and output it.",
    "Count one step up from the number provided and write only the result.",
    "Your job is to return n + 1 for the number n you are given.",
    "Next integer. For instance '99' becomes '100'.",
)

_spec(
    "previous_number", "arithmetic", _gen_previous_number,
    "Give the number that comes before the input.",
    "Subtract one from the number.",
    "Predecessor of n.",
    "You will see an integer. Reply with the integer just below it.",
    "What number comes right before this one when counting? Answer with digits.",
    "Example: '42' -> '41'.",
    "Decrement the given whole number by 1 and output it.",
    "Count one step down from the number provided and write only the result.",
    "Your job is to return n - 1 for the number n you are given.",
    "Previous integer. For instance '100' becomes '99'.",
)

_spec(
    "sum_of_list", "arithmetic", _gen_sum_list,
    "Add up all the numbers in the list.",
    "Total of a comma-separated list.",
    "You get several numbers separated by commas. Reply with their sum.",
    "Sum the list.",
    "What do these numbers add up to? Give only the total.",
    "Example: '3, 4, 10' -> '17'.",
    "Compute the sum of every integer in the comma-separated input and output one number.",
    "Add the values together and write the result.",
    "Your task: read the list of small numbers, add them all, and answer with the total.",
    "Find the total. For instance '1, 2, 3, 4' gives '10'.",
)

_spec(
    "max_of_list", "arithmetic", _gen_max_list,
    "Return the largest number in the list.",
    "Maximum of a comma-separated list.",
    "You get several numbers separated by commas. Reply with the biggest one.",
    "Max.",
    "Which value in the list is the highest? Answer with that number.",
    "Example: '12, 85, 40' -> '85'.",
    "Scan the comma-separated integers and output the greatest of them.",
    "Find the maximum value and write it alone.",
    "Your task: look through the whole list and tell me the largest number it contains.",
    "Pick the top value. For instance '7, 3, 9, 1' gives '9'.",
)

_spec(
    "min_of_list", "arithmetic", _gen_min_list,
    "Return the smallest number in the list.",
    "Minimum of a comma-separated list.",
    "You get several numbers separated by commas. Reply with the smallest one.",
    "Min.",
    "Which value in the list is the lowest? Answer with that number.",
    "Example: '12, 85, 40' -> '12'.",
    "Scan the comma-separated integers and output the least of them.",
    "Find the minimum value and write it alone.",
    "Your task: look through the whole list and tell me the smallest number it contains.",
    "Pick the bottom value. For instance '7, 3, 9, 1' gives '1'.",
)

_spec(
    "double_number", "arithmetic", _gen_double,
    "Double the number.",
    "Multiply the input by two.",
    "Twice n.",
    "You will see a whole number. Reply with two times that number.",
    "What is this number doubled? Give digits only.",
    "Example: '35' -> '70'.",
    "Compute 2 * n for the given integer and output the result.",
    "Add the number to itself and write the answer.",
    "Your job is to take the integer you are given and return its double, nothing else.",
    "Doubling. For instance '250' becomes '500'.",
)

# --- classification

_spec(
    "even_or_odd", "classification", _gen_even_odd,
    "Say whether the number is even or odd.",
    "Parity of an integer: answer 'even' or 'odd'.",
    "You will see a whole number. Reply even if it divides by two, otherwise odd.",
    "Even or odd?",
    "Classify the number by parity.",
    "Example: '14' -> 'even', '7' -> 'odd'.",
    "Determine if the integer is divisible by 2 and label it even or odd in lowercase.",
    "Is this number even or is it odd? One word.",
    "Your task: look at the last digit of the number and tell me whether the number is even or odd.",
    "Label each number with its parity, for instance '203' is 'odd'.",
)

_spec(
    "sentiment", "classification", _gen_sentiment,
    "Classify the sentiment of the sentence as positive or negative.",
    "Sentiment: positive or negative.",
    "You will read a short review. Reply 'positive' if it is favourable and 'negative' if not.",
    "Is the opinion expressed good or bad? Answer positive or negative.",
    "Decide the polarity of the text.",
    "Example: 'The movie was wonderful.' -> 'positive'.",
    "Read the one-line review and output its sentiment label in lowercase.",
    "Tell whether the writer liked it (positive) or disliked it (negative).",
    "Your job is sentiment analysis of short phrases: answer with exactly one word, positive or negative.",
    "Label the feeling of the review. For instance 'What a dreadful meal!' is 'negative'.",
)

_spec(
    "fruit_or_vegetable", "classification", _gen_fruit_veg,
    "Is it a fruit or a vegetable?",
    "Classify the food item as fruit or vegetable.",
    "You will see the name of a produce item. Answer 'fruit' or 'vegetable'.",
    "Fruit vs vegetable.",
    "Tell me whether this item from the grocery store is a fruit or a vegetable, one word.",
    "Example: 'mango' -> 'fruit', 'carrot' -> 'vegetable'.",
    "Decide which category the food belongs to: fruit or vegetable.",
    "Sort the produce into its group and write the group name in lowercase.",
    "Your task: read the name of a plant food and reply with fruit or vegetable, nothing else.",
    "Categorise the item. For instance 'spinach' is 'vegetable'.",
)

_spec(
    "contains_letter_a", "classification", _gen_contains_a,
    "Does the word contain the letter a? Answer yes or no.",
    "Check for the letter 'a' in the word.",
    "You will see a word. Reply 'yes' if it has an a in it, otherwise 'no'.",
    "Letter a present? yes/no.",
    "Determine whether the lowercase letter a appears anywhere in the given word.",
    "Example: 'table' -> 'yes', 'river' -> 'no'.",
    "Answer yes when the word includes at least one a, and no when it has none.",
    "Search the word for an 'a'.",
    "Your job: scan every letter of the input word and say yes if any of them is a, or no if not.",
    "Is there an a in it? For instance 'castle' gives 'yes'.",
)

_spec(
    "is_palindrome", "classification", _gen_palindrome,
    "Is the word a palindrome? Answer yes or no.",
    "Check whether the word reads the same backwards.",
    "You will see a word. Reply 'yes' if it is spelled the same in reverse, otherwise 'no'.",
    "Palindrome check.",
    "Does this word read identically from left to right and from right to left?",
    "Example: 'level' -> 'yes', 'garden' -> 'no'.",
    "Determine if the word is a palindrome and answer with yes or no in lowercase.",
    "Compare the word with its reverse; say yes when they match and no otherwise.",
    "Your task: decide whether the input is a palindrome, answering with a single word.",
    "Palindrome or not? For instance 'kayak' gives 'yes'.",
)

_spec(
    "vowel_or_consonant", "classification", _gen_vowel_consonant,
    "Is the letter a vowel or a consonant?",
    "Classify a single letter as vowel or consonant.",
    "You will see one lowercase letter. Answer 'vowel' for a, e, i, o, u and 'consonant' otherwise.",
    "Vowel or consonant.",
    "Tell me what kind of letter this is: vowel or consonant.",
    "Example: 'e' -> 'vowel', 'k' -> 'consonant'.",
    "Decide whether the given letter is one of the five vowels.",
    "Label the letter, answering in lowercase with one word.",
    "Your task: look at the single letter you are given and say whether it is a vowel or a consonant.",
    "Letter type. For instance 'o' is 'vowel'.",
)

_spec(
    "animal_class", "classification", lookup_generator(wl.ANIMAL_CLASSES),
    "What class of animal is it? (mammal, bird, fish, amphibian, reptile, insect)",
    "Classify the animal into its biological class.",
    "You will see an animal name. Reply with its class: mammal, bird, fish, amphibian, reptile or insect.",
    "Animal to class.",
    "Which group does this animal belong to? Answer with one lowercase word.",
    "Example: 'whale' -> 'mammal', 'eagle' -> 'bird'.",
    "Name the animal class of the creature given.",
    "Tell whether the animal is a mammal, bird, fish, amphibian, reptile or insect.",
    "Your job is zoology: read the animal's name and answer with the class it belongs to.",
    "Give the taxonomic class. For instance 'frog' is 'amphibian'.",
)

# --- string manipulation

_spec(
    "reverse_word", "string", _gen_reverse,
    "Reverse the word.",
    "Write the word backwards.",
    "You will see a word. Reply with its letters in reverse order.",
    "Spell it backwards.",
    "Output the input string reversed, character by character.",
    "Example: 'garden' -> 'nedrag'.",
    "Reverse the order of the letters and return the result.",
    "Flip the word so the last letter comes first.",
    "Your task: take the given word and write it from the last character to the first.",
    "Mirror the spelling. For instance 'lemon' becomes 'nomel'.",
)

_spec(
    "uppercase", "string", _gen_uppercase,
    "Convert the text to uppercase.",
    "Make every letter a capital letter.",
    "You will see some lowercase words. Reply with the same text in all caps.",
    "ALL CAPS.",
    "Rewrite the input using only upper-case letters, keeping spaces as they are.",
    "Example: 'blue river' -> 'BLUE RIVER'.",
    "Uppercase the string and output it.",
    "Turn the text into capitals.",
    "Your job is to shout: return the exact input but with every letter capitalised.",
    "Change the words to upper case. For instance 'paper cup' becomes 'PAPER CUP'.",
)

_spec(
    "lowercase", "string", _gen_lowercase,
    "Convert the text to lowercase.",
    "Make every letter small.",
    "You will see words with capital letters. Reply with the same text in all lowercase.",
    "lowercase it.",
    "Rewrite the input using only lower-case letters, keeping spaces as they are.",
    "Example: 'BLUE River' -> 'blue river'.",
    "Lowercase the string and output it.",
    "Remove all capitalisation from the text.",
    "Your job is to calm the text down: return the exact input with no capital letters left.",
    "Change the words to lower case. For instance 'PAPER Cup' becomes 'paper cup'.",
)

_spec(
    "capitalize_words", "string", _gen_capitalize,
    "Capitalize the first letter of each word.",
    "Convert the phrase to title case.",
    "You will see lowercase words. Reply with each word starting with a capital letter.",
    "Title Case.",
    "Make the initial letter of every word uppercase and leave the rest lowercase.",
    "Example: 'silver rocket' -> 'Silver Rocket'.",
    "Title-case the input phrase.",
    "Give every word a capital first letter.",
    "Your task: rewrite the phrase as a heading would be written, with each word capitalised.",
    "Capitalise each word. For instance 'house of paper' becomes 'House Of Paper'.",
)

_spec(
    "word_length", "string", _gen_word_length,
    "How many letters does the word have?",
    "Count the characters in the word.",
    "You will see a word. Reply with the number of letters in it.",
    "Word length.",
    "Give the length of the input word as a number.",
    "Example: 'tiger' -> '5'.",
    "Count every letter of the word and output the count.",
    "Measure the word: how long is it?",
    "Your task is to count how many characters make up the given word and answer with digits.",
    "Return len(word). For instance 'bridge' gives '6'.",
)

_spec(
    "count_vowels", "string", _gen_count_vowels,
    "Count the vowels in the word.",
    "How many of the letters are a, e, i, o or u?",
    "You will see a word. Reply with the number of vowels it contains.",
    "Vowel count.",
    "Give the number of vowel letters (a, e, i, o, u) in the input.",
    "Example: 'garden' -> '2'.",
    "Count each occurrence of a, e, i, o and u and output the total.",
    "Tally the vowels.",
    "Your task: go through the word letter by letter, count the vowels, and answer with a number.",
    "Number of vowels. For instance 'ocean' gives '3'.",
)

_spec(
    "count_consonants", "string", _gen_count_consonants,
    "Count the consonants in the word.",
    "How many of the letters are not vowels?",
    "You will see a word. Reply with the number of consonants it contains.",
    "Consonant count.",
    "Give the number of consonant letters (everything except a, e, i, o, u) in the input.",
    "Example: 'garden' -> '4'.",
    "Count each letter that is not a vowel and output the total.",
    "Tally the consonants.",
    "Your task: go through the word letter by letter, count the consonants, and answer with a number.",
    "Number of consonants. For instance 'ocean' gives '2'.",
)

_spec(
    "first_letter", "string", _gen_first_letter,
    "Give the first letter of the word.",
    "What letter does the word start with?",
    "You will see a word. Reply with its initial letter only.",
    "First letter.",
    "Output the opening character of the input word.",
    "Example: 'planet' -> 'p'.",
    "Return just the first character of the word, in lowercase.",
    "Which letter begins this word?",
    "Your task: look at the start of the word and write the single letter found there.",
    "Starting letter. For instance 'violin' gives 'v'.",
)

_spec(
    "last_letter", "string", _gen_last_letter,
    "Give the last letter of the word.",
    "What letter does the word end with?",
    "You will see a word. Reply with its final letter only.",
    "Last letter.",
    "Output the closing character of the input word.",
    "Example: 'planet' -> 't'.",
    "Return just the final character of the word, in lowercase.",
    "Which letter ends this word?",
    "Your task: look at the end of the word and write the single letter found there.",
    "Ending letter. For instance 'violin' gives 'n'.",
)

_spec(
    "remove_vowels", "string", _gen_remove_vowels,
    "Remove all vowels from the word.",
    "Delete a, e, i, o and u from the input.",
    "You will see a word. Reply with the word minus its vowels.",
    "Strip vowels.",
    "Write the word keeping only the consonants, in their original order.",
    "Example: 'garden' -> 'grdn'.",
    "Drop every vowel and output what is left.",
    "Disemvowel the word.",
    "Your task: copy the word but leave out any a, e, i, o or u you find.",
    "Consonants only. For instance 'rocket' becomes 'rckt'.",
)

_spec(
    "next_letter", "string", _gen_next_letter,
    "Give the next letter of the alphabet.",
    "Which letter follows this one?",
    "You will see a lowercase letter. Reply with the letter that comes after it in the alphabet.",
    "Next letter.",
    "Move one position forward in the alphabet and output that letter.",
    "Example: 'c' -> 'd'.",
    "Return the alphabetical successor of the letter.",
    "Shift the letter by one.",
    "Your task: recite the alphabet in your head and tell me the letter right after the one given.",
    "Alphabet successor. For instance 'm' gives 'n'.",
)

_spec(
    "sort_letters", "string", _gen_sort_letters,
    "Sort the letters alphabetically.",
    "Put the three letters in alphabetical order.",
    "You will see three lowercase letters. Reply with them sorted from a to z.",
    "Alphabetize.",
    "Rearrange the characters so they appear in alphabetical order, with no spaces.",
    "Example: 'qbm' -> 'bmq'.",
    "Order the letters from earliest to latest in the alphabet.",
    "Sort the characters of the string.",
    "Your task: take the letters you are given and write them again in alphabetical order.",
    "A to Z order. For instance 'zac' becomes 'acz'.",
)

_spec(
    "initials", "string", _gen_initials,
    "Give the initials of the name.",
    "Write the first letter of each part of the name.",
    "You will see a person's full name. Reply with their initials in capitals, no dots or spaces.",
    "Initials.",
    "Abbreviate the full name to its capital initial letters.",
    "Example: 'Alice Brown' -> 'AB'.",
    "Take the first letter of every name and join them.",
    "What are this person's initials?",
    "Your task: for each word of the person's name, keep only the first capital letter and put them together.",
    "Monogram the name. For instance 'Peter Jack King' gives 'PJK'.",
)

# --- lookup

_spec(
    "country_capital", "lookup", lookup_generator(wl.COUNTRY_CAPITALS),
    "Give the capital city of the country.",
    "What is the capital of this country?",
    "You will see a country name. Reply with its capital city only.",
    "Country to capital.",
    "Name the capital of the given nation.",
    "Example: 'France' -> 'Paris'.",
    "Answer with the city that is the seat of government of the country.",
    "Capital city lookup.",
    "Your task is geography: read the country and tell me its capital, no full sentence.",
    "Return the capital. For instance 'Japan' gives 'Tokyo'.",
)

_spec(
    "capital_country", "lookup", lookup_generator(_invert(wl.COUNTRY_CAPITALS)),
    "Give the country whose capital is this city.",
    "Which country has this city as its capital?",
    "You will see a capital city. Reply with the country it is the capital of.",
    "Capital to country.",
    "Name the nation governed from the given capital.",
    "Example: 'Paris' -> 'France'.",
    "Answer with the country that this capital belongs to.",
    "Reverse capital lookup.",
    "Your task is geography: read the capital city and tell me its country, no full sentence.",
    "Return the country. For instance 'Tokyo' gives 'Japan'.",
)

_spec(
    "english_to_french", "lookup", lookup_generator(wl.ENGLISH_FRENCH),
    "Translate the English word into French.",
    "English to French.",
    "You will see an English word. Reply with its French translation only.",
    "French word for this?",
    "Give the French equivalent of the given English word, without an article.",
    "Example: 'dog' -> 'chien'.",
    "Translate into French, one word.",
    "How do you say this word in French?",
    "Your task: act as an English-French dictionary and answer with the single French word.",
    "Render the word in French. For instance 'bread' becomes 'pain'.",
)

_spec(
    "english_to_spanish", "lookup", lookup_generator(wl.ENGLISH_SPANISH),
    "Translate the English word into Spanish.",
    "English to Spanish.",
    "You will see an English word. Reply with its Spanish translation only.",
    "Spanish word for this?",
    "Give the Spanish equivalent of the given English word, without an article.",
    "Example: 'dog' -> 'perro'.",
    "Translate into Spanish, one word.",
    "How do you say this word in Spanish?",
    "Your task: act as an English-Spanish dictionary and answer with the single Spanish word.",
    "Render the word in Spanish. For instance 'bread' becomes 'pan'.",
)

_spec(
    "antonym", "lookup", lookup_generator(wl.ANTONYMS),
    "Give the opposite of the word.",
    "Antonym.",
    "You will see a word. Reply with the word that means the opposite.",
    "What is the antonym of this word?",
    "Write a single word with the contrary meaning.",
    "Example: 'hot' -> 'cold'.",
    "Return the opposite word.",
    "Find the word meaning the reverse.",
    "Your task: think of the most common opposite of the given word and answer with it alone.",
    "Opposite meaning. For instance 'full' gives 'empty'.",
)

_spec(
    "plural", "lookup", _gen_plural,
    "Give the plural form of the noun.",
    "Pluralize.",
    "You will see a singular English noun. Reply with its plural.",
    "What is the plural of this word?",
    "Write the noun in its plural form, applying irregular forms where English uses them.",
    "Example: 'box' -> 'boxes', 'mouse' -> 'mice'.",
    "Make the word plural.",
    "Singular to plural.",
    "Your task: turn the singular noun into the form used for more than one, spelled correctly.",
    "Plural form. For instance 'city' becomes 'cities'.",
)

_spec(
    "animal_sound", "lookup", lookup_generator(wl.ANIMAL_SOUNDS),
    "What sound does the animal make?",
    "Animal to sound.",
    "You will see an animal. Reply with the word for the sound it makes.",
    "Name the noise of this animal.",
    "Give the one-word sound associated with the given animal.",
    "Example: 'cow' -> 'moo'.",
    "Return the animal's typical sound.",
    "Which sound is this animal known for?",
    "Your task: think of what the animal says and answer with that single sound word.",
    "Animal noise. For instance 'duck' gives 'quack'.",
)

_spec(
    "chemical_symbol", "lookup", lookup_generator(wl.CHEMICAL_SYMBOLS),
    "Give the chemical symbol of the element.",
    "Element to symbol.",
    "You will see a chemical element's name. Reply with its symbol from the periodic table.",
    "What is the symbol for this element?",
    "Write the one- or two-letter periodic table abbreviation for the element.",
    "Example: 'Oxygen' -> 'O', 'Iron' -> 'Fe'.",
    "Return the element's chemical symbol with correct capitalisation.",
    "Periodic table symbol lookup.",
    "Your task is chemistry: read the element name and answer with its symbol only.",
    "Abbreviate the element. For instance 'Sodium' gives 'Na'.",
)

_spec(
    "object_color", "lookup", lookup_generator(wl.OBJECT_COLORS),
    "What color is this thing?",
    "Give the typical colour of the object.",
    "You will see the name of a thing. Reply with the colour it usually has.",
    "Object to color.",
    "Name the usual colour of the given item in one lowercase word.",
    "Example: 'banana' -> 'yellow'.",
    "Return the color most people associate with it.",
    "Which colour is it normally?",
    "Your task: picture the object and answer with its most typical color, one word.",
    "Color lookup. For instance 'grass' gives 'green'.",
)

_spec(
    "month_after", "lookup", _gen_month_after,
    "Give the month that comes after this one.",
    "Next month.",
    "You will see a month name. Reply with the following month (December is followed by January).",
    "Which month follows?",
    "Name the month right after the given one in the calendar.",
    "Example: 'March' -> 'April'.",
    "Return the next month of the year.",
    "Month successor.",
    "Your task: go one month forward in the calendar from the month given and write its name.",
    "Following month. For instance 'December' gives 'January'.",
)

_spec(
    "day_after", "lookup", _gen_day_after,
    "Give the day of the week after this one.",
    "Next day.",
    "You will see a weekday name. Reply with the day that follows it.",
    "What day comes after?",
    "Name the day of the week right after the given one (Sunday is followed by Monday).",
    "Example: 'Tuesday' -> 'Wednesday'.",
    "Return tomorrow's weekday.",
    "Weekday successor.",
    "Your task: if today is the day given, tell me what day tomorrow is.",
    "Following day. For instance 'Sunday' gives 'Monday'.",
)

_spec(
    "day_before", "lookup", _gen_day_before,
    "Give the day of the week before this one.",
    "Previous day.",
    "You will see a weekday name. Reply with the day that precedes it.",
    "What day comes before?",
    "Name the day of the week right before the given one (Monday is preceded by Sunday).",
    "Example: 'Wednesday' -> 'Tuesday'.",
    "Return yesterday's weekday.",
    "Weekday predecessor.",
    "Your task: if today is the day given, tell me what day yesterday was.",
    "Preceding day. For instance 'Monday' gives 'Sunday'.",
)

_spec(
    "number_to_word", "lookup", _gen_number_to_word,
    "Write the number in English words.",
    "Spell out the number.",
    "You will see a number from 0 to 99. Reply with it written in words, lowercase, tens and units joined by a hyphen.",
    "Digits to words.",
    "Convert the integer into its English name.",
    "Example: '42' -> 'forty-two'.",
    "Return the number spelled in letters.",
    "How is this number written out?",
    "Your task: read the digits and write the same number as English words, as on a cheque.",
    "Number in words. For instance '17' gives 'seventeen'.",
)

# --- extraction

_spec(
    "extract_number", "extraction", _gen_extract_number,
    "Extract the number from the sentence.",
    "What number is mentioned?",
    "You will read a sentence containing one number. Reply with that number in digits.",
    "Pull out the number.",
    "Find the numeric value in the text and output it alone.",
    "Example: 'There are 24 students in the room.' -> '24'.",
    "Return the only number that appears in the input.",
    "Number extraction.",
    "Your task: scan the sentence for the quantity written in digits and answer with just it.",
    "Give the count from the sentence. For instance 'I bought 7 apples.' gives '7'.",
)

_spec(
    "extract_year", "extraction", _gen_extract_year,
    "Extract the year from the sentence.",
    "Which year is mentioned?",
    "You will read a sentence that mentions a year. Reply with the four-digit year.",
    "Find the year.",
    "Output the year that appears in the text, nothing else.",
    "Example: 'She was born in 1987.' -> '1987'.",
    "Return the date's year from the input.",
    "Year extraction.",
    "Your task: read the sentence and answer with the year in which the event happened.",
    "Pull out the year. For instance 'In 1850, the town grew.' gives '1850'.",
)

_spec(
    "email_domain", "extraction", _gen_email_domain,
    "Extract the domain of the email address.",
    "What is the email domain?",
    "You will read a sentence with an email address. Reply with the part after the @ sign.",
    "Email domain.",
    "Output the domain name of the email address mentioned in the text.",
    "Example: 'Write to bob@mail.org today.' -> 'mail.org'.",
    "Return everything after the @ in the email address.",
    "Which domain is the email hosted on?",
    "Your task: find the email address in the message and answer with its domain only.",
    "Get the mail domain. For instance 'alice@shop.io' gives 'shop.io'.",
)

_spec(
    "email_username", "extraction", _gen_email_username,
    "Extract the username of the email address.",
    "What is the email's local part?",
    "You will read a sentence with an email address. Reply with the part before the @ sign.",
    "Email username.",
    "Output the user name of the email address mentioned in the text.",
    "Example: 'Write to bob@mail.org today.' -> 'bob'.",
    "Return everything before the @ in the email address.",
    "Whose mailbox is it? Give the name before the @.",
    "Your task: find the email address in the message and answer with its username only.",
    "Get the mail user. For instance 'alice.smith@shop.io' gives 'alice.smith'.",
)

_spec(
    "extract_name", "extraction", _gen_extract_name,
    "Extract the person's name from the sentence.",
    "Who is mentioned?",
    "You will read a sentence about someone. Reply with the person's first name.",
    "Find the name.",
    "Output the name of the person that appears in the text.",
    "Example: 'Yesterday I met Alice at the park.' -> 'Alice'.",
    "Return the proper name of the person in the input.",
    "Name extraction.",
    "Your task: read the sentence and answer with the name of the person it talks about.",
    "Pull out the person. For instance 'Have you seen Noah today?' gives 'Noah'.",
)

# --- formatting

_spec(
    "date_iso_to_dmy", "formatting", _gen_date_dmy,
    "Convert the date from YYYY-MM-DD to DD/MM/YYYY.",
    "Reformat the ISO date as day/month/year.",
    "You will see a date like 2024-03-05. Reply with it as 05/03/2024.",
    "ISO to European date.",
    "Rewrite the date with the day first, then the month, then the year, separated by slashes.",
    "Example: '1999-12-31' -> '31/12/1999'.",
    "Change the date format to DD/MM/YYYY, keeping leading zeros.",
    "Day/month/year format.",
    "Your task: take the year-month-day date and write it in the British style with slashes.",
    "Format the date for Europe. For instance '2010-07-04' becomes '04/07/2010'.",
)

_spec(
    "date_iso_to_us", "formatting", _gen_date_us,
    "Convert the date from YYYY-MM-DD to MM/DD/YYYY.",
    "Reformat the ISO date as month/day/year.",
    "You will see a date like 2024-03-05. Reply with it as 03/05/2024.",
    "ISO to American date.",
    "Rewrite the date with the month first, then the day, then the year, separated by slashes.",
    "Example: '1999-12-31' -> '12/31/1999'.",
    "Change the date format to MM/DD/YYYY, keeping leading zeros.",
    "Month/day/year format.",
    "Your task: take the year-month-day date and write it in the US style with slashes.",
    "Format the date for the United States. For instance '2010-07-04' becomes '07/04/2010'.",
)

_spec(
    "snake_to_camel", "formatting", _gen_snake_to_camel,
    "Convert snake_case to camelCase.",
    "Rewrite the identifier in camel case.",
    "You will see words joined by underscores. Reply with them joined in camelCase.",
    "snake_case -> camelCase.",
    "Remove the underscores and capitalise every word except the first.",
    "Example: 'paper_cup' -> 'paperCup'.",
    "Turn the snake case variable name into a camelCase one.",
    "Camel-case the name.",
    "Your task: you are renaming a variable for JavaScript; convert the underscore name to camelCase.",
    "Join in camel case. For instance 'red_silver_apple' becomes 'redSilverApple'.",
)

_spec(
    "camel_to_snake", "formatting", _gen_camel_to_snake,
    "Convert camelCase to snake_case.",
    "Rewrite the identifier in snake case.",
    "You will see a camelCase name. Reply with the words in lowercase joined by underscores.",
    "camelCase -> snake_case.",
    "Split the name at each capital letter, lowercase everything and join with underscores.",
    "Example: 'paperCup' -> 'paper_cup'.",
    "Turn the camelCase variable name into a snake_case one.",
    "Snake-case the name.",
    "Your task: you are renaming a variable for Python; convert the camelCase name to snake_case.",
    "Join with underscores. For instance 'redSilverApple' becomes 'red_silver_apple'.",
)

_spec(
    "kebab_case", "formatting", _gen_kebab,
    "Join the words with hyphens.",
    "Convert the phrase to kebab-case.",
    "You will see lowercase words separated by spaces. Reply with them joined by hyphens.",
    "spaces -> hyphens.",
    "Replace every space in the phrase with a dash.",
    "Example: 'big red house' -> 'big-red-house'.",
    "Make a URL slug from the words.",
    "Hyphenate the phrase.",
    "Your task: turn the phrase into a web address slug by putting a hyphen between the words.",
    "Kebab case. For instance 'silver moon light' becomes 'silver-moon-light'.",
)




def _merge(*registries: dict[str, TaskFamily]) -> dict[str, TaskFamily]:
    merged: dict[str, TaskFamily] = {}
    for registry in registries:
        for name, family in registry.items():
            if name in merged:
                raise ValueError(f"duplicate task family {name!r}")
            merged[name] = family
    return merged


SHORT_FAMILIES: dict[str, TaskFamily] = _REGISTRY.build()
# Short-answer families first, in their historical order, then the open-ended
# ones (open_families.py): code that walks FAMILIES in order sees the old
# families exactly where they were.
FAMILIES: dict[str, TaskFamily] = _merge(SHORT_FAMILIES, OPEN_FAMILIES)

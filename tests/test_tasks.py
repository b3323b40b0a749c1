"""The offline task suite: family registry, generators, splits and the JSONL format."""

from __future__ import annotations

import json
import random
import re

import pytest

from t2l_vllm.tasks import (
    EXAMPLE_KEYS,
    FAMILIES,
    HELD_OUT_DESCRIPTIONS_PER_FAMILY,
    HELD_OUT_FAMILIES,
    TaskFamily,
    held_out_descriptions,
    held_out_families,
    make_examples,
    read_jsonl,
    train_descriptions,
    training_families,
    write_jsonl,
)
from t2l_vllm.tasks import wordlists as wl

ALL_NAMES = sorted(FAMILIES)


def _samples(name: str, n: int = 50, seed: int = 1234) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [FAMILIES[name].generate(rng) for _ in range(n)]


# ----------------------------------------------------------------- registry


def test_at_least_40_families_with_10_unique_descriptions():
    assert len(FAMILIES) >= 40
    for name, fam in FAMILIES.items():
        assert fam.name == name
        assert len(set(fam.descriptions)) == len(fam.descriptions) >= 10, name


def test_descriptions_unique_across_families():
    # A description shared by two families would make the task ambiguous.
    seen: dict[str, str] = {}
    for fam in FAMILIES.values():
        for d in fam.descriptions:
            assert d not in seen, f"{d!r} in {seen.get(d)} and {fam.name}"
            seen[d] = fam.name


def test_task_family_validation():
    gen = FAMILIES["add_numbers"].generate
    ten = tuple(f"description {i}" for i in range(10))
    TaskFamily("ok", "kind", ten, gen)
    with pytest.raises(ValueError):
        TaskFamily("", "kind", ten, gen)
    with pytest.raises(ValueError):
        TaskFamily("few", "kind", ten[:9], gen)
    with pytest.raises(ValueError):
        TaskFamily("dup", "kind", ten[:9] + (ten[0],), gen)


# ------------------------------------------------------------------- splits


def test_held_out_families_disjoint_from_training():
    held = {f.name for f in held_out_families()}
    train = {f.name for f in training_families()}
    assert len(held) >= 8
    assert held == set(HELD_OUT_FAMILIES)
    assert not held & train
    assert held | train == set(FAMILIES)
    # Every held-out family has a training family of the same kind to transfer from.
    train_kinds = {f.kind for f in training_families()}
    for fam in held_out_families():
        assert fam.kind in train_kinds, fam.name


def test_held_out_descriptions_disjoint_from_training_descriptions():
    all_train_descs = set()
    for fam in training_families():
        train, held = train_descriptions(fam), held_out_descriptions(fam.name)
        assert len(held) == HELD_OUT_DESCRIPTIONS_PER_FAMILY
        assert not set(train) & set(held)
        assert set(train) | set(held) == set(fam.descriptions)
        all_train_descs |= set(train)
    for fam in held_out_families():
        assert held_out_descriptions(fam) == fam.descriptions
        assert not set(fam.descriptions) & all_train_descs
        with pytest.raises(ValueError):
            train_descriptions(fam)


# --------------------------------------------------------------- generators


@pytest.mark.parametrize("name", ALL_NAMES)
def test_generator_deterministic_varied_and_short(name):
    a, b = _samples(name), _samples(name)
    assert a == b
    assert len({inp for inp, _ in a}) >= 5
    for inp, target in a:
        assert isinstance(inp, str) and isinstance(target, str)
        assert inp.strip() and "\n" not in inp
        assert target.strip() == target and target
        assert "\n" not in target and len(target) <= 40


def test_arithmetic_answers():
    for inp, t in _samples("add_numbers"):
        a, b = map(int, inp.split(" + "))
        assert int(t) == a + b
    for inp, t in _samples("subtract_numbers"):
        a, b = map(int, inp.split(" - "))
        assert int(t) == a - b >= 0
    for inp, t in _samples("multiply_digits"):
        a, b = map(int, inp.split(" x "))
        assert int(t) == a * b
    for name, fn in [("larger_number", max), ("smaller_number", min), ("max_of_list", max),
                     ("min_of_list", min), ("sum_of_list", sum)]:
        for inp, t in _samples(name):
            assert int(t) == fn(int(x) for x in inp.split(", ")), name
    for inp, t in _samples("even_or_odd"):
        assert t == ("even" if int(inp) % 2 == 0 else "odd")


def test_string_answers():
    for inp, t in _samples("reverse_word"):
        assert t == "".join(reversed(inp))
    for inp, t in _samples("count_vowels"):
        assert int(t) == len(re.findall("[aeiou]", inp))
    for inp, t in _samples("count_consonants"):
        assert int(t) == len(re.findall("[^aeiou]", inp))
    for inp, t in _samples("remove_vowels"):
        assert t == re.sub("[aeiou]", "", inp)
    for inp, t in _samples("sort_letters"):
        assert t == "".join(sorted(inp)) and t != inp
    for inp, t in _samples("snake_to_camel"):
        head, *rest = inp.split("_")
        assert t == head + "".join(w[0].upper() + w[1:] for w in rest)
    for inp, t in _samples("date_iso_to_dmy"):
        y, m, d = inp.split("-")
        assert t == f"{d}/{m}/{y}"


def test_lookup_answers():
    for inp, t in _samples("country_capital"):
        assert wl.COUNTRY_CAPITALS[inp] == t
    for inp, t in _samples("capital_country"):
        assert wl.COUNTRY_CAPITALS[t] == inp
    irregular = 0
    for inp, t in _samples("plural", n=200):
        if inp in wl.IRREGULAR_PLURALS:
            irregular += 1
            assert t == wl.IRREGULAR_PLURALS[inp]
            continue
        if inp[-1] in "sxz" or inp[-2:] in ("ch", "sh"):
            expected = inp + "es"
        elif inp[-1] == "y" and inp[-2] not in "aeiou":
            expected = inp[:-1] + "ies"
        else:
            expected = inp + "s"
        assert t == expected, inp
    assert 0 < irregular < 200
    for inp, t in _samples("month_after"):
        assert wl.MONTHS.index(t) == (wl.MONTHS.index(inp) + 1) % 12
    for inp, t in _samples("number_to_word"):
        assert t.replace("-", " ").split()[0] in wl.UNIT_WORDS + wl.TENS_WORDS


def test_wordlists_are_one_to_one_where_inverted():
    assert len(set(wl.COUNTRY_CAPITALS.values())) == len(wl.COUNTRY_CAPITALS)
    assert not set(wl.FRUITS) & set(wl.VEGETABLES)
    assert not set(wl.POSITIVE_WORDS) & set(wl.NEGATIVE_WORDS)
    assert all("y" not in w for w in wl.COMMON_WORDS)
    assert all(p == p[::-1] for p in wl.PALINDROMES)
    assert all(w != w[::-1] for w in wl.COMMON_WORDS)


# ------------------------------------------------------------ make_examples


def test_make_examples_deterministic_and_respects_splits():
    a = make_examples(None, "train", 5, seed=7)
    assert a == make_examples(None, "train", 5, seed=7)
    assert a != make_examples(None, "train", 5, seed=8)
    assert len(a) == 5 * len(training_families())
    for ex in a:
        assert tuple(ex) == EXAMPLE_KEYS
        assert ex["task"] not in HELD_OUT_FAMILIES
        assert ex["description"] in train_descriptions(ex["task"])

    hd = make_examples(None, "heldout-desc", 5, seed=7)
    for ex in hd:
        assert ex["task"] not in HELD_OUT_FAMILIES
        assert ex["description"] in held_out_descriptions(ex["task"])

    hf = make_examples(None, "heldout-family", 5, seed=7)
    assert {ex["task"] for ex in hf} == set(HELD_OUT_FAMILIES)
    for ex in hf:
        assert ex["description"] in FAMILIES[ex["task"]].descriptions

    with pytest.raises(ValueError):
        make_examples(["smaller_number"], "train", 1, seed=0)
    with pytest.raises(ValueError):
        make_examples(["larger_number"], "heldout-family", 1, seed=0)
    with pytest.raises(ValueError):
        make_examples(None, "test", 1, seed=0)


def test_make_examples_per_family_stream_independent_of_other_families():
    alone = make_examples(["reverse_word"], "train", 20, seed=3)
    mixed = make_examples(["add_numbers", "reverse_word"], "train", 20, seed=3)
    assert mixed[20:] == alone
    assert len({ex["description"] for ex in alone}) > 1


# -------------------------------------------------------------------- JSONL


def test_jsonl_round_trip(tmp_path):
    examples = make_examples(None, "heldout-family", 3, seed=0)
    examples.append({"task": "t", "description": "Traduis en français.", "input": "eau", "target": "water"})
    path = tmp_path / "ex.jsonl"
    write_jsonl(path, examples)
    assert read_jsonl(path) == examples
    assert len(path.read_text(encoding="utf-8").splitlines()) == len(examples)


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        json.dumps(["a", "list"]),
        json.dumps({"task": "t", "description": "d", "input": "i"}),
        json.dumps({"task": "t", "description": "d", "input": "i", "target": "o", "extra": "x"}),
        json.dumps({"task": "t", "description": "d", "input": "i", "target": 3}),
        json.dumps({"task": "t", "description": " ", "input": "i", "target": "o"}),
    ],
)
def test_read_jsonl_rejects_bad_line_with_line_number(tmp_path, bad):
    good = json.dumps({"task": "t", "description": "d", "input": "i", "target": "o"})
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join([good, good, bad, good]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 3\b"):
        read_jsonl(path)


def test_write_jsonl_rejects_bad_example(tmp_path):
    with pytest.raises(ValueError, match="example 1"):
        write_jsonl(tmp_path / "x.jsonl", [{"task": "t", "description": "d", "input": "i"}])

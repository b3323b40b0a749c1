"""The offline task suite: family registry, generators, splits and the JSONL format."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from t2l_vllm.tasks import (
    ANSWER_SELECTORS,
    ANSWER_TYPES,
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
SHORT_NAMES = sorted(n for n, f in FAMILIES.items() if f.answer == "short")
OPEN_NAMES = sorted(n for n, f in FAMILIES.items() if f.answer == "open")
ROOT = Path(__file__).resolve().parent.parent


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
    assert TaskFamily("ok", "kind", ten, gen).answer == "short"
    TaskFamily("ok", "kind", ten, gen, answer="open")
    with pytest.raises(ValueError, match="answer"):
        TaskFamily("bad", "kind", ten, gen, answer="long")


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


@pytest.mark.parametrize("name", SHORT_NAMES)
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
    # No answer selector: the short-answer suite, as before the open-ended families.
    assert len(a) == 5 * len(training_families("short"))
    for ex in a:
        assert tuple(ex) == EXAMPLE_KEYS
        assert ex["task"] not in HELD_OUT_FAMILIES
        assert ex["description"] in train_descriptions(ex["task"])

    hd = make_examples(None, "heldout-desc", 5, seed=7)
    for ex in hd:
        assert ex["task"] not in HELD_OUT_FAMILIES
        assert ex["description"] in held_out_descriptions(ex["task"])

    hf = make_examples(None, "heldout-family", 5, seed=7)
    assert {ex["task"] for ex in hf} == {f.name for f in held_out_families("short")}
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


# ---------------------------------------------------- shipped evaluation files


@pytest.mark.parametrize("split, n_per_task", [("heldout-family", 20), ("heldout-desc", 5)])
def test_documented_commands_still_reproduce_the_shipped_files(tmp_path, split, n_per_task):
    # `t2l-vllm make-tasks --split SPLIT [--n-per-task 5] --out F` (README; CLI default seed
    # 1000) is make_examples(None, ...) + write_jsonl: the open-ended families must not leak in.
    out = tmp_path / "tasks.jsonl"
    write_jsonl(out, make_examples(None, split, n_per_task, seed=1000))
    assert out.read_bytes() == (ROOT / "examples" / "tasks" / f"{split}.jsonl").read_bytes()


# ------------------------------------------------------- open-ended families


def test_at_least_a_third_of_the_families_are_open_ended():
    assert len(OPEN_NAMES) >= 27 and 3 * len(OPEN_NAMES) >= len(FAMILIES)
    assert len(SHORT_NAMES) == 54  # the original suite, untouched
    assert list(FAMILIES)[: len(SHORT_NAMES)] == [n for n in FAMILIES if FAMILIES[n].answer == "short"]
    assert {f.answer for f in FAMILIES.values()} == set(ANSWER_TYPES)
    # Open kinds are their own, so a held-out open family's sibling is open too.
    assert not {FAMILIES[n].kind for n in OPEN_NAMES} & {FAMILIES[n].kind for n in SHORT_NAMES}


def test_open_held_out_families_have_open_training_siblings():
    held = [f.name for f in held_out_families("open")]
    assert 0.15 <= len(held) / len(OPEN_NAMES) <= 0.3
    assert [f.name for f in held_out_families("short")] + held == [f.name for f in held_out_families()]
    train_kinds = {f.kind for f in training_families("open")}
    for name in held:
        assert FAMILIES[name].kind in train_kinds, name
    assert {f.name for f in training_families("open")} == set(OPEN_NAMES) - set(held)


def test_answer_selector():
    seed, n = 11, 2
    short = make_examples(None, "train", n, seed)
    assert short == make_examples(None, "train", n, seed, answer="short")
    opened = make_examples(None, "train", n, seed, answer="open")
    both = make_examples(None, "train", n, seed, answer="all")
    assert {ex["task"] for ex in opened} == {f.name for f in training_families("open")}
    assert both == short + opened  # registry order: short families first
    held = make_examples(None, "heldout-family", n, seed, answer="open")
    assert {ex["task"] for ex in held} == {f.name for f in held_out_families("open")}
    desc = make_examples(None, "heldout-desc", n, seed, answer="open")
    assert all(ex["description"] in held_out_descriptions(ex["task"]) for ex in desc)
    # An explicit family list needs no selector; a given one must match it.
    assert make_examples(["items_to_bullets"], "train", 1, seed)[0]["task"] == "items_to_bullets"
    assert make_examples(["items_to_bullets", "add_numbers"], "train", 1, seed, answer="all")
    with pytest.raises(ValueError, match="open"):
        make_examples(["add_numbers"], "train", 1, seed, answer="open")
    with pytest.raises(ValueError, match="answer must be"):
        make_examples(None, "train", 1, seed, answer="long")
    with pytest.raises(ValueError, match="answer must be"):
        training_families("long")
    assert set(ANSWER_SELECTORS) == {*ANSWER_TYPES, "all"}


# Words that would put the task into the input instead of the description.
_INSTRUCTION_WORDS = re.compile(
    r"\b(rewrite|translate|summari[sz]e|classify|extract|convert|json|markdown|csv|bullet|uppercase|"
    r"answer in|reply|format)\b",
    re.IGNORECASE,
)


@pytest.mark.parametrize("name", OPEN_NAMES)
def test_open_generator_deterministic_varied_and_tidy(name):
    a = _samples(name, n=100)
    random.seed(0)  # the global random state must not matter
    assert a == _samples(name, n=100)
    assert len({inp for inp, _ in a}) >= 20
    assert len({t for _, t in a}) >= 4
    for inp, target in a:
        assert inp and target and inp.strip() == inp and target.strip() == target
        assert all(line and line.strip() == line for line in target.split("\n")), target
        assert len(target) <= 260, target
        assert target != inp
        assert not _INSTRUCTION_WORDS.search(inp), inp


def test_open_descriptions_are_unique_varied_and_short():
    for name in OPEN_NAMES:
        descs = FAMILIES[name].descriptions
        assert len(descs) >= 10
        assert all(len(d) <= 160 for d in descs), name
        assert len({d.split()[0] for d in descs}) >= 6, name  # not one template reworded


# -- every description names what defines the answer

_LABELS = {
    "ticket_category": ("billing", "technical", "shipping", "account"),
    "email_intent": ("schedule", "payment", "complaint", "thanks"),
    "news_topic": ("sports", "politics", "science", "business"),
    "review_aspect": ("price", "quality", "delivery", "service", "positive", "negative"),
}
_JSON_KEYS = {
    "extract_contact_json": ("name", "company", "email"),
    "extract_order_json": ("order", "item", "quantity", "price", "city"),
    "extract_event_json": ("event", "date", "time", "place"),
    "extract_person_json": ("name", "age", "city", "job"),
}


@pytest.mark.parametrize("name, words", [*_LABELS.items(), *_JSON_KEYS.items(),
                                         ("records_to_markdown_table", ("Name", "Age", "City")),
                                         ("records_to_csv", ("item", "quantity", "price"))])
def test_descriptions_name_the_labels_keys_and_columns(name, words):
    for d in FAMILIES[name].descriptions:
        for w in words:
            assert re.search(rf"\b{w}\b", d), (name, w, d)


def test_label_answers():
    for name, labels in _LABELS.items():
        seen = set()
        for _, t in _samples(name, n=200):
            parts = t.split(": ") if name == "review_aspect" else [t]
            assert all(p in labels for p in parts), t
            seen.add(t)
        assert len(seen) >= 4, name


def test_json_answers():
    for name, keys in _JSON_KEYS.items():
        for inp, t in _samples(name):
            obj = json.loads(t)
            assert tuple(obj) == keys
            for value in obj.values():
                assert str(value) in inp or f"{value:.2f}".rstrip("0") in inp or f"{value:.2f}" in inp, (value, inp)
    for _, t in _samples("extract_order_json"):
        obj = json.loads(t)
        assert isinstance(obj["order"], int) and isinstance(obj["quantity"], int)
        assert isinstance(obj["price"], float)
    for _, t in _samples("extract_person_json"):
        assert isinstance(json.loads(t)["age"], int)


def _bullet_items(target: str) -> list[str]:
    lines = target.split("\n")
    assert all(line.startswith("- ") for line in lines), target
    return [line[2:] for line in lines]


def test_list_answers():
    for inp, t in _samples("items_to_bullets"):
        items = _bullet_items(t)
        assert 3 <= len(items) <= 5
        positions = [inp.index(item) for item in items]
        assert positions == sorted(positions)  # in the order mentioned
    for inp, t in _samples("names_to_sorted_bullets"):
        items = _bullet_items(t)
        assert items == sorted(items) and all(item in inp for item in items)
    for inp, t in _samples("steps_to_numbered_list"):
        lines = t.split("\n")
        for i, line in enumerate(lines, start=1):
            number, step = line.split(". ", 1)
            assert number == str(i) and step[0].isupper()
            assert step[0].lower() + step[1:] in inp
        assert inp.startswith("First ") and inp.count(",") == len(lines) - 1
    for inp, t in _samples("answer_as_bullets"):
        items = _bullet_items(t)
        assert len(items) == inp.count(",") + 2  # "a, b and c" names len(items) things
        for item in items:
            key, value = item.split(": ")
            assert key in inp
            assert value in (wl.COUNTRY_CAPITALS.get(key), wl.ANIMAL_CLASSES.get(key),
                             wl.CHEMICAL_SYMBOLS.get(key.capitalize()))


def _markdown_rows(target: str) -> list[list[str]]:
    lines = target.split("\n")
    assert re.fullmatch(r"\|(---\|)+", lines[1]), target
    rows = []
    for line in [lines[0], *lines[2:]]:
        assert line.startswith("| ") and line.endswith(" |")
        rows.append(line[2:-2].split(" | "))
    assert len({len(r) for r in rows}) == 1 and lines[1].count("---") == len(rows[0])
    return rows


def test_table_answers():
    import csv
    import io

    for inp, t in _samples("records_to_markdown_table"):
        header, *rows = _markdown_rows(t)
        assert header == ["Name", "Age", "City"] and len(rows) == 2
        for name, age, city in rows:
            assert re.search(rf"{name}\b.*\b{age}\b.*\b{city}\b", inp)
    for inp, t in _samples("records_to_csv"):
        header, *rows = list(csv.reader(io.StringIO(t)))
        assert header == ["item", "quantity", "price"] and 2 <= len(rows) <= 3
        for item, quantity, price in rows:
            assert re.search(rf"\b{quantity} {item}\b.*\${price} each", inp)
    for inp, t in _samples("csv_to_markdown_table"):
        assert _markdown_rows(t) == list(csv.reader(io.StringIO(inp)))


def test_summary_answers():
    for inp, t in _samples("summarize_weather"):
        temps = [int(x) for x in re.findall(r"(-?\d+)C\b", inp)]
        rain = re.search(r"rain (\d+)%", inp, re.IGNORECASE).group(1)
        lo, hi = min(temps), max(temps)
        assert (f"{lo} to {hi} degrees" if lo != hi else f"{lo} degrees") in t
        assert t.endswith(f", {rain}% chance of rain.") and len(t.split()) <= 20
    for inp, t in _samples("summarize_sales"):
        units = [int(u) for u in re.findall(r"\b(\d+)\b", inp)]
        verb = "rose" if units[-1] > units[0] else "fell"
        assert f" {verb} from {units[0]} in " in t and f" to {units[-1]} in " in t
        peak = max(units)
        assert (f"peaking at {peak}" in t) == (peak not in (units[0], units[-1]))
    for inp, t in _samples("summarize_review_scores"):
        scores = {a.lower(): int(s) for a, s in re.findall(r"(\w+):? (\d)/5", inp)}
        best, worst = max(scores, key=scores.get), min(scores, key=scores.get)
        assert f"best on {best} ({scores[best]}/5)" in t and f"worst on {worst} ({scores[worst]}/5)" in t
    for inp, t in _samples("summarize_match_report"):
        m = re.search(r"(\w+) (\d), (\w+) (\d)\.", inp) or re.search(r"(\w+) v (\w+)\. Result (\d)-(\d)", inp)
        if " v " in inp:
            home, away, h, a = m.groups()
        else:
            home, h, away, a = m.groups()
        h, a = int(h), int(a)
        if h == a:
            assert t.startswith(f"The {home} and the {away} drew {h}-{a} ")
        else:
            (wt, wg), (lt, lg) = sorted([(home, h), (away, a)], key=lambda x: -x[1])
            assert t.startswith(f"The {wt} beat the {lt} {wg}-{lg} ")
    for inp, t in _samples("summarize_meeting"):
        owner = re.search(r"Action: (\w+) to ", inp).group(1)
        assert f"; {owner} will " in t and t.count(" agreed to ") == 1


def test_rewrite_answers():
    for inp, t in _samples("rewrite_past_tense"):
        assert len(inp.split()) == len(t.split()) and t != inp
    for inp, t in _samples("rewrite_future_tense"):
        assert t.count(" will ") == inp.count(".") and len(t.split()) == len(inp.split()) + inp.count(".")
    for inp, t in _samples("rewrite_third_person"):
        assert re.search(r"\b(I|my|am)\b", inp) and not re.search(r"\b(I|my|My|am)\b", t)
    for inp, t in _samples("polite_request"):
        commands = [c[0].lower() + c[1:] for c in inp[:-1].split(". ")]
        assert t == f"Could you please {' and '.join(commands)}?"
    for inp, t in _samples("passive_voice"):
        for src, dst in zip(inp[:-1].split(". "), t[:-1].split(". ")):
            obj, agent = re.fullmatch(r"(.+) (?:was|were) \w+ by (.+)", dst).groups()
            assert src.lower().startswith(agent.lower()) and src.lower().endswith(obj.lower())
    casual_markers = re.compile(r"\b(gonna|wanna|btw|tbh|asap|kinda|nope|yeah|hey|hi|cool)\b|n't|'s")
    for inp, t in _samples("rewrite_formal"):
        assert casual_markers.search(inp) and not casual_markers.search(t) and t[0].isupper()
    for inp, t in _samples("rewrite_casual"):
        assert casual_markers.search(t) and not casual_markers.search(inp)


def test_constrained_answers():
    for inp, t in _samples("answer_in_five_words", n=200):
        assert len(t.split()) == 5 and t.endswith(".") and inp.endswith("?")
    for inp, t in _samples("answer_in_uppercase"):
        assert t == t.upper() and t.endswith(".")
    for inp, t in _samples("answer_full_sentence", n=200):
        assert t.startswith("The ") and t.endswith(".")
        country = re.fullmatch(r"(?:What|Which city) is the capital of (?:the )?(.+)\?", inp)
        if country:
            assert t.endswith(f" is {wl.COUNTRY_CAPITALS[country.group(1)]}.")


def test_phrase_translation_agreement():
    from t2l_vllm.tasks.open_families import _de_np, _es_np, _fr_np

    assert _fr_np("bird", "white", True, False) == "l'oiseau blanc"
    assert _fr_np("car", "white", True, True) == "les voitures blanches"
    assert _fr_np("hat", "grey", False, True) == "des chapeaux gris"
    assert _fr_np("door", "green", False, False) == "une porte verte"
    assert _es_np("car", "white", True, True) == "los coches blancos"
    assert _es_np("flower", "blue", False, True) == "unas flores azules"
    assert _es_np("house", "red", True, False) == "la casa roja"
    assert _de_np("car", "white", True, True) == "die weißen Autos"
    assert _de_np("hat", "green", False, False) == "ein grüner Hut"
    assert _de_np("cat", "black", False, False) == "eine schwarze Katze"
    assert _de_np("book", "red", False, False) == "ein rotes Buch"
    assert _de_np("dog", "red", False, True) == "rote Hunde"
    assert _de_np("table", "yellow", True, False) == "der gelbe Tisch"
    for name, question_start in [("phrase_to_french", "Où"), ("phrase_to_spanish", "¿Dónde"),
                                 ("phrase_to_german", "Wo")]:
        for inp, t in _samples(name):
            assert inp.count("?") + inp.count(".") == t.count("?") + t.count(".")
            assert inp.count("Where") == t.count(question_start)


# -- the token budget: training uses at most 128 tokens for prompt and answer


def _smollm2_tokenizer():
    from t2l_vllm import defaults, envs

    transformers = pytest.importorskip("transformers")
    converted = envs.cache_dir() / "models" / f"{defaults.BASE_NAME}-bf16-v{defaults.CONVERSION_VERSION}"
    if (converted / "tokenizer.json").is_file():
        return transformers.AutoTokenizer.from_pretrained(str(converted))
    try:
        gguf = defaults.default_base_gguf()
    except ValueError as e:
        pytest.skip(str(e))
    return transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def test_open_examples_fit_the_training_budget_of_the_base_model():
    from t2l_vllm.prompts import answer_ids, prompt_ids

    tok = _smollm2_tokenizer()
    for name in OPEN_NAMES:
        fam = FAMILIES[name]
        longest = max(fam.descriptions, key=lambda d: len(tok(d)["input_ids"]))
        for inp, target in _samples(name, n=100, seed=5):
            answer = len(answer_ids(tok, target))
            prompt = max(len(prompt_ids(tok, style, longest, inp)) for style in ("base+desc", "t2l"))
            assert answer <= 64 and prompt + answer <= 128, (name, prompt, answer, inp, target)


def test_open_answers_fit_the_tiny_test_tokenizer(tiny_base_dir):
    # The training tests run every family through the tiny model's 512-token BPE, where text
    # costs more tokens: an answer of 128 or more tokens would be refused there.
    from transformers import AutoTokenizer

    from t2l_vllm.prompts import answer_ids

    tok = AutoTokenizer.from_pretrained(str(tiny_base_dir))
    for name in OPEN_NAMES:
        longest = max(len(answer_ids(tok, t)) for _, t in _samples(name, n=300, seed=9))
        assert longest <= 110, (name, longest)

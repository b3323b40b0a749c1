"""The compositional task suite (issue 13): grid, descriptions, targets, splits, shipped files, training hooks."""

from __future__ import annotations

import datetime
import json
import random
import re
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import pytest

from t2l_vllm.tasks import FAMILIES as V1_FAMILIES
from t2l_vllm.tasks import held_out_families as v1_held_out_families
from t2l_vllm.tasks import read_jsonl, write_jsonl
from t2l_vllm.tasks.compositional import splits as cs
from t2l_vllm.tasks.compositional.describe import STYLES
from t2l_vllm.tasks.compositional.formats import FORMATS
from t2l_vllm.tasks.compositional.inputs import INPUT_TYPES
from t2l_vllm.tasks.compositional.operations import GROUPS, OPERATIONS
from t2l_vllm.tasks.compositional.suite import COMBINATIONS, FAMILIES, Generator, build_grid
from t2l_vllm.tasks.suites import get_suite, nested_order, select_training_families
from t2l_vllm.training.data import sample_step

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "examples" / "tasks" / cs.SUITE_VERSION
TRAIN = cs.training_families()
TRAIN_NAMES = {f.name for f in TRAIN}


def _samples(name: str, n: int = 30, seed: int = 1234) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [FAMILIES[name].generate(rng) for _ in range(n)]


# ------------------------------------------------------------------- the grid


def test_at_least_300_families_of_both_answer_types_over_every_group():
    assert len(FAMILIES) >= 300
    answers = Counter(f.answer for f in FAMILIES.values())
    assert answers["short"] >= 100 and answers["open"] >= 100, answers
    assert {f.kind for f in FAMILIES.values()} == set(GROUPS)
    for name, c in COMBINATIONS.items():
        assert name == f"{c.op.name}.{c.inp.name}.{c.fmt.name}"
        assert c.family.kind == c.op.group and c.family.answer == c.fmt.answer
        assert c.inp.name in c.op.inputs and c.fmt.accepts(c.op, c.inp)
    # Names never collide with the original suite's (eval looks a task up in both).
    assert not set(FAMILIES) & set(V1_FAMILIES)


def test_every_part_is_used_and_combined():
    assert {c.op.name for c in COMBINATIONS.values()} == set(OPERATIONS)
    assert {c.inp.name for c in COMBINATIONS.values()} == set(INPUT_TYPES)
    assert {c.fmt.name for c in COMBINATIONS.values()} == set(FORMATS)
    formats_per_op = defaultdict(set)
    for c in COMBINATIONS.values():
        formats_per_op[c.op.name].add(c.fmt.name)
    assert all(len(fmts) >= 3 for fmts in formats_per_op.values()), formats_per_op
    ops_per_format = Counter(c.fmt.name for c in COMBINATIONS.values())
    assert all(n >= 5 for n in ops_per_format.values()), ops_per_format
    # Operations that accept several input types are combined with more than one.
    multi = [op for op in OPERATIONS.values() if len(op.inputs) > 1]
    assert len(multi) >= 10
    assert all({c.inp.name for c in COMBINATIONS.values() if c.op is op} == set(op.inputs) for op in multi)


def test_every_family_has_20_unique_descriptions_in_every_style():
    seen: dict[str, str] = {}
    # The mirror families' descriptions (the original suite's) appear nowhere in the grid.
    mirror_descriptions = {d for f in v1_held_out_families("short") for d in f.descriptions}
    for name, c in COMBINATIONS.items():
        descriptions = c.family.descriptions
        assert len(set(descriptions)) == len(descriptions) >= 20, name
        assert len(c.styles) == len(descriptions) and set(c.styles) == set(STYLES), name
        # The held-out pair comes from two different styles; training keeps every style.
        held = c.styles[-cs.HELD_OUT_DESCRIPTIONS_PER_FAMILY:]
        assert len(set(held)) == len(held), name
        assert set(c.styles[: -len(held)]) == set(STYLES), name
        for d in descriptions:
            assert d not in seen, f"{d!r} in {seen.get(d)} and {name}"
            assert d not in mirror_descriptions, d
            assert re.search(r"\{[A-Za-z_]+\}", d) is None, d  # no unfilled template slot
            seen[d] = name
    # Across the suite, every style shows up among the held-out descriptions too.
    held_styles = Counter(s for c in COMBINATIONS.values() for s in c.styles[-cs.HELD_OUT_DESCRIPTIONS_PER_FAMILY:])
    assert set(held_styles) == set(STYLES), held_styles


def test_descriptions_name_the_operation_and_the_format():
    # Every description carries a phrase of its operation (or its noun), and unless the format
    # is plain (the bare answer, what a terse description implies) one of its format: an
    # instruction, the terse fragment, the spelled-out shape or a worked example.
    for c in COMBINATIONS.values():
        op_bits = [max(p.split("{input}"), key=len).strip(" ,").lower() for p in c.op.does + c.op.asks]
        op_bits.append(c.op.noun.lower())
        format_bits = [i.lower() for i in c.fmt.instructions(c.op)] + [c.fmt.shape(c.op).lower()]
        format_bits += [c.fmt.terse_fragment(c.op).strip(", ").lower()] if c.fmt.terse_fragment(c.op) else []
        for d in c.family.descriptions:
            low = d.lower()
            assert any(bit in low for bit in op_bits), (c.name, d)
            if c.fmt.name != "plain":
                assert any(bit in low for bit in format_bits) or "'" in d, (c.name, d)


# ------------------------------------------------------------------- targets


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_targets_are_deterministic_checkable_and_sized(name):
    c = COMBINATIONS[name]
    samples = _samples(name)
    assert samples == _samples(name)
    assert len({inp for inp, _ in samples}) > 1, name
    for inp, target in samples:
        assert inp.strip() == inp and inp, (name, inp)
        assert c.fmt.check(target), (name, target)
        if c.family.answer == "short":
            assert "\n" not in target and len(target) <= 80, (name, target)
        else:
            assert len(target) <= 240, (name, target)


def _answer(op: str, fmt: str, value, inp: str = "INPUT") -> str:
    """The target (op, format) writes for a chosen input value (bypassing the input generator)."""
    return FORMATS[fmt].render(OPERATIONS[op].apply(value), OPERATIONS[op], inp)


@pytest.mark.parametrize("op, value, expected", [
    ("reverse_word", "candle", "eldnac"),
    ("count_vowels", ("silver", "moon"), 4),
    ("sort_letters", "tiger", "egirt"),
    ("double_letters", "cup", "ccuupp"),
    ("count_words", "Alice bakes bread for the family every morning.", 8),
    ("longest_word", ("cat", "window", "sun"), "window"),
    ("unique_items", ("cup", "hat", "cup", "map", "hat"), ["cup", "hat", "map"]),
    ("alphabet_position", "e", 5),
    ("largest", (12, 47, 3), 47),
    ("difference", (12, 47), 35),
    ("round_up_ten", 41, 50),
    ("round_down_ten", 49, 40),
    ("keep_odd", (4, 43, 99, 10), [43, 99]),
    ("weekday_of", datetime.date(2024, 2, 29), "Thursday"),
    ("next_date", datetime.date(2024, 2, 28), "2024-02-29"),
    ("next_date", datetime.date(2023, 12, 31), "2024-01-01"),
    ("previous_date", datetime.date(2024, 3, 1), "2024-02-29"),
    ("iso_to_text", datetime.date(2021, 3, 5), "March 5, 2021"),
    ("iso_to_dmy", datetime.date(2021, 3, 5), "05/03/2021"),
    ("time_24_to_12", (0, 7), "12:07 AM"),
    ("time_24_to_12", (12, 30), "12:30 PM"),
    ("time_12_to_24", (21, 5), "21:05"),
    ("month_before", 0, "December"),
    ("is_leap_year", 1900, "no"),
    ("is_leap_year", 2000, "yes"),
    ("is_prime", 91, "no"),
    ("has_double_letter", "pepper", "yes"),
    ("am_or_pm", (11, 59), "AM"),
    ("initials", ("Ada", "Lovelace"), "AL"),
    ("snake_to_camel", ("red", "apple", "pie"), "redApplePie"),
    ("add_thousands_separators", 1234567, "1,234,567"),
    ("phone_format", "5551234567", "(555) 123-4567"),
    ("zero_pad", 7, "0007"),
    ("number_to_words", 42, "forty-two"),
    ("plural", "knife", "knives"),
    ("plural", "box", "boxes"),
])
def test_operation_answers(op, value, expected):
    assert OPERATIONS[op].apply(value) == expected


def test_formats_render_what_they_say():
    assert _answer("add", "plain", (12, 47)) == "59"
    assert _answer("largest", "json_answer", (12, 47)) == '{"answer": 47}'
    assert _answer("capital_of", "json_answer", "France") == '{"answer": "Paris"}'
    assert _answer("sort_ascending", "json_answer", (5, 1, 3)) == '{"answer": [1, 3, 5]}'
    assert _answer("capital_of", "uppercase", "France") == "PARIS"
    assert _answer("capital_of", "sentence", "France") == "The capital is Paris."
    assert _answer("sort_ascending", "bullets", (5, 1, 3)) == "- 1\n- 3\n- 5"
    assert _answer("sort_ascending", "numbered", (5, 1, 3)) == "1. 1\n2. 3\n3. 5"
    assert _answer("sort_ascending", "plain", (5, 1, 3)) == "1, 3, 5"
    assert _answer("capital_of", "json_record", "France", "France") == '{"input": "France", "capital": "Paris"}'
    assert _answer("word_length", "table", "lamp", "lamp") == "| Input | Answer |\n|---|---|\n| lamp | 4 |"
    assert _answer("word_length", "in_words", "seventeenth") == "eleven"
    assert _answer("reverse_word", "brackets", "rf") == "[fr]"
    assert _answer("word_length", "answer_prefix", "cat") == "Answer: 3"
    for fmt in FORMATS.values():  # every constraint but plain's rejects a bare two-word answer
        assert fmt.check("apple river") == (fmt.name == "plain"), fmt.name


def test_ambiguous_inputs_are_drawn_again():
    # A tie for the longest word, an already sorted list, a number on a multiple of ten: redrawn.
    for name, bad in [("longest_word.word_list.plain", lambda t, i: sum(len(w) == len(t) for w in i.split(", ")) > 1),
                      ("sort_ascending.number_list.plain", lambda t, i: t == i),
                      ("round_up_ten.number.plain", lambda t, i: int(i) % 10 == 0)]:
        for inp, target in _samples(name, n=200):
            assert not bad(target, inp), (name, inp, target)


def test_generators_validate_and_give_up_clearly():
    never = replace(OPERATIONS["halve"], valid=lambda n: False)
    with pytest.raises(ValueError, match="rejected"):
        Generator(never, INPUT_TYPES["number"], FORMATS["plain"])(random.Random(0))
    with pytest.raises(ValueError, match="group"):
        replace(OPERATIONS["halve"], group="maths")
    with pytest.raises(ValueError, match="labels"):
        replace(OPERATIONS["is_prime"], labels="")
    with pytest.raises(ValueError, match="slot"):
        replace(OPERATIONS["halve"], does=("halve it", "divide by two"))
    with pytest.raises(ValueError, match="start with 'the '"):
        replace(INPUT_TYPES["number"], phrases=("a number", "the number"))


# ------------------------------------------------------------------- splits


def _parts(split: str) -> set[tuple[str, str, str]]:
    return {(c.op.name, c.inp.name, c.fmt.name) for c in COMBINATIONS.values() if cs.split_of(c.name) == split}


def test_splits_partition_the_grid():
    fams = {s: {f.name for f in cs.families_of_split(s)} for s in cs.SPLITS}
    assert fams["heldout-desc"] == fams["train"]
    grid = fams["train"] | fams["heldout-combination"] | fams["heldout-family"]
    assert grid == set(FAMILIES)
    assert len(fams["train"]) + len(fams["heldout-combination"]) + len(fams["heldout-family"]) == len(FAMILIES)
    assert len(fams["heldout-combination"]) >= 20 and len(fams["heldout-family"]) >= 20
    for split in ("train", "heldout-combination", "heldout-family"):
        kinds = {COMBINATIONS[n].op.group for n in fams[split]}
        answers = {COMBINATIONS[n].family.answer for n in fams[split]}
        assert kinds == set(GROUPS) and answers == {"short", "open"}, (split, kinds, answers)


def test_heldout_combinations_join_parts_seen_apart_in_training():
    train = _parts("train")
    trained_pairs = {(op, fmt) for op, _, fmt in train}
    for op, inp, fmt in _parts("heldout-combination"):
        assert (op, fmt) not in trained_pairs
        assert any(o == op for o, _, _ in train) and any(f == fmt for _, _, f in train)
        assert (op, inp) in {(o, i) for o, i, _ in train}  # the operation was trained on this input too


def test_heldout_families_have_a_part_training_never_saw():
    train = _parts("train")
    trained_ops, trained_formats = {o for o, _, _ in train}, {f for _, _, f in train}
    held = _parts("heldout-family")
    assert {o for o, _, _ in held} >= set(cs.HELD_OUT_OPERATIONS)
    assert {f for _, _, f in held} >= set(cs.HELD_OUT_FORMATS)
    for op, _, fmt in held:
        assert op not in trained_ops or fmt not in trained_formats, (op, fmt)
    # Every unseen operation has a trained sibling of its group (most a mirror).
    for op in cs.HELD_OUT_OPERATIONS:
        assert any(OPERATIONS[o].group == OPERATIONS[op].group for o in trained_ops), op


def test_no_held_out_description_is_a_training_description():
    training = {d for f in TRAIN for d in cs.train_descriptions(f)}
    assert len(training) == sum(len(f.descriptions) - cs.HELD_OUT_DESCRIPTIONS_PER_FAMILY for f in TRAIN)
    for split in ("heldout-desc", "heldout-combination", "heldout-family", "mirror"):
        for fam in cs.families_of_split(split):
            assert not training & set(cs.split_descriptions(fam, split)), (split, fam.name)
    for fam in cs.families_of_split("heldout-family"):
        with pytest.raises(ValueError, match="held-out"):
            cs.train_descriptions(fam)
    with pytest.raises(ValueError, match="does not belong"):
        cs.make_examples([TRAIN[0].name], "heldout-family", 1, seed=0)


def test_mirror_split_is_the_original_short_held_out_families_outside_training():
    v1_mirrors = v1_held_out_families("short")
    assert len(v1_mirrors) == 11
    mirror = cs.families_of_split("mirror")
    assert [f.name for f in mirror] == [f.name for f in v1_mirrors]
    assert all(m is V1_FAMILIES[m.name] for m in mirror)  # the original definitions, not copies
    assert not {m.name for m in mirror} & set(FAMILIES)
    assert cs.split_descriptions(mirror[0], "mirror") == mirror[0].descriptions


def test_no_compositional_family_computes_a_mirror_family():
    # Where a plain-format compositional family and a mirror family share inputs, some answer
    # must differ: otherwise training would hold the mirror task itself. Input spaces are small
    # (letters, days, words), so inputs coincide whenever the input types match.
    ours = {}
    for name, c in COMBINATIONS.items():
        if c.fmt.name == "plain":
            rng = random.Random(8)
            ours[name] = dict(c.family.generate(rng) for _ in range(200))
    overlaps = 0
    for mirror in cs.families_of_split("mirror"):
        rng = random.Random(7)
        theirs = dict(mirror.generate(rng) for _ in range(200))
        for name, answers in ours.items():
            shared = set(theirs) & set(answers)
            if len(shared) >= 5:
                overlaps += 1
                assert any(theirs[i] != answers[i] for i in shared), (mirror.name, name)
    assert overlaps >= 5  # the check has inputs in common to compare on


def test_held_out_combinations_follow_the_per_operation_rule():
    ops = [op for op, _ in cs.HELD_OUT_COMBINATIONS]
    assert len(ops) == len(set(ops)) >= 15  # at most one held-out format per operation
    assert not set(ops) & set(cs.HELD_OUT_OPERATIONS)
    assert not {fmt for _, fmt in cs.HELD_OUT_COMBINATIONS} & set(cs.HELD_OUT_FORMATS)


# ------------------------------------------------------------- determinism


def test_examples_are_deterministic_to_the_byte(tmp_path):
    for i in range(2):
        write_jsonl(tmp_path / f"{i}.jsonl", cs.make_examples(None, "heldout-combination", 3, seed=5))
    assert (tmp_path / "0.jsonl").read_bytes() == (tmp_path / "1.jsonl").read_bytes()
    assert cs.make_examples(None, "heldout-combination", 3, seed=5) != cs.make_examples(
        None, "heldout-combination", 3, seed=6
    )


def test_adding_parts_changes_no_other_family():
    # The grid without two operations (one of them a mirror): every remaining family is the
    # same (formats drawn, descriptions, examples); only links to the removed mirror go.
    operations = {k: v for k, v in OPERATIONS.items() if k not in ("digit_sum", "shortest_word")}
    smaller = build_grid(operations=operations)
    assert set(smaller) == {n for n in COMBINATIONS if not n.startswith(("digit_sum.", "shortest_word."))}
    for name, c in smaller.items():
        assert c.family.descriptions == COMBINATIONS[name].family.descriptions, name
        assert c.mirror == ("" if c.op.name == "longest_word" else COMBINATIONS[name].mirror)
    for name in list(smaller)[::25]:
        rng_a, rng_b = random.Random(3), random.Random(3)
        assert [smaller[name].family.generate(rng_a) for _ in range(5)] == [
            COMBINATIONS[name].family.generate(rng_b) for _ in range(5)
        ]


def test_heldout_desc_uses_each_held_out_description_once():
    examples = cs.make_examples(None, "heldout-desc", cs.HELD_OUT_DESCRIPTIONS_PER_FAMILY, seed=1)
    by_task = defaultdict(set)
    for ex in examples:
        by_task[ex["task"]].add(ex["description"])
    assert all(descs == set(FAMILIES[t].descriptions[-2:]) for t, descs in by_task.items())
    assert len(by_task) == len(TRAIN)


# ------------------------------------------------ shipped evaluation files

# The README's commands (`t2l-vllm make-tasks --suite compositional ...`, default seed 1000).
SHIPPED_FILES = [
    ("train-sample", "train", 1, 0),
    ("heldout-desc", "heldout-desc", 2, 120),
    ("heldout-combination", "heldout-combination", 6, 0),
    ("heldout-family", "heldout-family", 2, 0),
    ("mirror", "mirror", 10, 0),
]


@pytest.mark.parametrize("stem, split, n_per_task, max_families", SHIPPED_FILES)
def test_documented_commands_reproduce_the_shipped_files(tmp_path, stem, split, n_per_task, max_families):
    from t2l_vllm.cli import build_parser, cmd_make_tasks

    out = tmp_path / f"{stem}.jsonl"
    argv = ["make-tasks", "--suite", "compositional", "--split", split, "--n-per-task", str(n_per_task),
            "--out", str(out)] + (["--max-families", str(max_families)] if max_families else [])
    assert cmd_make_tasks(build_parser().parse_args(argv)) == 0
    assert out.read_bytes() == (SHIPPED / f"{stem}.jsonl").read_bytes()


def test_shipped_files_sizes_and_coverage():
    sizes = {stem: len(read_jsonl(SHIPPED / f"{stem}.jsonl")) for stem, *_ in SHIPPED_FILES}
    assert sizes["mirror"] == 110
    for stem in ("heldout-desc", "heldout-combination", "heldout-family"):
        assert 150 <= sizes[stem] <= 300, sizes
    desc = read_jsonl(SHIPPED / "heldout-desc.jsonl")
    assert {FAMILIES[ex["task"]].kind for ex in desc} == set(GROUPS)


def test_mirror_file_is_a_prefix_of_the_original_heldout_family_file():
    # Old and new checkpoints are compared on the very same mirror examples.
    original = defaultdict(list)
    for ex in read_jsonl(ROOT / "examples" / "tasks" / "heldout-family.jsonl"):
        original[ex["task"]].append(ex)
    mirror = defaultdict(list)
    for ex in read_jsonl(SHIPPED / "mirror.jsonl"):
        mirror[ex["task"]].append(ex)
    assert set(mirror) == {f.name for f in v1_held_out_families("short")}
    assert all(mirror[t] == original[t][: len(mirror[t])] for t in mirror)


def test_v1_make_tasks_without_new_flags_is_unchanged(tmp_path):
    from t2l_vllm.cli import build_parser, cmd_make_tasks

    for split, n in [("heldout-family", 20), ("heldout-desc", 5)]:
        out = tmp_path / f"{split}.jsonl"
        cmd_make_tasks(build_parser().parse_args(["make-tasks", "--split", split, "--n-per-task", str(n),
                                                  "--out", str(out)]))
        assert out.read_bytes() == (ROOT / "examples" / "tasks" / f"{split}.jsonl").read_bytes()
    with pytest.raises(ValueError, match="not a split of the v1 suite"):
        cmd_make_tasks(build_parser().parse_args(["make-tasks", "--split", "mirror", "--out", str(out)]))


def test_eval_scores_compositional_families_by_their_answer_type():
    from t2l_vllm.evaluation.score import answer_type

    open_name = next(n for n, f in FAMILIES.items() if f.answer == "open")
    short_name = next(n for n, f in FAMILIES.items() if f.answer == "short")
    assert answer_type(open_name) == "open" and answer_type(short_name) == "short"


# ------------------------------------------------------------- token budget


def test_examples_fit_the_training_budget_of_the_base_model():
    # Training gives prompt + answer 128 tokens; open answers stay under 64, and the
    # description fits beside the input and answer when it is in the prompt (t2l+desc,
    # the multi-task LoRA). The chat template's cost is measured once and added.
    from tests.test_tasks import _smollm2_tokenizer
    from t2l_vllm.prompts import answer_ids, prompt_ids

    tok = _smollm2_tokenizer()
    template = len(prompt_ids(tok, "base+desc", "d", "i")) - len(tok("d")["input_ids"]) - len(tok("i")["input_ids"])
    n_tokens = lambda text: len(tok(text)["input_ids"])  # noqa: E731
    for name, fam in FAMILIES.items():
        longest_description = max(n_tokens(d) for d in fam.descriptions)
        samples = _samples(name, n=20, seed=5)
        longest_input = max(n_tokens(i) for i, _ in samples)
        longest_answer = max(len(answer_ids(tok, t)) for _, t in samples)
        assert longest_answer <= (32 if fam.answer == "short" else 64), (name, longest_answer)
        total = template + longest_description + longest_input + longest_answer
        assert total <= 128, (name, total)


def test_answers_fit_the_tiny_test_tokenizer(tiny_base_dir):
    from transformers import AutoTokenizer

    from t2l_vllm.prompts import answer_ids

    tok = AutoTokenizer.from_pretrained(str(tiny_base_dir))
    longest = max(len(answer_ids(tok, t)) for name in FAMILIES for _, t in _samples(name, n=10, seed=9))
    assert longest <= 110


# ------------------------------------------------------------- training hooks


@pytest.mark.parametrize("answer", ["all", "short", "open"])
def test_max_families_subsets_are_nested_and_cover_every_group_early(answer):
    suite = get_suite("compositional")
    everything = select_training_families(suite, answer)
    sizes = [n for n in (25, 50, 100, 200) if n < len(everything)]
    subsets = [{f.name for f in select_training_families(suite, answer, n)} for n in sizes]
    assert len(sizes) >= 3 and [len(s) for s in subsets] == sizes
    assert all(a < b for a, b in zip(subsets, subsets[1:] + [{f.name for f in everything}]))
    order = nested_order(everything, suite.operation_of)
    groups = {f.kind for f in everything}
    assert {f.kind for f in order[: len(groups)]} == groups
    # An operation comes back only once every operation of its group has had a family.
    ops_of_group = defaultdict(set)
    for f in everything:
        ops_of_group[f.kind].add(suite.operation_of(f))
    seen = defaultdict(set)
    for f in order:
        op = suite.operation_of(f)
        assert op not in seen[f.kind] or seen[f.kind] == ops_of_group[f.kind], (f.name, len(seen[f.kind]))
        seen[f.kind].add(op)
    # Subsets keep the suite's order, so the whole suite as a "subset" is the same run as no subset.
    assert select_training_families(suite, answer, len(everything)) == everything
    assert select_training_families(suite, answer, 25) == [f for f in everything if f.name in subsets[0]]


def test_max_families_is_validated():
    suite = get_suite("compositional")
    with pytest.raises(ValueError, match="only"):
        select_training_families(suite, "all", 10_000)
    with pytest.raises(ValueError, match=">= 0"):
        select_training_families(suite, "all", -1)
    v1 = get_suite("v1")
    v1_subset = select_training_families(v1, "short", 10)
    assert len(v1_subset) == 10 and len({f.kind for f in v1_subset}) == len({f.kind for f in v1.training_families("short")})


def test_sibling_map_prefers_mirrors_then_group_mates():
    siblings = cs.sibling_map(TRAIN)
    with_mirror = [c for c in COMBINATIONS.values() if c.name in TRAIN_NAMES and c.mirror in TRAIN_NAMES]
    assert len(with_mirror) >= 50
    for c in with_mirror:
        assert siblings[c.name] == (c.mirror,)
        assert COMBINATIONS[c.mirror].op.mirror == c.op.name
    for name, partners in siblings.items():
        c = COMBINATIONS[name]
        assert name not in partners and set(partners) <= TRAIN_NAMES
        for p in partners:
            assert COMBINATIONS[p].op.group == c.op.group and COMBINATIONS[p].fmt == c.fmt
    assert sum(bool(p) for p in siblings.values()) >= 0.9 * len(TRAIN)


@pytest.mark.parametrize("suite_name", ["compositional", "v1"])
def test_sibling_batches_put_a_sibling_in_the_step(suite_name):
    suite = get_suite(suite_name)
    families = suite.training_families(suite.default_answer)
    siblings = suite.siblings(families)
    paired = 0
    for step in range(40):
        examples = sample_step(families, 8, 3, step, suite.train_descriptions, siblings)
        names = [ex["task"] for ex in examples]
        assert len(names) == len(set(names)) == 8
        for name in names:
            if siblings[name]:  # paired: with one of its siblings, or as the sibling another brought
                partners = set(siblings[name]) | {other for other in names if name in siblings[other]}
                assert partners & set(names), (step, name, names)
                paired += 1
        assert examples == sample_step(families, 8, 3, step, suite.train_descriptions, siblings)
    assert paired >= 200
    # Without the flag a step rarely holds a mirror pair by chance; with it, often.
    if suite_name == "compositional":
        mirrors = {c.name: c.mirror for c in COMBINATIONS.values()}

        def mirror_pairs(steps):
            return sum(mirrors.get(ex["task"]) in {e["task"] for e in step} for step in steps for ex in step)

        plain = mirror_pairs(sample_step(families, 8, 3, s, suite.train_descriptions) for s in range(40))
        flagged = mirror_pairs(sample_step(families, 8, 3, s, suite.train_descriptions, siblings) for s in range(40))
        assert flagged > 5 * max(1, plain), (plain, flagged)


def test_default_sampling_is_the_original_draw():
    # Without siblings sample_step must draw exactly as before --sibling-batches existed.
    from t2l_vllm.tasks.splits import family_seed, train_descriptions, training_families

    families = training_families("short")
    for step in range(5):
        rng = random.Random(family_seed(0, f"step-{step}"))
        expected = []
        for fam in rng.sample(families, 8):
            inp, target = fam.generate(rng)
            expected.append({"task": fam.name, "description": rng.choice(train_descriptions(fam)),
                             "input": inp, "target": target})
        assert sample_step(families, 8, 0, step) == expected


def test_new_options_are_part_of_the_run_config_and_old_runs_resume(tmp_path):
    from dataclasses import asdict

    from t2l_vllm.training import loop
    from t2l_vllm.training.peft_lora import MultitaskConfig
    from t2l_vllm.training.reconstruction import ReconConfig
    from t2l_vllm.training.sft import SFTConfig

    for config, new_keys in [(SFTConfig(), ("suite", "max_families", "sibling_batches")),
                             (MultitaskConfig(), ("suite",)), (ReconConfig(library="lib"), ("suite",))]:
        run = tmp_path / type(config).__name__
        run.mkdir()
        old = {k: v for k, v in asdict(config).items() if k not in new_keys}  # a run folder from before
        (run / loop.RUN_CONFIG_NAME).write_text(json.dumps(old))
        loop.start_run(run, config)  # resumes, recording the defaults
        assert json.loads((run / loop.RUN_CONFIG_NAME).read_text()) == asdict(config)
        changed = type(config)(**{**asdict(config), "suite": "compositional"})
        with pytest.raises(ValueError, match="differs in suite"):
            loop.start_run(run, changed)
    run = tmp_path / "sft-subset"
    loop.start_run(run, SFTConfig(suite="compositional", max_families=25, sibling_batches=True))
    with pytest.raises(ValueError, match="max_families, sibling_batches"):
        loop.start_run(run, SFTConfig(suite="compositional"))
    for bad in ({"suite": "v2"}, {"max_families": -1}):
        with pytest.raises(ValueError):
            SFTConfig(**bad)


def test_cli_threads_the_suite_and_its_default_answer():
    from t2l_vllm.cli import _answer, build_parser

    parser = build_parser()
    args = parser.parse_args(["train-sft", "--out", "x", "--suite", "compositional", "--max-families", "25",
                              "--sibling-batches"])
    assert (args.suite, args.max_families, args.sibling_batches, _answer(args)) == ("compositional", 25, True, "all")
    args = parser.parse_args(["train-sft", "--out", "x"])
    assert (args.suite, args.max_families, args.sibling_batches, _answer(args)) == ("v1", 0, False, "short")
    for command in (["train-oracles", "--out", "x"], ["train-multitask", "--out", "x"],
                    ["train-recon", "--out", "x", "--library", "l"], ["confidence-index", "--hypernet", "h"]):
        args = parser.parse_args(command + ["--suite", "compositional", "--answer", "open"])
        assert (args.suite, _answer(args)) == ("compositional", "open")
        assert _answer(parser.parse_args(command)) == "short"


def test_sft_trains_on_a_compositional_subset_with_sibling_batches(tiny_base_dir, tiny_hypernet_config, tmp_path):
    from t2l_vllm.training.sft import SFTConfig, train_sft

    config = SFTConfig(steps=2, lr=1e-3, warmup_steps=1, save_every=2, suite="compositional", max_families=12,
                       sibling_batches=True, tasks_per_batch=4)
    ckpt = train_sft(tiny_hypernet_config, tiny_base_dir, tmp_path / "run", config)
    assert (ckpt / "model.safetensors").is_file()
    saved = json.loads((tmp_path / "run" / "run_config.json").read_text())
    assert (saved["suite"], saved["max_families"], saved["sibling_batches"]) == ("compositional", 12, True)
    from t2l_vllm.confidence import load_confidence

    index = load_confidence(ckpt)
    families = select_training_families("compositional", "short", 12)
    assert index.embeddings.shape[0] == sum(len(cs.train_descriptions(f)) for f in families)

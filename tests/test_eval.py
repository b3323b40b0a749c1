"""`t2l-vllm eval`: metric normalisation, input checks, and a real vLLM run on the tiny model."""

import json

import pytest

from t2l_vllm import cli
from t2l_vllm.evaluation import normalize_answer, other_description, parse_modes, random_description
from t2l_vllm.tasks import make_examples, write_jsonl
from tests.conftest import run_python


@pytest.mark.parametrize(
    "output, expected",
    [
        ("Paris", "paris"),
        ("  Paris.  ", "paris"),
        ('"Paris."', "paris"),
        ("Paris!\nThe capital of France.", "paris"),
        ("\n\n  42 \nmore", "42"),
        ("ÉCOLE", "école"),
        ("Straße", "strasse"),  # casefold, not lower
        ("snake_case_name", "snake_case_name"),
        ("3.5", "3.5"),  # inner punctuation stays
        ("", ""),
    ],
)
def test_normalize_answer(output, expected):
    assert normalize_answer(output) == expected


def test_parse_modes_rejects_unknown_and_repeated():
    assert parse_modes("base, t2l") == ("base", "t2l")
    with pytest.raises(ValueError, match="unknown modes"):
        parse_modes("base,lora")
    with pytest.raises(ValueError, match="twice"):
        parse_modes("t2l,t2l")


def test_probe_descriptions_are_seeded_and_differ_from_the_real_one():
    a = random_description("Classify the sentiment.", seed=0)
    assert a == random_description("Classify the sentiment.", seed=0) != random_description("Classify the sentiment.", seed=1)
    assert len(a) <= len("Classify the sentiment.") and a != "Classify the sentiment."
    by_task = {"x": ["describe x"], "y": ["describe y", "y again"]}
    ex = {"task": "x", "description": "describe x", "input": "1", "target": "2"}
    assert other_description(ex, by_task, 0) in by_task["y"]
    with pytest.raises(ValueError, match="two tasks"):
        other_description(ex, {"x": ["describe x"]}, 0)


def test_missing_oracles_is_a_clear_cli_error(tiny_base_dir, tiny_hypernet_dir, tmp_path, capsys):
    tasks = tmp_path / "t.jsonl"
    write_jsonl(tasks, make_examples(["even_or_odd"], "train", 2, seed=1))
    rc = cli.main([
        "eval", "--tasks", str(tasks), "--modes", "base,oracle", "--out", str(tmp_path / "o"),
        "--base-model", str(tiny_base_dir), "--hypernet", str(tiny_hypernet_dir), "--oracles", str(tmp_path),
    ])
    err = capsys.readouterr().err
    assert rc == 2 and "has no adapter for: even_or_odd" in err and "Traceback" not in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task": "x"}\n')
    assert cli.main(["eval", "--tasks", str(bad), "--out", str(tmp_path / "o"), "--base-model", str(tiny_base_dir)]) == 2
    assert "line 1" in capsys.readouterr().err
    assert cli.main(["eval", "--tasks", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")]) == 2
    assert "cannot read task file" in capsys.readouterr().err


def _eval(args, env=None):
    proc = run_python(["-m", "t2l_vllm.cli", "eval", *args], env={"VLLM_CPU_KVCACHE_SPACE": "1", **(env or {})})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_eval_end_to_end_on_the_tiny_model(tiny_base_dir, tiny_hypernet_dir, tiny_hypernet_config, tmp_path):
    from t2l_vllm.tasks import FAMILIES
    from t2l_vllm.training.peft_lora import MultitaskConfig, OracleConfig, train_multitask, train_oracles

    tasks = ["even_or_odd", "first_letter"]
    train_oracles(tiny_hypernet_config, tiny_base_dir, tmp_path / "oracles", [FAMILIES[t] for t in tasks],
                  OracleConfig(steps=4, lr=3e-2, warmup_steps=1))
    multitask = train_multitask(tiny_hypernet_config, tiny_base_dir, tmp_path / "mt",
                                MultitaskConfig(steps=2, lr=3e-2, warmup_steps=1))
    examples = make_examples(tasks, "train", 3, seed=7)
    task_file = tmp_path / "tasks.jsonl"
    write_jsonl(task_file, examples)
    modes = ["base", "base+desc", "t2l", "t2l+desc", "multitask", "oracle", "random-desc", "other-desc"]
    out = tmp_path / "out"
    common = ["--base-model", str(tiny_base_dir), "--hypernet", str(tiny_hypernet_dir), "--max-tokens", "8"]
    proc = _eval(["--tasks", str(task_file), "--modes", ",".join(modes), "--out", str(out),
                  "--multitask", str(multitask), "--oracles", str(tmp_path / "oracles"), *common])
    assert "| **average** |" in proc.stdout

    results = json.loads((out / "results.json").read_text())
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert list(results["modes"]) == modes and results["tasks"] == sorted(tasks)
    assert len(preds) == len(modes) * len(examples)
    for mode in modes:
        for task in tasks:
            mine = [p for p in preds if p["mode"] == mode and p["task"] == task]
            expected = sum(normalize_answer(p["output"]) == normalize_answer(p["target"]) for p in mine) / len(mine)
            assert results["modes"][mode]["per_task"][task] == pytest.approx(expected)
        per_task = results["modes"][mode]["per_task"]
        assert results["modes"][mode]["average"] == pytest.approx(sum(per_task.values()) / len(per_task))
    outputs = {m: [p["output"] for p in preds if p["mode"] == m] for m in modes}
    assert outputs["t2l"] != outputs["base"]  # the generated adapters are really applied
    assert (out / "results.md").read_text().count("\n") == len(tasks) + 4  # + the median-tokens row
    assert (out / "averages.png").read_bytes()[:4] == b"\x89PNG"

    # Greedy decoding and the description -> adapter mapping are reproducible: with
    # the t2l outputs as targets, a second run (in a new engine) scores 100% in t2l.
    rows = [dict(ex, target=outputs["t2l"][i]) for i, ex in enumerate(examples) if normalize_answer(outputs["t2l"][i])]
    assert rows
    write_jsonl(tmp_path / "again.jsonl", rows)
    _eval(["--tasks", str(tmp_path / "again.jsonl"), "--modes", "t2l,base", "--out", str(tmp_path / "again"), *common])
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert again["modes"]["t2l"]["average"] == 1.0


def test_chrf_and_answer_types():
    from t2l_vllm.evaluation.score import answer_type, chrf

    assert chrf("The cat sat on the mat.", "The cat sat on the mat.") == 1.0
    assert chrf("", "The cat sat on the mat.") == 0.0
    near, far = chrf("The cat sat on a mat.", "The cat sat on the mat."), chrf("Dogs bark loudly.", "The cat sat on the mat.")
    assert 0.5 < near < 1.0 and far < near
    assert answer_type("even_or_odd") == "short" and answer_type("not-a-suite-task") == "short"
    from t2l_vllm.tasks import FAMILIES

    assert any(answer_type(name) == "open" for name in FAMILIES)


def test_policy_mode_serves_what_the_server_would(tiny_base_dir, tiny_hypernet_with_confidence, tmp_path):
    """Mode policy, per example: the adapter for a "trained" description (confidence 1.0), the
    description as system message below the threshold, exactly as `t2l-vllm serve` routes them."""
    from tests.conftest import TINY_TRAINED_DESCRIPTIONS

    rows = [{"task": "first_letter", "description": d, "input": word, "target": word[0]}
            for d in (TINY_TRAINED_DESCRIPTIONS[1], "Give the initial of this word, please.") for word in ("cat", "dog")]
    write_jsonl(tmp_path / "t.jsonl", rows)
    out = tmp_path / "out"
    _eval(["--tasks", str(tmp_path / "t.jsonl"), "--modes", "t2l,base+desc,policy", "--out", str(out),
           "--base-model", str(tiny_base_dir), "--hypernet", str(tiny_hypernet_with_confidence), "--max-tokens", "6",
           "--policy", "prompt", "--min-confidence", "1.0"])
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    by = {(p["mode"], p["index"]): p for p in preds}
    for i in range(len(rows)):
        policy = by[("policy", i)]
        expected = ("adapter", "t2l") if i < 2 else ("prompt", "base+desc")
        assert policy["route"] == expected[0]
        assert policy["output"] == by[(expected[1], i)]["output"]
    results = json.loads((out / "results.json").read_text())
    assert results["modes"]["policy"]["routes"] == {"adapter": 2, "prompt": 2}
    assert results["config"]["policy"] == "prompt" and "median_tokens" in results["modes"]["t2l"]

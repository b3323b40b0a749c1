"""Blended adapters on the task suite: a task blended with a format, and two tasks blended.

    .venv/bin/python benchmarks/blend_eval.py [--n 12] [--out benchmarks/results/blend]

Adapters come from the shipped hypernetwork on the default base model; blends
are stacked exactly (t2l_vllm/blend.py, rank 16); one `t2l-vllm eval` run
(mode oracle over a folder of adapters, one per condition) scores them all
with one vLLM engine, greedy.

Task + format: v1 lookup/word tasks (plural, english_to_french, ...) whose
compositional family `<op>.<input>.uppercase` exists; the examples come from
that family (target: the answer in uppercase). Conditions:
  task only   the v1 task's held-out description;
  combined    one held-out description of the uppercase family (task and format in one sentence);
  blend       task (weight w1) + v1 `uppercase` task's description (weight w2), for each
              --weights pair (default 1+1, 1+0.5, 0.5+0.5).
Scores: exact match with case (task and format right) and without case (task right).

Two tasks: pairs of v1 training tasks with inputs of different kinds; blend (w1, w2)
evaluated on both tasks' examples (w1 on the scored task), against each task's own adapter.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import defaultdict
from pathlib import Path

if __package__ is None:  # run as `python benchmarks/blend_eval.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import score_adapter_folder

FORMAT_TASKS = {  # v1 family -> compositional family with the same operation, answer in uppercase
    "plural": "plural.noun.uppercase",
    "english_to_french": "to_french.english_word.uppercase",
    "antonym": "antonym.antonym_word.uppercase",
    "month_after": "month_after.month.uppercase",
    "animal_class": "animal_class.animal.uppercase",
    "first_letter": "first_letter.word.uppercase",
}
TASK_PAIRS = (("country_capital", "plural"), ("add_numbers", "reverse_word"), ("month_after", "chemical_symbol"))
WEIGHTS = ((1.0, 1.0), (1.0, 0.5), (0.5, 0.5))  # (first member, second member) of each blend


def _w(pair: tuple[float, float]) -> str:
    return f"{pair[0]:g}+{pair[1]:g}"


def _key(pair: tuple[float, float]) -> str:
    """The condition's name (also an adapter folder's: no spaces)."""
    return f"blend-{pair[0]:g}-{pair[1]:g}"


def build(out: Path, n: int, weights=WEIGHTS) -> tuple[list[dict], dict[str, tuple]]:
    """Write the adapters (one folder per condition) and return the examples and each condition's parts."""
    from t2l_vllm import defaults
    from t2l_vllm.adapter import write_adapter
    from t2l_vllm.blend import blend_tensors
    from t2l_vllm.generator import AdapterGenerator
    from t2l_vllm.tasks.compositional.suite import FAMILIES as GRID
    from t2l_vllm.tasks.splits import FAMILIES, held_out_descriptions

    base = defaults.default_base_model_dir()
    gen = AdapterGenerator.from_pretrained(defaults.SHIPPED_HYPERNET, base, base_model_name=defaults.BASE_NAME)
    cache: dict[str, tuple] = {}

    def adapter(text: str):
        if text not in cache:
            [a] = gen.generate([text])
            cache[text] = (a.tensors, a.peft_config)
        return cache[text]

    def write(name: str, tensors, config) -> None:
        write_adapter(tensors, config, out / "adapters" / name)

    def blend(parts: list[tuple[str, float]]):
        tensors, config, err = blend_tensors([(*adapter(t), w) for t, w in parts], defaults.BASE_NAME)
        assert err == 0.0
        return tensors, config

    examples, conditions = [], {}
    fmt_text = held_out_descriptions("uppercase")[0]
    for v1, grid in FORMAT_TASKS.items():
        task_text, combined_text = held_out_descriptions(v1)[0], GRID[grid].descriptions[-1]
        rng = random.Random(f"blend-eval:{grid}")
        pairs = [GRID[grid].generate(rng) for _ in range(n)]
        blends = [(_key(w), [(task_text, w[0]), (fmt_text, w[1])]) for w in weights]
        for cond, parts in (("task-only", [(task_text, 1.0)]), ("combined", [(combined_text, 1.0)]), *blends):
            name = f"{grid}@{cond}"
            write(name, *(adapter(parts[0][0]) if len(parts) == 1 else blend(parts)))
            conditions[name] = ("format", v1, cond, parts)
            examples += [{"task": name, "description": parts[0][0], "input": i, "target": t} for i, t in pairs]
    for a, b in TASK_PAIRS:
        ta, tb = held_out_descriptions(a)[0], held_out_descriptions(b)[0]
        for fam, text, other in ((a, ta, tb), (b, tb, ta)):
            rng = random.Random(f"blend-eval:{fam}")
            pairs = [FAMILIES[fam].generate(rng) for _ in range(n)]
            conds = [("alone", adapter(text))] + [(_key(w), blend([(text, w[0]), (other, w[1])]))
                                                  for w in weights]
            for cond, made in conds:
                name = f"{fam}@{cond}"
                write(name, *made)
                conditions[name] = ("pair", f"{a}+{b}", fam, cond)
                examples += [{"task": name, "description": text, "input": i, "target": t} for i, t in pairs]
    return examples, conditions


def report(preds: list[dict], conditions: dict[str, tuple]) -> dict:
    from t2l_vllm.evaluation.score import normalize_answer

    by_task = defaultdict(list)
    for p in preds:
        out = p["output"].strip().splitlines()[0].strip().strip(" .\"'") if p["output"].strip() else ""
        by_task[p["task"]].append((out == p["target"].strip(), normalize_answer(p["output"]) == normalize_answer(p["target"])))
    fmt, pairs = defaultdict(dict), defaultdict(dict)
    for name, spec in conditions.items():
        rows = by_task[name]
        cased = 100 * sum(c for c, _ in rows) / len(rows)
        uncased = 100 * sum(u for _, u in rows) / len(rows)
        if spec[0] == "format":
            fmt[spec[1]][spec[2]] = {"exact_with_case": cased, "exact_ignoring_case": uncased}
        else:
            pairs[f"{spec[1]} on {spec[2]}"][spec[3]] = uncased
    return {"task_plus_format": fmt, "two_tasks": pairs}


def markdown(r: dict, n: int, weights=WEIGHTS) -> str:
    blends = [_key(w) for w in weights]
    heads = [f"blend {_w(w)}" for w in weights]
    lines = ["# Blended adapters (shipped checkpoint, SmolLM2-135M-Instruct, greedy)", "",
             f"{n} examples per task and condition. Command: `.venv/bin/python benchmarks/blend_eval.py --n {n}"
             + ("" if tuple(weights) == WEIGHTS else " --weights " + ",".join(_w(w) for w in weights)) + "`.", "",
             "## Task + format (examples of the compositional `<op>.<input>.uppercase` family)", "",
             "With case / ignoring case; blend w1+w2: the task at w1, `uppercase` at w2.", "",
             "| task | task only | combined description | " + " | ".join(heads) + " |",
             "|---|" + "---:|" * (2 + len(blends))]
    conds = ("task-only", "combined", *blends)
    means = defaultdict(lambda: [0.0, 0.0])
    for task, by_cond in r["task_plus_format"].items():
        cells = []
        for c in conds:
            v = by_cond[c]
            means[c][0] += v["exact_with_case"] / len(r["task_plus_format"])
            means[c][1] += v["exact_ignoring_case"] / len(r["task_plus_format"])
            cells.append(f"{v['exact_with_case']:.0f} / {v['exact_ignoring_case']:.0f}")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    lines.append("| **mean** | " + " | ".join(f"**{means[c][0]:.1f} / {means[c][1]:.1f}**" for c in conds) + " |")
    lines += ["", "## Two tasks blended, exact match ignoring case (w1 on the scored task, w2 on the other)", "",
              "| pair, scored on | own adapter | " + " | ".join(heads) + " |", "|---|" + "---:|" * (1 + len(blends))]
    for key, v in r["two_tasks"].items():
        lines.append(f"| {key} | {v['alone']:.0f} | " + " | ".join(f"{v[b]:.0f}" for b in blends) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=12)
    p.add_argument("--out", default="benchmarks/results/blend")
    p.add_argument("--work", default="/tmp/t2l_blend_eval")
    p.add_argument("--weights", help="comma-separated blend weights w1+w2 (default: " + ",".join(map(_w, WEIGHTS)) + ")")
    args = p.parse_args()
    weights = WEIGHTS
    if args.weights:
        try:
            weights = tuple((float(a), float(b)) for a, b in (w.split("+") for w in args.weights.split(",")))
        except ValueError:
            raise SystemExit(f"--weights takes pairs like 1+0.5,0.5+0.5; got {args.weights!r}") from None
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    examples, conditions = build(work, args.n, weights)
    preds = score_adapter_folder(work, examples)
    r = report(preds, conditions)
    out.mkdir(parents=True, exist_ok=True)
    (out / "blend_eval.json").write_text(json.dumps({"n": args.n, "weights": weights, **r}, indent=2) + "\n")
    (out / "blend_eval.md").write_text(markdown(r, args.n, weights))
    print(markdown(r, args.n, weights))


if __name__ == "__main__":
    main()

"""The adapter library with the oracle library registered: routing, then scores.

    .venv/bin/python benchmarks/library_eval.py --oracles runs/t2l/oracles [--n 8] [--out benchmarks/results/library]

Library: the per-task PEFT oracles found in --oracles (v1 training families,
`t2l-vllm train-oracles`), each registered with the first 3 of its training
descriptions, as an engineer would describe an adapter they trained.
Queries: the held-out descriptions of the library tasks (should be served by
their oracle), of other v1 training tasks and of the 11 short held-out
(mirror) families (should get generated adapters).

Routing is what the server's Library decides (serving/library.py: canonical
text, then cosine >= threshold with the lexical check), swept over
thresholds; no engine needed. Then one `t2l-vllm eval` run (mode oracle over
a folder with one adapter per query description and condition) scores, at
the default threshold:
  served      what the server serves (the matched library adapter, else the generated one);
  generated   always the generated adapter (no library);
  oracle      the task's oracle (library tasks only: the ceiling);
  blend       0.5 oracle + 0.5 generated (library tasks only: "blend instead of replace").
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

if __package__ is None:  # run as `python benchmarks/library_eval.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.semantic_reuse import V1_MIRROR_PAIRS

REGISTERED = 3  # training descriptions registered per library adapter
THRESHOLDS = (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def load_library(oracles: Path, limit: int) -> list[str]:
    from t2l_vllm.tasks.splits import training_families

    names = [f.name for f in training_families("short")]
    return [n for n in names if (oracles / n / "adapter_model.safetensors").is_file()][:limit]


def queries(library: list[str], n_other: int) -> list[tuple[str, str, str]]:
    """(kind, family, description): kind is library | other | mirror."""
    from t2l_vllm.tasks.splits import FAMILIES, held_out_descriptions, training_families

    out = [("library", f, d) for f in library for d in held_out_descriptions(f)]
    others = [f.name for f in training_families("short") if f.name not in library]
    for f in random.Random("library-eval").sample(others, min(n_other, len(others))):
        out += [("other", f, d) for d in held_out_descriptions(f)]
    for held, _ in V1_MIRROR_PAIRS:
        out += [("mirror", held, d) for d in FAMILIES[held].descriptions[:2]]
    return out


def route(library: list[str], qs, encoder, threshold: float) -> list[str | None]:
    """The library family serving each query (None: generated)."""
    from t2l_vllm.serving.library import Library
    from t2l_vllm.tasks.splits import train_descriptions

    lib = Library(encoder.dim, threshold)
    for fam in library:
        texts = tuple(train_descriptions(fam)[:REGISTERED])
        lib.add(fam, texts, encoder.encode(list(texts)))
    return [(m.adapter_id if (m := lib.match(d, encoder.encode([d])[0])) else None) for _, _, d in qs]


def routing_rates(qs, routed) -> dict:
    counts = defaultdict(lambda: defaultdict(int))
    for (kind, fam, _), r in zip(qs, routed):
        outcome = "generated" if r is None else ("right library adapter" if r == fam else "wrong library adapter")
        counts[kind][outcome] += 1
    return {k: dict(v) for k, v in counts.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--oracles", default="runs/t2l/oracles")
    p.add_argument("--limit", type=int, default=8, help="library size (oracles used)")
    p.add_argument("--n-other", type=int, default=8, help="other training tasks queried")
    p.add_argument("--n", type=int, default=8, help="inputs per query description")
    p.add_argument("--out", default="benchmarks/results/library")
    p.add_argument("--work", default="/tmp/t2l_library_eval")
    p.add_argument("--routing-only", action="store_true")
    args = p.parse_args()
    from safetensors.torch import load_file

    from t2l_vllm import defaults
    from t2l_vllm.adapter import write_adapter
    from t2l_vllm.blend import blend_tensors
    from t2l_vllm.generator import AdapterGenerator
    from t2l_vllm.reuse import DEFAULT_LIBRARY_THRESHOLD
    from t2l_vllm.tasks.splits import FAMILIES

    oracles, work, out = Path(args.oracles), Path(args.work), Path(args.out)
    library = load_library(oracles, args.limit)
    if len(library) < 2:
        raise SystemExit(f"{oracles} holds {len(library)} oracles of v1 training families; train some first")
    base = defaults.default_base_model_dir()
    gen = AdapterGenerator.from_pretrained(defaults.SHIPPED_HYPERNET, base, base_model_name=defaults.BASE_NAME)
    qs = queries(library, args.n_other)
    sweep = {t: routing_rates(qs, route(library, qs, gen.encoder, t)) for t in (*THRESHOLDS, DEFAULT_LIBRARY_THRESHOLD)}
    result = {"library": library, "registered_descriptions_per_adapter": REGISTERED, "queries": len(qs),
              "default_threshold": DEFAULT_LIBRARY_THRESHOLD, "routing": {str(t): v for t, v in sorted(sweep.items())}}
    routed = route(library, qs, gen.encoder, DEFAULT_LIBRARY_THRESHOLD)
    out.mkdir(parents=True, exist_ok=True)
    if not args.routing_only:
        result["scores"] = score(args, gen, library, qs, routed, oracles, work, load_file, write_adapter, blend_tensors,
                                 FAMILIES, defaults.BASE_NAME)
    (out / "library_eval.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "library_eval.md").write_text(markdown(result, args))
    print(markdown(result, args))


def score(args, gen, library, qs, routed, oracles, work, load_file, write_adapter, blend_tensors, FAMILIES, base_name):
    examples, cond_of = [], {}
    for qi, ((kind, fam, desc), r) in enumerate(zip(qs, routed)):
        [g] = gen.generate([desc])
        generated = (g.tensors, g.peft_config)
        conds = {"generated": generated}
        if r is not None:
            conds["served"] = _oracle(oracles, r, load_file)
        else:
            conds["served"] = generated
        if kind == "library":
            oracle = _oracle(oracles, fam, load_file)
            conds["oracle"] = oracle
            t, c, _ = blend_tensors([(*oracle, 0.5), (*generated, 0.5)], base_name)
            conds["blend"] = (t, c)
        rng = random.Random(f"library-eval:{fam}:{qi}")
        pairs = [FAMILIES[fam].generate(rng) for _ in range(args.n)]
        for cond, (tensors, config) in conds.items():
            name = f"q{qi}@{cond}"
            write_adapter(tensors, config, work / "adapters" / name)
            cond_of[name] = (kind, cond)
            examples += [{"task": name, "description": desc, "input": i, "target": t} for i, t in pairs]
    tasks = work / "tasks.jsonl"
    tasks.write_text("".join(json.dumps(e) + "\n" for e in examples))
    cli = Path(sys.executable).parent / "t2l-vllm"
    subprocess.run([str(cli), "eval", "--tasks", str(tasks), "--modes", "oracle", "--oracles", str(work / "adapters"),
                    "--out", str(work / "eval"), "--max-tokens", "12"], check=True)
    preds = [json.loads(line) for line in (work / "eval" / "predictions.jsonl").read_text().splitlines()]
    totals = defaultdict(list)
    for p in preds:
        totals[cond_of[p["task"]]].append(p["score"])
    return {f"{kind}/{cond}": 100 * sum(v) / len(v) for (kind, cond), v in sorted(totals.items())}


def _oracle(oracles: Path, fam: str, load_file):
    folder = oracles / fam
    return load_file(str(folder / "adapter_model.safetensors")), json.loads((folder / "adapter_config.json").read_text())


def markdown(r: dict, args) -> str:
    lines = ["# Adapter library with the oracle library registered (shipped checkpoint, SmolLM2-135M-Instruct)", "",
             f"Library: {len(r['library'])} oracles ({', '.join(r['library'])}), each registered with "
             f"{r['registered_descriptions_per_adapter']} of its training descriptions. {r['queries']} query "
             f"descriptions. Command: `.venv/bin/python benchmarks/library_eval.py --oracles {args.oracles} "
             f"--limit {args.limit} --n {args.n}`.", "",
             "## Routing (no engine): where each held-out description goes", "",
             "| threshold | library tasks: right oracle / wrong library adapter / generated | other tasks: to a library adapter | mirror families: to a library adapter |",
             "|---:|---|---:|---:|"]
    for t, v in r["routing"].items():
        lib, oth, mir = v.get("library", {}), v.get("other", {}), v.get("mirror", {})
        nl, no, nm = sum(lib.values()), sum(oth.values()), sum(mir.values())
        wrong_o = oth.get("wrong library adapter", 0)
        wrong_m = mir.get("wrong library adapter", 0)
        lines.append(f"| {t} | {lib.get('right library adapter', 0)}/{nl} / {lib.get('wrong library adapter', 0)} / "
                     f"{lib.get('generated', 0)} | {wrong_o}/{no} | {wrong_m}/{nm} |")
    if "scores" in r:
        s = r["scores"]
        lines += ["", f"## Scores at the default threshold {r['default_threshold']} (exact match, %, {args.n} inputs per description)", "",
                  "| queries | served (library or generated) | generated only | oracle | blend 0.5 oracle + 0.5 generated |",
                  "|---|---:|---:|---:|---:|"]
        for kind in ("library", "other", "mirror"):
            cells = [s.get(f"{kind}/{c}") for c in ("served", "generated", "oracle", "blend")]
            lines.append(f"| {kind} tasks | " + " | ".join("-" if c is None else f"{c:.1f}" for c in cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

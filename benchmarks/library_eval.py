"""The adapter library with the oracle library registered: routing, then scores.

    .venv/bin/python benchmarks/library_eval.py --oracles runs/t2l/oracles [--n 8] [--out benchmarks/results/library]

Library: per-task PEFT oracles found in --oracles (`t2l-vllm train-oracles`),
by default the first --limit v1 training families, or --families (which may
name held-out families the hypernetwork never saw, e.g. smaller_number: the
case a library is for). Each is registered with several descriptions (a v1
training family's 8 training descriptions; the first 5 of an unseen family's
10), as an engineer would describe an adapter they trained.
Queries: the other descriptions of the library tasks (should be served by
their oracle), of --n-other other v1 training tasks, and of mirror families
(the held-out mirror of a library family or its training sibling; all 11
held-out mirror families when the library has none): these should get
generated adapters.

Routing is what the server's Library decides (serving/library.py: canonical
text, then a nearest description over the threshold that passes a lexical
check; with the checkpoint's router, routing.py, in its task metric and only
when no training description is closer by more than the margin), swept: raw
cosine over thresholds for both checks (opposite words only, the server's; and
reuse's strict one), and the router over thresholds and margins; no engine
needed. Then one `t2l-vllm eval` run (mode oracle over a folder with one
adapter per query description and condition) scores, at --threshold and
--margin (default: the server's; --no-router: raw cosine) with the opposites check:
  served      what the server serves (the matched library adapter, else the generated one);
  generated   always the generated adapter (no library);
  oracle      the task's oracle (library tasks only: the ceiling);
  blend       0.5 oracle + 0.5 generated (library tasks only: "blend instead of replace").
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import defaultdict
from pathlib import Path

if __package__ is None:  # run as `python benchmarks/library_eval.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import score_adapter_folder
from benchmarks.semantic_reuse import V1_MIRROR_PAIRS

REGISTERED = 8  # descriptions registered per library adapter (all 8 training descriptions of a v1 family)
REGISTERED_UNSEEN = 5  # of a family the hypernetwork never saw (10 descriptions): the other 5 are queries
THRESHOLDS = (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)  # raw cosine, no router
ROUTED_THRESHOLDS = (0.4, 0.5, 0.6)  # in the router's task metric
MARGINS = (0.0, 0.02, 0.05, 0.1)
RULES = ("opposites", "strict")  # the lexical check of a match: reuse.opposite_conflict or reuse.lexical_conflict


def load_library(oracles: Path, limit: int, families: list[str] | None) -> list[str]:
    from t2l_vllm.tasks.splits import training_families

    names = families or [f.name for f in training_families("short")]
    return [n for n in names if (oracles / n / "adapter_model.safetensors").is_file()][:limit]


def _is_training(fam: str) -> bool:
    from t2l_vllm.tasks.splits import training_families

    return fam in {f.name for f in training_families("short")}


def registered(fam: str) -> tuple[str, ...]:
    """The descriptions an engineer registers with the adapter: training descriptions of a
    training family, else the family's first ones (a family the hypernetwork never saw)."""
    from t2l_vllm.tasks.splits import FAMILIES, train_descriptions

    if _is_training(fam):
        return tuple(train_descriptions(fam)[:REGISTERED])
    return tuple(FAMILIES[fam].descriptions[:REGISTERED_UNSEEN])


def held_out(fam: str) -> tuple[str, ...]:
    from t2l_vllm.tasks.splits import FAMILIES, held_out_descriptions

    return tuple(held_out_descriptions(fam)) if _is_training(fam) else tuple(FAMILIES[fam].descriptions[REGISTERED_UNSEEN:])


def queries(library: list[str], n_other: int) -> list[tuple[str, str, str]]:
    """(kind, family, description): kind is library | other | mirror (a held-out mirror family,
    or the training sibling of a library family that is one, e.g. larger_number for smaller_number)."""
    from t2l_vllm.tasks.splits import FAMILIES, training_families

    out = [("library", f, d) for f in library for d in held_out(f)]
    pairs = [p for p in V1_MIRROR_PAIRS if p[0] in library or p[1] in library] or V1_MIRROR_PAIRS
    mirrors = {m for p in pairs for m in p if m not in library}
    others = [f.name for f in training_families("short") if f.name not in library and f.name not in mirrors]
    for f in random.Random("library-eval").sample(others, min(n_other, len(others))):
        out += [("other", f, d) for d in held_out(f)]
    for m in sorted(mirrors):
        out += [("mirror", m, d) for d in (held_out(m) if _is_training(m) else FAMILIES[m].descriptions[:2])]
    return out


def route(library: list[str], qs, gen, threshold: float, rule: str, margin: float | None = None) -> list[str | None]:
    """The library family serving each query (None: generated). margin None: raw cosine (no router);
    else the checkpoint's router (task metric, training descriptions compete) with that margin."""
    from t2l_vllm.reuse import lexical_conflict, opposite_conflict
    from t2l_vllm.serving.library import Library

    router = None if margin is None else gen.router
    lib = Library(gen.encoder.dim, threshold, conflict=lexical_conflict if rule == "strict" else opposite_conflict,
                  router=router, margin=margin or 0.0)
    for fam in library:
        texts = registered(fam)
        lib.add(fam, texts, gen.encoder.encode(list(texts)))
    return [(m.adapter_id if (m := lib.match(d, gen.encoder.encode([d])[0])) else None) for _, _, d in qs]


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
    p.add_argument("--families", help="comma-separated library families (default: the first --limit v1 training "
                                      "families with an oracle)")
    p.add_argument("--threshold", type=float, help="threshold of the scored run (default: the server's)")
    p.add_argument("--margin", type=float, help="router margin of the scored run (default: the server's)")
    p.add_argument("--hypernet", help="checkpoint (default: the shipped one); its routing.safetensors is the router")
    p.add_argument("--no-router", action="store_true", help="route by raw cosine even if the checkpoint has a router")
    args = p.parse_args()
    from safetensors.torch import load_file

    from t2l_vllm import defaults
    from t2l_vllm.adapter import write_adapter
    from t2l_vllm.blend import blend_tensors
    from t2l_vllm.generator import AdapterGenerator
    from t2l_vllm.reuse import DEFAULT_LIBRARY_THRESHOLD
    from t2l_vllm.routing import DEFAULT_ROUTED_MARGIN, DEFAULT_ROUTED_THRESHOLD
    from t2l_vllm.tasks.splits import FAMILIES

    oracles, work, out = Path(args.oracles), Path(args.work), Path(args.out)
    library = load_library(oracles, args.limit, args.families.split(",") if args.families else None)
    if len(library) < 2:
        raise SystemExit(f"{oracles} holds {len(library)} oracles of v1 training families; train some first")
    base = defaults.default_base_model_dir()
    gen = AdapterGenerator.from_pretrained(args.hypernet or defaults.SHIPPED_HYPERNET, base,
                                           base_model_name=defaults.BASE_NAME)
    qs = queries(library, args.n_other)
    threshold = DEFAULT_LIBRARY_THRESHOLD if args.threshold is None else args.threshold
    if args.no_router:
        gen.router = None
    sweep = {f"raw, {rule}, {t}": routing_rates(qs, route(library, qs, gen, t, rule))
             for rule in RULES for t in THRESHOLDS}
    if gen.router is not None:
        sweep.update({f"router, opposites, {t}, margin {m}": routing_rates(qs, route(library, qs, gen, t, "opposites", m))
                      for t in ROUTED_THRESHOLDS for m in MARGINS})
    margin = None if gen.router is None else (DEFAULT_ROUTED_MARGIN if args.margin is None else args.margin)
    default = DEFAULT_LIBRARY_THRESHOLD if gen.router is None else DEFAULT_ROUTED_THRESHOLD
    threshold = default if args.threshold is None else args.threshold
    result = {"library": library, "registered_descriptions_per_adapter": REGISTERED, "queries": len(qs),
              "router": gen.router is not None, "default_threshold": threshold, "margin": margin, "routing": sweep}
    routed = route(library, qs, gen, threshold, "opposites", margin)
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
    preds = score_adapter_folder(work, examples)
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
             f"{r['registered_descriptions_per_adapter']} descriptions (5 for a family the hypernetwork never saw). {r['queries']} query "
             f"descriptions. Command: `.venv/bin/python benchmarks/library_eval.py --oracles {args.oracles} "
             f"--limit {args.limit} --n {args.n}" + (f" --families {args.families}" if args.families else "")
             + (f" --threshold {args.threshold}" if args.threshold is not None else "")
             + (f" --margin {args.margin}" if args.margin is not None else "")
             + (" --no-router" if args.no_router else "") + "`.", "",
             "## Routing (no engine): where each held-out description goes", "",
             "| space, lexical check, threshold (router: margin) | library tasks: right oracle / wrong library adapter / generated | other tasks: to a library adapter | mirror families: to a library adapter |",
             "|---|---|---:|---:|"]
    for t, v in r["routing"].items():
        lib, oth, mir = v.get("library", {}), v.get("other", {}), v.get("mirror", {})
        nl, no, nm = sum(lib.values()), sum(oth.values()), sum(mir.values())
        wrong_o = oth.get("wrong library adapter", 0)
        wrong_m = mir.get("wrong library adapter", 0)
        lines.append(f"| {t} | {lib.get('right library adapter', 0)}/{nl} / {lib.get('wrong library adapter', 0)} / "
                     f"{lib.get('generated', 0)} | {wrong_o}/{no} | {wrong_m}/{nm} |")
    if "scores" in r:
        s = r["scores"]
        how = "raw cosine" if not r["router"] else f"router, margin {r['margin']}"
        lines += ["", f"## Scores at threshold {r['default_threshold']} ({how}), opposites check (exact match, %, "
                      f"{args.n} inputs per description)", "",
                  "| queries | served (library or generated) | generated only | oracle | blend 0.5 oracle + 0.5 generated |",
                  "|---|---:|---:|---:|---:|"]
        for kind in ("library", "other", "mirror"):
            cells = [s.get(f"{kind}/{c}") for c in ("served", "generated", "oracle", "blend")]
            lines.append(f"| {kind} tasks | " + " | ".join("-" if c is None else f"{c:.1f}" for c in cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

"""Which --min-confidence keeps the served policy at or above prompting: a threshold sweep over eval outputs.

    .venv/bin/python benchmarks/policy_sweep.py --hypernet CKPT --tasks F.jsonl --eval E [--prompt-eval P] [--out F.md]

E is the `t2l-vllm eval` output folder of F.jsonl holding mode `t2l` (the adapter
path) from this checkpoint, P one holding mode `base+desc` (the prompt path; it
does not depend on the checkpoint, so any eval of the same file; default E).
For every threshold the
policy "prompt" serves an example through its adapter when the description's
confidence (the checkpoint's index) is at least the threshold, else through the
prompt; its score is recomputed from the two modes' per-example scores, exactly
as the eval scores mode `policy`. No engine runs; the confidences take one
encoder pass per distinct description.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

if __package__ is None:  # run as `python benchmarks/policy_sweep.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def load(folder: Path) -> tuple[list[dict], dict[tuple[str, int], dict]]:
    preds = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    return preds, {(p["mode"], p["index"]): p for p in preds}


def sweep(examples: list[dict], by: dict, prompt_by: dict, conf: dict[str, float], thresholds: list[float]) -> list[dict]:
    rows = []
    for theta in thresholds:
        per_task, lengths, via_adapter = defaultdict(list), [], 0
        for i, ex in enumerate(examples):
            adapter = conf[ex["description"]] >= theta
            p = by[("t2l", i)] if adapter else prompt_by[("base+desc", i)]
            via_adapter += adapter
            per_task[ex["task"]].append(p["score"])
            lengths.append(p["tokens"])
        tasks = sorted(per_task)
        rows.append({
            "min_confidence": theta,
            "score": 100 * sum(sum(v) / len(v) for v in per_task.values()) / len(tasks),
            "adapter_share": via_adapter / len(examples),
            "median_tokens": statistics.median(lengths),
        })
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hypernet", required=True)
    p.add_argument("--tasks", required=True, help="the task file the evals ran on")
    p.add_argument("--eval", required=True, help="eval folder with mode t2l")
    p.add_argument("--prompt-eval", help="eval folder with mode base+desc (default: --eval)")
    p.add_argument("--thresholds", default="0.3,0.4,0.45,0.5,0.55,0.6,0.65,0.7,0.75,0.8,0.9,1.01")
    p.add_argument("--out", help="markdown file for the tables")
    args = p.parse_args()

    from t2l_vllm.checkpoint import read_hypernet_config
    from t2l_vllm.confidence import load_confidence
    from t2l_vllm.encoders import load_encoder

    config, _ = read_hypernet_config(args.hypernet)
    index = load_confidence(args.hypernet)
    if index is None:
        p.error(f"{args.hypernet} has no confidence index (t2l-vllm confidence-index)")
    encoder = load_encoder(config.encoder)
    thresholds = [float(t) for t in args.thresholds.split(",")]
    out = [f"Policy threshold sweep, checkpoint {args.hypernet}\n"]
    from t2l_vllm.tasks import read_jsonl

    examples = read_jsonl(args.tasks)
    _, by = load(Path(args.eval))
    _, prompt_by = load(Path(args.prompt_eval or args.eval))
    texts = sorted({ex["description"] for ex in examples})
    conf = dict(zip(texts, index.score(encoder.encode(texts))))
    prompt_only = sweep(examples, by, prompt_by, conf, [2.0])[0]
    adapter_only = sweep(examples, by, prompt_by, conf, [-2.0])[0]
    out.append(f"{args.tasks}: prompt only (base+desc) {prompt_only['score']:.1f}, median {prompt_only['median_tokens']:g} "
               f"tokens; adapter only (t2l) {adapter_only['score']:.1f}, median {adapter_only['median_tokens']:g} tokens\n")
    out.append("| min confidence | policy score | served by adapter | median tokens | vs prompt only |")
    out.append("|---:|---:|---:|---:|---:|")
    for r in sweep(examples, by, prompt_by, conf, thresholds):
        out.append(f"| {r['min_confidence']:.2f} | {r['score']:.1f} | {100 * r['adapter_share']:.0f}% | "
                   f"{r['median_tokens']:g} | {r['score'] - prompt_only['score']:+.1f} |")
    text = "\n".join(out) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()

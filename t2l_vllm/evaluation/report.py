"""The eval's results and its files: results.json, results.md, predictions.jsonl, averages.png."""

from __future__ import annotations

import json
from pathlib import Path

from t2l_vllm.evaluation.config import EvalConfig


def make_results(examples: list[dict], config: EvalConfig, base_model_dir: Path, hypernet_dir, mode_scores: dict) -> dict:
    """What results.json holds: the run's inputs and, per mode, the scores."""
    return {
        "n_examples": len(examples),
        "tasks": sorted({ex["task"] for ex in examples}),
        "config": {"modes": list(config.modes), "max_tokens": config.max_tokens, "seed": config.seed,
                   **({"policy": config.policy, "min_confidence": config.min_confidence} if "policy" in config.modes else {})},
        "base_model": str(base_model_dir),
        "hypernet": str(hypernet_dir) if hypernet_dir else None,
        "modes": mode_scores,
    }


def write_report(results: dict, predictions: list[dict], out_dir: Path) -> None:
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    with open(out_dir / "predictions.jsonl", "w", encoding="utf-8") as fh:
        for p in predictions:
            fh.write(json.dumps(p, ensure_ascii=False) + "\n")
    (out_dir / "results.md").write_text(markdown_table(results))
    plot_averages(results, out_dir / "averages.png")


def markdown_table(results: dict) -> str:
    """Tasks as rows, modes as columns, scores in percent (exact match, or chrF for open-ended tasks);
    the average row, then the median generated length in tokens."""
    modes = list(results["modes"])
    lines = ["| task | " + " | ".join(modes) + " |", "|---|" + "---:|" * len(modes)]
    for t in results["tasks"]:
        lines.append(f"| {t} | " + " | ".join(f"{100 * results['modes'][m]['per_task'][t]:.1f}" for m in modes) + " |")
    lines.append("| **average** | " + " | ".join(f"**{100 * results['modes'][m]['average']:.1f}**" for m in modes) + " |")
    lines.append("| *median tokens* | " + " | ".join(f"{results['modes'][m].get('median_tokens', 0):g}" for m in modes) + " |")
    return "\n".join(lines) + "\n"


def plot_averages(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    modes = list(results["modes"])
    values = [100 * results["modes"][m]["average"] for m in modes]
    fig, ax = plt.subplots(figsize=(1.2 * len(modes) + 2, 3.5))
    bars = ax.bar(modes, values, color="#4C72B0")
    ax.bar_label(bars, fmt="%.1f")
    ax.set_ylabel("score (%): exact match, chrF for open tasks")
    ax.set_ylim(0, 105)
    ax.set_title(f"average over {len(results['tasks'])} tasks, {results['n_examples']} examples")
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

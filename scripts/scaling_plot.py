"""Table and plot of the scaling curve from the eval folders scripts/scaling_curve.sh writes.

    python scripts/scaling_plot.py RESULTS_DIR

reads RESULTS_DIR/n<N>-<split>/results.json (N a number of training families or "all")
and writes RESULTS_DIR/scaling.md and RESULTS_DIR/scaling.png: the t2l score on
held-out families and held-out combinations against the number of training families.
"""

import json
import re
import sys
from pathlib import Path

from t2l_vllm.tasks.suites import get_suite

SPLITS = (("heldout-family", "held-out families"), ("heldout-combination", "held-out combinations"))
TARGETS = {"heldout-family": 25.0, "heldout-combination": 50.0}  # issue 13's targets (%), drawn dashed


def collect(root: Path) -> dict[int, dict[str, float]]:
    """number of training families -> split -> t2l score (0-100)."""
    n_all = len(get_suite("compositional").training_families("all"))
    points: dict[int, dict[str, float]] = {}
    for path in sorted(root.glob("n*-*/results.json")):
        m = re.fullmatch(r"n(\d+|all)-(.+)", path.parent.name)
        if m is None or m.group(2) not in dict(SPLITS):
            continue
        n = n_all if m.group(1) == "all" else int(m.group(1))
        points.setdefault(n, {})[m.group(2)] = 100 * json.loads(path.read_text())["modes"]["t2l"]["average"]
    return points


def main(root: Path) -> None:
    points = collect(root)
    if not points:
        sys.exit(f"no n<N>-<split>/results.json under {root}")
    lines = ["| training families | " + " | ".join(label for _, label in SPLITS) + " |", "|---:|" + "---:|" * len(SPLITS)]
    for n in sorted(points):
        cells = [f"{points[n][s]:.1f}" if s in points[n] else "n/a" for s, _ in SPLITS]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    (root / "scaling.md").write_text("\n".join(lines) + "\n\nExact match / chrF average (%), mode t2l.\n")
    print("\n".join(lines))

    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for split, label in SPLITS:
        xs = [n for n in sorted(points) if split in points[n]]
        ax.plot(xs, [points[n][split] for n in xs], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xticks(sorted(points), [str(n) for n in sorted(points)])  # the measured sizes, not 10^k
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    for (split, label), colour in zip(SPLITS, ("C0", "C1")):
        ax.axhline(TARGETS[split], color=colour, linestyle="--", linewidth=1, label=f"target, {label}")
    ax.set_xlabel("training families (compositional suite, nested subsets)")
    ax.set_ylabel("score (%)")
    ax.set_title("T2L on unseen tasks vs number of training families")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(root / "scaling.png", dpi=120)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))

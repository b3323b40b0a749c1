"""The README's results table from the eval folders scripts/reproduce_t2l.sh writes.

    python scripts/t2l_table.py RESULTS_DIR

reads RESULTS_DIR/{heldout-family,heldout-desc}-{sft,recon,oracle}/results.json and
prints average exact match (%) per method and split, in the paper's row order.
"""

import json
import sys
from pathlib import Path

SPLITS = (("heldout-family", "held-out families"), ("heldout-desc", "held-out descriptions"))
# (row label, eval run, mode)
ROWS = (
    ("base model", "sft", "base"),
    ("base + description", "sft", "base+desc"),
    ("multi-task LoRA", "sft", "multitask"),
    ("T2L reconstruction", "recon", "t2l"),
    ("T2L SFT", "sft", "t2l"),
    ("T2L SFT + description", "sft", "t2l+desc"),
    ("oracle (per-task LoRA)", "oracle", "oracle"),
    ("probe: T2L reconstruction, random-string description", "recon", "random-desc"),
    ("probe: T2L SFT, random-string description", "sft", "random-desc"),
    ("probe: T2L SFT, another task's description", "sft", "other-desc"),
)


def main(root: Path) -> str:
    results = {}
    for split, _ in SPLITS:
        for run in ("sft", "recon", "oracle"):
            path = root / f"{split}-{run}" / "results.json"
            results[(split, run)] = json.loads(path.read_text()) if path.is_file() else None
    lines = ["| method | " + " | ".join(label for _, label in SPLITS) + " |", "|---|" + "---:|" * len(SPLITS)]
    for label, run, mode in ROWS:
        cells = []
        for split, _ in SPLITS:
            r = results[(split, run)]
            cells.append(f"{100 * r['modes'][mode]['average']:.1f}" if r and mode in r["modes"] else "n/a")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    tasks = {split: len(results[(split, "sft")]["tasks"]) for split, _ in SPLITS if results[(split, "sft")]}
    examples = {split: results[(split, "sft")]["n_examples"] for split, _ in SPLITS if results[(split, "sft")]}
    lines.append("")
    lines.append(
        "Average exact match (%) over tasks; "
        + ", ".join(f"{label}: {tasks[s]} tasks, {examples[s]} examples" for s, label in SPLITS if s in tasks)
        + "."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(main(Path(sys.argv[1])), end="")

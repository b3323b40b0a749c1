"""The README's context-distillation table from the eval folders scripts/distill_mix.sh writes.

    python scripts/distill_table.py RESULTS_DIR [START_DIR]

reads RESULTS_DIR/<mix>-<split>/results.json for the mixes ce, ce+kl, kl and prints
one row per mix: chrF on the two open-ended splits, exact match on held-out
descriptions of the short-answer tasks, and the median answer length in tokens.
START_DIR (optional) holds the starting checkpoint's scores as
START_DIR/shipped-<split>/results.json, printed as the first row.
"""

import json
import sys
from pathlib import Path

SPLITS = (
    ("heldout-family-open", "held-out open families (chrF)"),
    ("heldout-desc-open", "held-out open descriptions (chrF)"),
    ("heldout-desc", "held-out short descriptions (exact match)"),
)
MIXES = (
    ("ce", "supervised only: ce"),
    ("ce+kl", "ce + 1.0 x distillation KL"),
    ("kl", "distillation KL only (no reference answers)"),
)


def cell(path: Path) -> str:
    if not path.is_file():
        return "n/a"
    t2l = json.loads(path.read_text())["modes"]["t2l"]
    return f"{100 * t2l['average']:.1f} ({t2l['median_tokens']:g})"


def main(root: Path, start: Path | None) -> str:
    lines = ["| run | " + " | ".join(label for _, label in SPLITS) + " |", "|---|" + "---:|" * len(SPLITS)]
    if start is not None:
        cells = [cell(start / f"shipped-{split}" / "results.json") for split, _ in SPLITS]
        lines.append("| start (shipped checkpoint) | " + " | ".join(cells) + " |")
    for mix, label in MIXES:
        cells = [cell(root / f"{mix}-{split}" / "results.json") for split, _ in SPLITS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Score, with the median generated length in tokens in brackets; mode t2l (adapter, no description).")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    print(main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) == 3 else None), end="")

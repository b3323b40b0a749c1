"""What the benchmark scripts share: list arguments, the optional plot, and the JSON + markdown + PNG outputs.

The scripts run as `python benchmarks/<name>.py`, where the repo root is not on
sys.path; each puts it there before importing `benchmarks.*`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable


def int_list(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of positive integers, got {text!r}")
    return values


def pyplot():
    """matplotlib.pyplot on the Agg backend, or None (and a note) when matplotlib is not installed: the PNG is optional."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is not installed; skipping the PNG (pip install matplotlib)", file=sys.stderr)
        return None
    return plt


def write_outputs(report: dict, out_dir: Path, name: str, markdown: Callable[[dict], str],
                  plot: Callable[[dict, Path], bool]) -> dict[str, str]:
    """<name>.json, <name>.md and, when `plot` draws it, <name>.png in `out_dir`; their paths by kind."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / f"{name}.json", "markdown": out_dir / f"{name}.md"}
    paths["json"].write_text(json.dumps(report, indent=2) + "\n")
    paths["markdown"].write_text(markdown(report))
    if plot(report, out_dir / f"{name}.png"):
        paths["png"] = out_dir / f"{name}.png"
    return {k: str(v) for k, v in paths.items()}


def score_adapter_folder(work: Path, examples: list[dict], max_tokens: int = 12) -> list[dict]:
    """Score `examples` (task = an adapter folder name under work/adapters) with one
    `t2l-vllm eval --modes oracle` run; returns its predictions (one dict per example, with "score")."""
    import subprocess

    tasks = work / "tasks.jsonl"
    tasks.write_text("".join(json.dumps(e) + "\n" for e in examples))
    cli = Path(sys.executable).parent / "t2l-vllm"
    subprocess.run([str(cli), "eval", "--tasks", str(tasks), "--modes", "oracle", "--oracles", str(work / "adapters"),
                    "--out", str(work / "eval"), "--max-tokens", str(max_tokens)], check=True)
    return [json.loads(line) for line in (work / "eval" / "predictions.jsonl").read_text().splitlines()]


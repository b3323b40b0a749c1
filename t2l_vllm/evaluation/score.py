"""Exact match of the normalised output with the normalised target, per task, then the unweighted mean over tasks."""

from __future__ import annotations

from collections import defaultdict

_STRIP = " \t\r\n.,;:!?\"'`“”‘’«»"


def normalize_answer(text: str) -> str:
    """First non-blank line, trimmed, case-folded, trailing punctuation and quotes stripped.

    Leading quotes go too, so '"Paris."' and 'paris' match.
    """
    lines = text.strip().splitlines()
    first = lines[0] if lines else ""
    return first.strip().casefold().strip(_STRIP)


def score(examples: list[dict], modes: tuple[str, ...], outputs: list[tuple[str, int, str]]) -> tuple[list[dict], dict]:
    """Predictions (in mode order, then example order) and per mode {"average", "per_task"}.

    `outputs` holds (mode, example index, output text), in any order.
    """
    predictions = []
    hits: dict[str, dict[str, list[int]]] = {m: defaultdict(list) for m in modes}
    for mode, i, text in outputs:
        ex = examples[i]
        correct = normalize_answer(text) == normalize_answer(ex["target"])
        hits[mode][ex["task"]].append(int(correct))
        predictions.append({"mode": mode, "index": i, "task": ex["task"], "output": text, "target": ex["target"], "correct": correct})
    predictions.sort(key=lambda p: (modes.index(p["mode"]), p["index"]))
    tasks = sorted({ex["task"] for ex in examples})
    return predictions, {mode: _averages(hits[mode], tasks) for mode in modes}


def _averages(hits: dict[str, list[int]], tasks: list[str]) -> dict:
    per_task = {t: sum(hits[t]) / len(hits[t]) for t in tasks}
    return {"average": sum(per_task.values()) / len(per_task), "per_task": per_task}

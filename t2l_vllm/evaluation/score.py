"""Per example: exact match for short-answer tasks, chrF for open-ended ones; per task, then the mean over tasks.

A task's answer type comes from the task suite (`TaskFamily.answer`); tasks the
suite does not know are scored as short answers. Each mode also gets its median
generated length, which shows answer-length collapse (an adapter that answers
an open-ended task in one or two tokens).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict

_STRIP = " \t\r\n.,;:!?\"'`“”‘’«»"


def normalize_answer(text: str) -> str:
    """First non-blank line, trimmed, case-folded, trailing punctuation and quotes stripped.

    Leading quotes go too, so '"Paris."' and 'paris' match.
    """
    lines = text.strip().splitlines()
    first = lines[0] if lines else ""
    return first.strip().casefold().strip(_STRIP)


def chrf(output: str, target: str) -> float:
    """Sentence chrF of `output` against `target`, in [0, 1] (sacrebleu's chrF, default n-gram settings)."""
    from sacrebleu.metrics import CHRF

    return CHRF().sentence_score(output.strip(), [target.strip()]).score / 100.0


def answer_type(task: str) -> str:
    """"open" for the open-ended families of either suite (v1 or compositional), else "short"."""
    from t2l_vllm.tasks.suites import find_family

    family = find_family(task)
    return family.answer if family is not None else "short"


def score(
    examples: list[dict], modes: tuple[str, ...], outputs: list[tuple[str, int, str, int]],
    routes: dict[tuple[str, int], str] | None = None,
) -> tuple[list[dict], dict]:
    """Predictions (in mode order, then example order) and per mode {"average", "per_task", "median_tokens"}.

    `outputs` holds (mode, example index, output text, generated tokens), in any order;
    `routes` the path mode "policy" served each example by.
    """
    routes = routes or {}
    predictions = []
    scores: dict[str, dict[str, list[float]]] = {m: defaultdict(list) for m in modes}
    lengths: dict[str, list[int]] = defaultdict(list)
    for mode, i, text, n_tokens in outputs:
        ex = examples[i]
        if answer_type(ex["task"]) == "open":
            value = chrf(text, ex["target"])
        else:
            value = float(normalize_answer(text) == normalize_answer(ex["target"]))
        scores[mode][ex["task"]].append(value)
        lengths[mode].append(n_tokens)
        pred = {"mode": mode, "index": i, "task": ex["task"], "output": text, "target": ex["target"],
                "correct": value == 1.0, "score": round(value, 4), "tokens": n_tokens}
        if (mode, i) in routes:
            pred["route"] = routes[(mode, i)]
        predictions.append(pred)
    predictions.sort(key=lambda p: (modes.index(p["mode"]), p["index"]))
    tasks = sorted({ex["task"] for ex in examples})
    out = {}
    for mode in modes:
        out[mode] = {**_averages(scores[mode], tasks), "median_tokens": statistics.median(lengths[mode])}
        served = Counter(r for (m, _), r in routes.items() if m == mode)
        if served:
            out[mode]["routes"] = dict(sorted(served.items()))
    return predictions, out


def _averages(scores: dict[str, list[float]], tasks: list[str]) -> dict:
    per_task = {t: sum(scores[t]) / len(scores[t]) for t in tasks}
    return {"average": sum(per_task.values()) / len(per_task), "per_task": per_task}

"""Which adapter each (mode, example) request uses, and the folder it is loaded from.

The generated modes get one adapter per distinct description, written into a
scratch folder the caller owns; multitask and oracle point at existing PEFT folders.
"""

from __future__ import annotations

import json
import random
import string
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from t2l_vllm.confidence import DEFAULT_MIN_CONFIDENCE, DEFAULT_POLICY, route
from t2l_vllm.evaluation.config import GENERATED_MODES
from t2l_vllm.peft_format import CONFIG_FILE
from t2l_vllm.tasks.splits import family_seed

# The rank assumed without generated adapters, and for a PEFT config that has no "r".
DEFAULT_RANK = 8


@dataclass(frozen=True)
class AdapterPlan:
    """The adapters of one eval run.

    folders: adapter name (an adapter id, "multitask" or "oracle:<task>") -> PEFT folder
    by_request: (mode, example index) -> adapter name; a request not in it uses none
    max_rank: the largest rank among them, which sizes vLLM's LoRA slots
    routes: (mode "policy", example index) -> the path the policy picked (adapter, prompt, both)
    confidence: description -> its confidence (None without a confidence index)
    """

    folders: dict[str, Path]
    by_request: dict[tuple[str, int], str]
    max_rank: int
    routes: dict[tuple[str, int], str] = field(default_factory=dict)
    confidence: dict[str, float | None] = field(default_factory=dict)


def check_inputs(examples, modes, hypernet_dir, multitask_dir, oracle_dir) -> None:
    if not examples:
        raise ValueError("the task file has no examples")
    if any(m in GENERATED_MODES for m in modes) and hypernet_dir is None:
        raise ValueError("modes t2l, t2l+desc, random-desc and other-desc need a hypernetwork (--hypernet)")
    if "multitask" in modes:
        if multitask_dir is None or not (Path(multitask_dir) / CONFIG_FILE).is_file():
            raise ValueError("mode multitask needs --multitask pointing at a PEFT adapter folder")
    if "oracle" in modes:
        if oracle_dir is None:
            raise ValueError("mode oracle needs --oracles, a folder with one PEFT adapter per task")
        missing = sorted({ex["task"] for ex in examples if not (Path(oracle_dir) / ex["task"] / CONFIG_FILE).is_file()})
        if missing:
            raise ValueError(f"--oracles {oracle_dir} has no adapter for: {', '.join(missing)}")


def random_description(description: str, seed: int) -> str:
    """A random string of letters and spaces as long as `description`, fixed by (seed, description)."""
    rng = random.Random(family_seed(seed, "random-desc:" + description))
    alphabet = string.ascii_lowercase + "      "
    return "".join(rng.choice(alphabet) for _ in description).strip() or "x"


def other_description(example: dict, by_task: dict[str, list[str]], seed: int) -> str:
    """A description of a different task from the same file, fixed by (seed, example)."""
    others = sorted(t for t in by_task if t != example["task"])
    if not others:
        raise ValueError("the other-desc probe needs a task file with at least two tasks")
    rng = random.Random(family_seed(seed, "other-desc:" + example["description"] + "\0" + example["input"]))
    return rng.choice(by_task[rng.choice(others)])


def _adapter_descriptions(examples: list[dict], modes: tuple[str, ...], seed: int) -> dict[tuple[str, int], str]:
    """(mode, example index) -> the description its adapter is generated from."""
    by_task: dict[str, list[str]] = defaultdict(list)
    for ex in examples:
        if ex["description"] not in by_task[ex["task"]]:
            by_task[ex["task"]].append(ex["description"])
    out = {}
    for mode in modes:
        for i, ex in enumerate(examples):
            if mode in ("t2l", "t2l+desc", "policy"):
                out[(mode, i)] = ex["description"]
            elif mode == "random-desc":
                out[(mode, i)] = random_description(ex["description"], seed)
            elif mode == "other-desc":
                out[(mode, i)] = other_description(ex, by_task, seed)
    return out


def plan_adapters(
    examples: list[dict],
    modes: tuple[str, ...],
    seed: int,
    scratch_dir: str | Path,
    base_model_dir: Path,
    hypernet_dir: str | Path | None,
    multitask_dir: str | Path | None,
    oracle_dir: str | Path | None,
    policy: str = DEFAULT_POLICY,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
) -> AdapterPlan:
    """Generate the adapters the modes need into `scratch_dir` and locate the others."""
    folders, by_request, rank, confidence = _generate(examples, modes, seed, scratch_dir, base_model_dir, hypernet_dir)
    routes = {}
    if "policy" in modes:  # exactly the server's choice (confidence.route), per example
        for i, ex in enumerate(examples):
            routes[("policy", i)] = route(confidence.get(ex["description"]), policy, min_confidence)
            if routes[("policy", i)] == "prompt":
                by_request.pop(("policy", i), None)
    if "multitask" in modes:
        folders["multitask"] = Path(multitask_dir)
        by_request.update({("multitask", i): "multitask" for i in range(len(examples))})
    if "oracle" in modes:
        for i, ex in enumerate(examples):
            folders["oracle:" + ex["task"]] = Path(oracle_dir) / ex["task"]
            by_request[("oracle", i)] = "oracle:" + ex["task"]
    for path in folders.values():
        cfg = json.loads((path / CONFIG_FILE).read_text())
        rank = max(rank, int(cfg.get("r", DEFAULT_RANK)))
    return AdapterPlan(folders, by_request, rank, routes, confidence)


def _generate(examples, modes, seed, scratch_dir, base_model_dir, hypernet_dir) -> tuple[dict, dict, int]:
    """Folders, request map and confidences of the generated modes (one adapter per distinct description),
    and the hypernet's rank."""
    wanted = _adapter_descriptions(examples, modes, seed)
    if not wanted:
        return {}, {}, DEFAULT_RANK, {}
    from t2l_vllm.generator import AdapterGenerator

    # Loaded only for this call: its memory is free again before the engine starts.
    gen = AdapterGenerator.from_pretrained(hypernet_dir, base_model_dir)
    made = gen.generate_to_dir(sorted(set(wanted.values())), scratch_dir)
    folders = {adapter.adapter_id: path for adapter, path in made}
    by_request = {key: gen.adapter_id(text) for key, text in wanted.items()}
    by_id = {adapter.adapter_id: adapter.confidence for adapter, _ in made}
    confidence = {text: by_id[gen.adapter_id(text)] for text in set(wanted.values())}
    return folders, by_request, gen.hypernet.config.rank, confidence

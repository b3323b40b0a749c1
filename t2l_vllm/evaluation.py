"""`t2l-vllm eval`: every mode of a task file through one vLLM engine, scored by exact match.

Modes (prompt formats in t2l_vllm.prompts):
    base         no adapter, input as the user message
    base+desc    no adapter, description as the system message
    t2l          adapter generated from the example's description, input alone
    t2l+desc     that adapter and the description as the system message
    multitask    the multi-task LoRA (--multitask), description as the system message
                 (as it was trained: inputs carry no instructions)
    oracle       the task's own oracle LoRA (--oracles/<task>), input alone
    random-desc  robustness probe: adapter from a random string as long as the description
    other-desc   robustness probe: adapter from another task's description

All requests of all modes go to one engine in one `generate` call, so vLLM
batches them continuously across adapters (multi-LoRA). Decoding is greedy,
at most `max_tokens` new tokens. Score: exact match of the normalised output
with the normalised target, per task, then the unweighted mean over tasks.
"""

from __future__ import annotations

import json
import random
import string
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from t2l_vllm.peft_format import CONFIG_FILE
from t2l_vllm.tasks.splits import family_seed

MODES = ("base", "base+desc", "t2l", "t2l+desc", "multitask", "oracle", "random-desc", "other-desc")
DEFAULT_MODES = ("base", "base+desc", "t2l", "t2l+desc")
# The prompt each mode renders.
PROMPT_STYLE = {
    "base": "base",
    "base+desc": "base+desc",
    "t2l": "t2l",
    "t2l+desc": "t2l+desc",
    "multitask": "base+desc",
    "oracle": "t2l",
    "random-desc": "t2l",
    "other-desc": "t2l",
}
GENERATED_MODES = ("t2l", "t2l+desc", "random-desc", "other-desc")
_STRIP = " \t\r\n.,;:!?\"'`“”‘’«»"


def normalize_answer(text: str) -> str:
    """First non-blank line, trimmed, case-folded, trailing punctuation and quotes stripped.

    Leading quotes go too, so '"Paris."' and 'paris' match.
    """
    lines = text.strip().splitlines()
    first = lines[0] if lines else ""
    return first.strip().casefold().strip(_STRIP)


def parse_modes(text: str) -> tuple[str, ...]:
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ValueError(f"unknown modes {unknown}; choose from {', '.join(MODES)}")
    if len(set(modes)) != len(modes):
        raise ValueError(f"mode listed twice in {text!r}")
    return modes


@dataclass(frozen=True)
class EvalConfig:
    modes: tuple[str, ...] = DEFAULT_MODES
    max_tokens: int = 32
    seed: int = 0
    max_loras: int = 32

    def __post_init__(self) -> None:
        parse_modes(",".join(self.modes))
        if not 1 <= self.max_tokens <= 4096:
            raise ValueError(f"max_tokens must be in [1, 4096], got {self.max_tokens}")
        if self.max_loras < 1:
            raise ValueError(f"max_loras must be >= 1, got {self.max_loras}")


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
            if mode in ("t2l", "t2l+desc"):
                out[(mode, i)] = ex["description"]
            elif mode == "random-desc":
                out[(mode, i)] = random_description(ex["description"], seed)
            elif mode == "other-desc":
                out[(mode, i)] = other_description(ex, by_task, seed)
    return out


def _check_inputs(examples, modes, hypernet_dir, multitask_dir, oracle_dir) -> None:
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


def run_eval(
    examples: list[dict],
    base_model_dir: str | Path,
    out_dir: str | Path,
    config: EvalConfig,
    hypernet_dir: str | Path | None = None,
    multitask_dir: str | Path | None = None,
    oracle_dir: str | Path | None = None,
) -> dict:
    """Evaluate; writes results.json, results.md, predictions.jsonl and averages.png into out_dir.

    Generated adapters are written to a temporary folder removed at the end.
    """
    from transformers import AutoTokenizer

    from t2l_vllm.prompts import prompt_ids
    from t2l_vllm.target_spec import read_base_config

    modes = config.modes
    _check_inputs(examples, modes, hypernet_dir, multitask_dir, oracle_dir)
    out_dir, base_model_dir = Path(out_dir), Path(base_model_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    # 1. Adapters: generated ones (one per distinct description), multitask, oracles.
    adapter_paths: dict[str, Path] = {}  # adapter name -> folder
    request_adapter: dict[tuple[str, int], str] = {}  # (mode, i) -> adapter name
    rank = 8
    wanted = _adapter_descriptions(examples, modes, config.seed)
    # Generated adapters live only as long as the run (hundreds of folders, ~1 MB each).
    scratch = tempfile.TemporaryDirectory(prefix="t2l-eval-")
    if wanted:
        from t2l_vllm.generator import AdapterGenerator

        gen = AdapterGenerator.from_pretrained(hypernet_dir, base_model_dir)
        rank = gen.hypernet.config.rank
        for adapter, path in gen.generate_to_dir(sorted(set(wanted.values())), scratch.name):
            adapter_paths[adapter.adapter_id] = path
        for key, text in wanted.items():
            request_adapter[key] = gen.adapter_id(text)
        del gen
    if "multitask" in modes:
        adapter_paths["multitask"] = Path(multitask_dir)
        request_adapter.update({("multitask", i): "multitask" for i in range(len(examples))})
    if "oracle" in modes:
        for i, ex in enumerate(examples):
            adapter_paths["oracle:" + ex["task"]] = Path(oracle_dir) / ex["task"]
            request_adapter[("oracle", i)] = "oracle:" + ex["task"]
    for path in adapter_paths.values():
        cfg = json.loads((path / CONFIG_FILE).read_text())
        rank = max(rank, int(cfg.get("r", 8)))

    # 2. Requests, sorted by adapter so consecutive scheduling reuses loaded slots.
    tokenizer = AutoTokenizer.from_pretrained(str(base_model_dir))
    requests = []
    for mode in modes:
        for i, ex in enumerate(examples):
            ids = prompt_ids(tokenizer, PROMPT_STYLE[mode], ex["description"], ex["input"])
            requests.append((mode, i, ids, request_adapter.get((mode, i))))
    requests.sort(key=lambda r: (r[3] or "", r[0], r[1]))

    # 3. One engine, one generate call.
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.lora.request import LoRARequest

    from t2l_vllm.config import VLLM_RANKS

    names = sorted(adapter_paths)
    lora_ids = {name: k + 1 for k, name in enumerate(names)}
    base_cfg = read_base_config(base_model_dir)
    dtype = base_cfg.get("torch_dtype") or base_cfg.get("dtype") or "auto"
    llm = LLM(
        model=str(base_model_dir),
        dtype=dtype,
        enable_lora=bool(names),
        max_lora_rank=next(r for r in VLLM_RANKS if r >= rank),
        max_loras=config.max_loras,
        max_cpu_loras=max(config.max_loras, 2 * config.max_loras),
        max_model_len=min(2048, int(base_cfg.get("max_position_embeddings", 2048))),
        seed=config.seed,
    )
    params = SamplingParams(temperature=0.0, max_tokens=config.max_tokens)
    lora_requests = [
        LoRARequest(name, lora_ids[name], str(adapter_paths[name].resolve())) if name else None
        for _, _, _, name in requests
    ]
    outputs = llm.generate(
        [TokensPrompt(prompt_token_ids=ids) for _, _, ids, _ in requests],
        params,
        lora_request=lora_requests if names else None,
        use_tqdm=False,
    )
    del llm
    scratch.cleanup()

    # 4. Score.
    predictions = []
    hits: dict[str, dict[str, list[int]]] = {m: defaultdict(list) for m in modes}
    for (mode, i, _, name), out in zip(requests, outputs):
        ex = examples[i]
        text = out.outputs[0].text
        correct = normalize_answer(text) == normalize_answer(ex["target"])
        hits[mode][ex["task"]].append(int(correct))
        predictions.append({"mode": mode, "index": i, "task": ex["task"], "output": text, "target": ex["target"], "correct": correct})
    predictions.sort(key=lambda p: (modes.index(p["mode"]), p["index"]))
    tasks = sorted({ex["task"] for ex in examples})
    results = {
        "n_examples": len(examples),
        "tasks": tasks,
        "config": {"modes": list(modes), "max_tokens": config.max_tokens, "seed": config.seed},
        "base_model": str(base_model_dir),
        "hypernet": str(hypernet_dir) if hypernet_dir else None,
        "modes": {},
    }
    for mode in modes:
        per_task = {t: sum(hits[mode][t]) / len(hits[mode][t]) for t in tasks}
        results["modes"][mode] = {"average": sum(per_task.values()) / len(per_task), "per_task": per_task}
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    with open(out_dir / "predictions.jsonl", "w", encoding="utf-8") as fh:
        for p in predictions:
            fh.write(json.dumps(p, ensure_ascii=False) + "\n")
    (out_dir / "results.md").write_text(markdown_table(results))
    plot_averages(results, out_dir / "averages.png")
    return results


def markdown_table(results: dict) -> str:
    """Tasks as rows, modes as columns, exact match in percent; the average row last."""
    modes = list(results["modes"])
    lines = ["| task | " + " | ".join(modes) + " |", "|---|" + "---:|" * len(modes)]
    for t in results["tasks"]:
        lines.append(f"| {t} | " + " | ".join(f"{100 * results['modes'][m]['per_task'][t]:.1f}" for m in modes) + " |")
    lines.append("| **average** | " + " | ".join(f"**{100 * results['modes'][m]['average']:.1f}**" for m in modes) + " |")
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
    ax.set_ylabel("exact match (%)")
    ax.set_ylim(0, 105)
    ax.set_title(f"average over {len(results['tasks'])} tasks, {results['n_examples']} examples")
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

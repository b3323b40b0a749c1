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
    policy       what `t2l-vllm serve` serves: per example the path its low-confidence
                 policy picks (adapter, base+desc, or both) from the checkpoint's confidence

All requests of all modes go to one engine in one `generate` call, so vLLM
batches them continuously across adapters (multi-LoRA). Decoding is greedy,
at most `max_tokens` new tokens. Score per example: exact match of the normalised
output with the normalised target for short-answer tasks, chrF (sacrebleu, 0-1)
for open-ended ones; per task, then the unweighted mean over tasks. Each mode also
reports its median generated length in tokens (the answer-length collapse probe).

One module per step of `run_eval`: plan (which adapter each request uses),
run (tokenise, one vLLM engine), score, report (the files).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from t2l_vllm.evaluation.config import DEFAULT_MODES, GENERATED_MODES, MODES, PROMPT_STYLE, EvalConfig, parse_modes
from t2l_vllm.evaluation.plan import check_inputs, other_description, plan_adapters, random_description
from t2l_vllm.evaluation.report import make_results, markdown_table, plot_averages, write_report
from t2l_vllm.evaluation.run import build_requests, generate
from t2l_vllm.evaluation.score import normalize_answer, score

__all__ = [
    "DEFAULT_MODES", "GENERATED_MODES", "MODES", "PROMPT_STYLE", "EvalConfig", "markdown_table", "normalize_answer",
    "other_description", "parse_modes", "plot_averages", "random_description", "run_eval",
]


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

    Generated adapters are written to a temporary folder removed once the engine is done.
    """
    check_inputs(examples, config.modes, hypernet_dir, multitask_dir, oracle_dir)
    out_dir, base_model_dir = Path(out_dir), Path(base_model_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Generated adapters live only as long as the run (hundreds of folders, ~1 MB each).
    with tempfile.TemporaryDirectory(prefix="t2l-eval-") as scratch:
        plan = plan_adapters(examples, config.modes, config.seed, scratch, base_model_dir,
                             hypernet_dir, multitask_dir, oracle_dir, config.policy, config.min_confidence)
        requests = build_requests(examples, config.modes, plan, base_model_dir)
        outputs = generate(requests, plan, base_model_dir, config)
    predictions, mode_scores = score(examples, config.modes, outputs, plan.routes)
    results = make_results(examples, config, base_model_dir, hypernet_dir, mode_scores)
    write_report(results, predictions, out_dir)
    return results

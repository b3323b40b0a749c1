"""The eval's prompts, tokenised, run through one vLLM engine in one `generate` call.

One call lets vLLM batch the requests of all modes continuously across adapters
(multi-LoRA). Decoding is greedy, at most `max_tokens` new tokens. The only
module of the eval that calls vLLM; it is imported inside the functions, so the
package imports without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from t2l_vllm.evaluation.config import PROMPT_STYLE, ROUTE_STYLE, EvalConfig
from t2l_vllm.evaluation.plan import AdapterPlan


class Request(NamedTuple):
    mode: str
    index: int  # of the example in the task file
    prompt_ids: list[int]
    adapter: str | None  # a name in AdapterPlan.folders; None for the base model


def build_requests(examples: list[dict], modes: tuple[str, ...], plan: AdapterPlan, base_model_dir: Path) -> list[Request]:
    """Every (mode, example) prompt, sorted by adapter so consecutive scheduling reuses loaded slots."""
    from transformers import AutoTokenizer

    from t2l_vllm.prompts import prompt_ids

    tokenizer = AutoTokenizer.from_pretrained(str(base_model_dir))
    def style(mode: str, i: int) -> str:
        path = plan.routes.get((mode, i))
        return ROUTE_STYLE[path] if path else PROMPT_STYLE[mode]

    requests = [
        Request(mode, i, prompt_ids(tokenizer, style(mode, i), ex["description"], ex["input"]), plan.by_request.get((mode, i)))
        for mode in modes
        for i, ex in enumerate(examples)
    ]
    requests.sort(key=lambda r: (r.adapter or "", r.mode, r.index))
    return requests


def engine_args(base_model_dir: Path, plan: AdapterPlan, config: EvalConfig) -> dict:
    """`vllm.LLM` arguments: the base model's dtype and context (capped at 2048), LoRA slots sized for the plan."""
    from t2l_vllm.config import VLLM_RANKS
    from t2l_vllm.target_spec import read_base_config

    base_cfg = read_base_config(base_model_dir)
    return dict(
        model=str(base_model_dir),
        dtype=base_cfg.get("torch_dtype") or base_cfg.get("dtype") or "auto",
        enable_lora=bool(plan.folders),
        max_lora_rank=next(r for r in VLLM_RANKS if r >= plan.max_rank),
        max_loras=config.max_loras,
        max_cpu_loras=max(config.max_loras, 2 * config.max_loras),
        max_model_len=min(2048, int(base_cfg.get("max_position_embeddings", 2048))),
        seed=config.seed,
    )


def generate(
    requests: list[Request], plan: AdapterPlan, base_model_dir: Path, config: EvalConfig
) -> list[tuple[str, int, str, int]]:
    """(mode, example index, output text, generated token count) of every request."""
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.lora.request import LoRARequest

    names = sorted(plan.folders)
    lora_ids = {name: k + 1 for k, name in enumerate(names)}
    llm = LLM(**engine_args(base_model_dir, plan, config))
    params = SamplingParams(temperature=0.0, max_tokens=config.max_tokens)
    lora_requests = [
        LoRARequest(r.adapter, lora_ids[r.adapter], str(plan.folders[r.adapter].resolve())) if r.adapter else None
        for r in requests
    ]
    outputs = llm.generate(
        [TokensPrompt(prompt_token_ids=r.prompt_ids) for r in requests],
        params,
        lora_request=lora_requests if names else None,
        use_tqdm=False,
    )
    # Dropped here, not left to the return: when this call is the process's first vLLM
    # import, vLLM keeps the traceback of its failed optional torchcodec import
    # (vllm/multimodal/media/audio.py), and with it this frame. An `llm` still in
    # the frame keeps the engine process alive and hangs the interpreter's exit.
    del llm
    return [(r.mode, r.index, out.outputs[0].text, len(out.outputs[0].token_ids)) for r, out in zip(requests, outputs)]

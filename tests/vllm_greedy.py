"""Greedy decoding through a real vLLM engine, base model and LoRA adapters in one batch.

Run in its own interpreter (vLLM spawns workers that re-import __main__):
    python tests/vllm_greedy.py SPEC.json OUT.json
SPEC: {"model": dir, "dtype": "float32", "max_tokens": 16, "prompts": [...],
       "adapters": {"name": path, ...}, "max_lora_rank": 8, "chat": false, "ignore_eos": true,
       "compiled": false (true: let vLLM torch.compile the model),
       "max_loras": slots in the engine (default: one per adapter; fewer makes
       vLLM rewrite slots as adapters come and go)}
OUT:  {"separate": {"base": [[token ids], ...], "<name>": [...]}, "mixed": {...}}
      "separate" decodes each adapter's prompts (and the base's) as its own batch,
      "mixed" decodes all of them in one batch; "compilation_mode": the engine's.
"""

import json
import os
import sys


def main(spec_path: str, out_path: str) -> None:
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    spec = json.loads(open(spec_path).read())
    adapters = spec.get("adapters", {})
    llm = LLM(
        model=spec["model"],
        dtype=spec.get("dtype", "float32"),
        enable_lora=True,
        max_lora_rank=spec.get("max_lora_rank", 8),
        max_loras=spec.get("max_loras") or max(1, len(adapters)),
        max_model_len=512,
        seed=0,
        enforce_eager=not spec.get("compiled", False),
    )
    params = SamplingParams(
        temperature=0.0, max_tokens=spec.get("max_tokens", 16), ignore_eos=spec.get("ignore_eos", True)
    )
    prompts = spec["prompts"]
    if spec.get("chat"):
        tok = llm.get_tokenizer()
        prompts = [
            tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
            for p in prompts
        ]
    runs = [("base", None)] + [
        (name, LoRARequest(name, i + 1, os.path.abspath(path))) for i, (name, path) in enumerate(adapters.items())
    ]
    result = {"separate": {}, "mixed": {}, "texts": {}}
    result["compilation_mode"] = llm.llm_engine.vllm_config.compilation_config.mode.name
    # One batch per adapter (and one for the base model) ...
    for name, lora in runs:
        outputs = llm.generate(prompts, params, lora_request=lora)
        result["separate"][name] = [list(o.outputs[0].token_ids) for o in outputs]
        result["texts"][name] = [o.outputs[0].text for o in outputs]
    # ... then everything in one mixed batch, base requests beside LoRA ones.
    all_prompts = [p for _ in runs for p in prompts]
    all_loras = [lora for _, lora in runs for _ in prompts]
    outputs = llm.generate(all_prompts, params, lora_request=all_loras)
    for k, (name, _) in enumerate(runs):
        chunk = outputs[k * len(prompts) : (k + 1) * len(prompts)]
        result["mixed"][name] = [list(o.outputs[0].token_ids) for o in chunk]
    with open(out_path, "w") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""Generate adapters from descriptions and decode through them with vLLM's offline LLM.

    .venv/bin/python examples/offline_vllm.py

Uses the embedded defaults (SmolLM2-135M-Instruct, all-MiniLM-L6-v2, the default
hypernetwork). Each request runs through the adapter of its own description, all
in one batch.
"""

import os
import tempfile

TASKS = {
    "Answer with the capital city of the given country, one word.": "Italy",
    "Translate the English word into French. Answer with one word.": "house",
}


def main() -> None:
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    from t2l_vllm import defaults
    from t2l_vllm.generator import AdapterGenerator

    base = defaults.default_base_model_dir()
    gen = AdapterGenerator.from_pretrained(defaults.default_hypernet_dir(base), base)
    out_dir = tempfile.mkdtemp(prefix="t2l-adapters-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    made = gen.generate_to_dir(list(TASKS), out_dir)
    t = made[0][0].timings
    print(f"generated {len(made)} adapters: encode {t.encode_ms:.1f} ms, hypernet {t.hypernet_ms:.1f} ms, write {t.write_ms:.1f} ms")

    llm = LLM(model=str(base), enable_lora=True, max_lora_rank=8, max_loras=len(made), max_model_len=1024)
    tok = llm.get_tokenizer()
    prompts, loras = [], []
    for i, ((adapter, path), user_input) in enumerate(zip(made, TASKS.values())):
        messages = [{"role": "user", "content": user_input}]
        prompts.append(tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        loras.append(LoRARequest(adapter.adapter_id, i + 1, str(path)))
    for (adapter, _), out in zip(made, llm.generate(prompts, SamplingParams(temperature=0, max_tokens=24), lora_request=loras)):
        print(f"{adapter.adapter_id}  {adapter.description!r}\n  -> {out.outputs[0].text!r}")


if __name__ == "__main__":
    main()

"""How long vLLM's worker takes to load one generated adapter folder (no engine).

    .venv/bin/python benchmarks/lora_load_bench.py [--n 20]

An adapter registered by name (serving/vllm_plugin.py) is loaded by vLLM's worker
when its first request is scheduled: `PEFTHelper.from_local_dir` plus
`LoRAModel.from_local_checkpoint` (vllm/lora/worker_manager.py `_load_adapter`),
inside the engine step. This times exactly those two calls on folders the shipped
hypernetwork wrote for the default model (bf16, CPU), each a new adapter as on
the cold path. Not timed: copying the weights into the engine's stacked LoRA
slots (`activate_adapter`), which needs a live engine. Reads vLLM internals, so
it may need updating with vLLM.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ is None:  # run as `python benchmarks/lora_load_bench.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=20, help="adapters loaded (each a new description)")
    args = p.parse_args()
    import torch
    from vllm.lora.lora_model import LoRAModel
    from vllm.lora.peft_helper import PEFTHelper

    from t2l_vllm import defaults
    from t2l_vllm.adapter import write_adapter
    from t2l_vllm.generator import AdapterGenerator

    gen = AdapterGenerator.from_pretrained(defaults.SHIPPED_HYPERNET, defaults.default_base_model_dir(),
                                           base_model_name=defaults.BASE_NAME)
    modules = set(gen.peft_config["target_modules"])
    times = []
    with tempfile.TemporaryDirectory() as work:
        for i in range(args.n):
            [adapter] = gen.generate([f"Reply with the word number {i}."])
            path = str(Path(work) / f"a{i}")
            write_adapter(adapter.tensors, adapter.peft_config, path)
            t0 = time.perf_counter()
            helper = PEFTHelper.from_local_dir(path, 8192)
            LoRAModel.from_local_checkpoint(path, modules, peft_helper=helper, lora_model_id=i + 1, device="cpu",
                                            dtype=torch.bfloat16)
            times.append(1000 * (time.perf_counter() - t0))
    print(f"vLLM worker load of one adapter folder ({', '.join(sorted(modules))}), {args.n} adapters: "
          f"p50 {statistics.median(times):.1f} ms, min {min(times):.1f}, max {max(times):.1f}")


if __name__ == "__main__":
    main()

"""What a new generated adapter costs vLLM's worker: the folder load, and the whole first step.

    .venv/bin/python benchmarks/lora_load_bench.py [--n 20]            # folder load only, no engine
    .venv/bin/python benchmarks/lora_load_bench.py --engine [--n 12]   # first step, in-process engine
    .venv/bin/python benchmarks/lora_load_bench.py --decode [--n 10]   # one stream's decode steps
    .venv/bin/python benchmarks/lora_load_bench.py --decode --streams 32   # 32 sequences, 32 adapters

An adapter registered by name (serving/vllm_plugin.py) is loaded by vLLM's worker
when its first request is scheduled, inside that engine step. Folders are written
by the shipped hypernetwork for the default model (bf16, CPU), each a new adapter
as on the cold path.

Without --engine: `PEFTHelper.from_local_dir` plus `LoRAModel.from_local_checkpoint`
(vllm/lora/worker_manager.py `_load_adapter`) alone.

With --engine: an offline `vllm.LLM` in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0,
so the worker's methods can be timed), the LoRA engine as `t2l-vllm serve` sets it up
(q_proj + v_proj wrapped, --max-loras 8, our ops, compiled). Per round, one prompt and
one output token (a prefill step): through a new adapter (cold), the same adapter
again (warm), no adapter (base). Reported: medians of the request's wall time and of
its parts: vLLM's `_apply_adapters` (of which `_load_adapter`: the folder load, and
`activate_adapter`: the copy into a LoRA slot), our packed layers' `layer` lookups
(re-reading the written slot), and the model step (`execute_model`, which contains
the packed layers' work). More rounds than --max-loras, so slots are rewritten as
they are in a server.

With --decode: the same engine, one prompt decoded for 64 tokens without an adapter
and through one, alternating, --n rounds; the median `execute_model` time of the decode
steps of each (the LoRA cost of one stream, without the API server's noise), and how much
of a step is spent inside our LoRA layers (their Python entry, the op included). With
--streams N: N prompts at once, each through its own adapter (--max-loras N, so all share
every decode step), against the same N prompts without adapters. Reads vLLM internals, so
it may need updating with vLLM.
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ is None:  # run as `python benchmarks/lora_load_bench.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def time_calls(owner, name: str, sink) -> None:
    """Replace `owner.name` by a wrapper that passes each call's milliseconds to `sink`."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            sink(1000 * (time.perf_counter() - t0))

    setattr(owner, name, wrapper)


def make_folders(n: int, work: Path) -> tuple[list[str], set[str]]:
    """n new adapters' folders from the shipped hypernetwork, and the modules they target."""
    from t2l_vllm import defaults
    from t2l_vllm.generator import AdapterGenerator

    gen = AdapterGenerator.from_pretrained(defaults.SHIPPED_HYPERNET, defaults.default_base_model_dir(),
                                           base_model_name=defaults.BASE_NAME)
    made = gen.generate_to_dir([f"Reply with the word number {i}." for i in range(n)], work)
    return [str(path) for _, path in made], set(gen.peft_config["target_modules"])


def folder_load(n: int) -> None:
    import torch
    from vllm.lora.lora_model import LoRAModel
    from vllm.lora.peft_helper import PEFTHelper

    times = []
    with tempfile.TemporaryDirectory() as work:
        paths, modules = make_folders(n, Path(work))
        for i, path in enumerate(paths):
            t0 = time.perf_counter()
            helper = PEFTHelper.from_local_dir(path, 8192)
            LoRAModel.from_local_checkpoint(path, modules, peft_helper=helper, lora_model_id=i + 1, device="cpu",
                                            dtype=torch.bfloat16)
            times.append(1000 * (time.perf_counter() - t0))
    print(f"vLLM worker load of one adapter folder ({', '.join(sorted(modules))}), {n} adapters: "
          f"p50 {statistics.median(times):.1f} ms, min {min(times):.1f}, max {max(times):.1f}")


def first_step(n: int) -> None:
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # worker in this process: its methods can be timed
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    from vllm import LLM, SamplingParams
    from vllm.lora import model_manager, worker_manager
    from vllm.lora.request import LoRARequest
    from vllm.v1.worker import cpu_model_runner

    from t2l_vllm import defaults
    from t2l_vllm.cpu_lora import packed

    spent: dict[str, list[float]] = collections.defaultdict(list)  # part -> ms of each call in the request

    def timed(owner, name: str) -> None:
        time_calls(owner, name, lambda ms: spent[name].append(ms))  # looked up per call: `spent` is cleared

    with tempfile.TemporaryDirectory() as work:
        paths, modules = make_folders(n + 1, Path(work))
        llm = LLM(model=str(defaults.default_base_model_dir()), dtype="bfloat16", max_model_len=1024, seed=0,
                  enable_lora=True, max_loras=8, max_cpu_loras=n + 1, max_lora_rank=8,
                  lora_target_modules=sorted(modules))
        timed(worker_manager.LRUCacheWorkerLoRAManager, "_apply_adapters")
        timed(worker_manager.WorkerLoRAManager, "_load_adapter")
        timed(model_manager.LoRAModelManager, "activate_adapter")
        timed(packed.PackedCache, "layer")
        timed(cpu_model_runner.CPUModelRunner, "execute_model")
        params = SamplingParams(temperature=0, max_tokens=1)
        prompt = "Tell me about the sea and the river stones in a few words, please."
        loras = [LoRARequest(f"a{i}", i + 1, path) for i, path in enumerate(paths)]
        for lora in (None, loras[0], loras[0]):  # compile and warm up
            llm.generate([prompt], params, lora_request=lora, use_tqdm=False)
        rows: dict[str, list[dict[str, float]]] = {"cold": [], "warm": [], "base": []}
        for lora in loras[1:]:
            for kind, request in (("cold", lora), ("warm", lora), ("base", None)):
                spent.clear()
                t0 = time.perf_counter()
                llm.generate([prompt], params, lora_request=request, use_tqdm=False)
                row = {"request": 1000 * (time.perf_counter() - t0)}
                row.update({part: sum(ms) for part, ms in spent.items()})
                rows[kind].append(row)
    parts = ["request", "execute_model", "_apply_adapters", "_load_adapter", "activate_adapter", "layer"]
    print(f"One prefill step (1 prompt, 1 token) through a new adapter, the same again, none; {n} rounds, "
          "medians in ms (0: not called):")
    print("| | " + " | ".join(parts) + " |")
    print("|---|" + "---|" * len(parts))
    for kind, kind_rows in rows.items():
        cells = [statistics.median(row.get(part, 0.0) for row in kind_rows) for part in parts]
        print(f"| {kind} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    cold = statistics.median(r["request"] for r in rows["cold"])
    warm = statistics.median(r["request"] for r in rows["warm"])
    print(f"cold - warm request: {cold - warm:.1f} ms")


def decode_steps(rounds: int, streams: int = 1) -> None:
    """Median decode step of `streams` sequences, each through its own adapter, and without
    adapters, same LoRA engine."""
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest
    from vllm.v1.worker import cpu_model_runner

    from t2l_vllm import defaults
    from t2l_vllm.cpu_lora import vllm_install

    steps: list[tuple[float, float]] = []  # per model step: (ms, of which ms inside our LoRA layers)
    inside = [0.0]
    with tempfile.TemporaryDirectory() as work:
        paths, modules = make_folders(streams, Path(work))
        llm = LLM(model=str(defaults.default_base_model_dir()), dtype="bfloat16", max_model_len=1024, seed=0,
                  enable_lora=True, max_loras=max(8, streams), max_lora_rank=8, lora_target_modules=sorted(modules))
        # Our LoRA layers' Python entry, looked up per call by the op the compiled model calls.
        time_calls(vllm_install, "_lora_linear", lambda ms: inside.__setitem__(0, inside[0] + ms))
        time_calls(cpu_model_runner.CPUModelRunner, "execute_model", lambda ms: steps.append((ms, inside[0])))
        time_calls(cpu_model_runner.CPUModelRunner, "_update_states", lambda ms: inside.__setitem__(0, 0.0))
        params = SamplingParams(temperature=0, max_tokens=64, ignore_eos=True)
        prompts = [f"Tell me about the sea and the river stones in a few words, please. ({i})" for i in range(streams)]
        loras = [LoRARequest(f"a{i}", i + 1, path) for i, path in enumerate(paths)]
        for request in (None, loras):  # compile and warm up
            llm.generate(prompts, params, lora_request=request, use_tqdm=False)
        times: dict[str, list[tuple[float, float]]] = {"base": [], "adapter": []}
        for _ in range(rounds):  # alternating, so drift in the machine's load hits both alike
            for kind, request in (("base", None), ("adapter", loras)):
                steps.clear()
                llm.generate(prompts, params, lora_request=request, use_tqdm=False)
                times[kind] += steps[1:]  # the decode steps (the first one is the prefill of every prompt)
    (base, base_in), (adapter, adapter_in) = (
        tuple(statistics.median(step[i] for step in times[k]) for i in (0, 1)) for k in ("base", "adapter"))
    who = "one stream," if streams == 1 else f"{streams} streams, each through its own adapter,"
    print(f"Decode step of {who} median of {len(times['base'])} steps each: without adapters {base:.2f} ms, "
          f"through adapters {adapter:.2f} ms (+{adapter - base:.2f} ms); tokens/s ratio {base / adapter:.3f}")
    print(f"  of which inside our LoRA layers (vllm_install._lora_linear, all layers of a step): "
          f"{base_in:.3f} ms without adapters, {adapter_in:.3f} ms through adapters")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=None, help="new adapters (default 20; 12 with --engine)")
    p.add_argument("--engine", action="store_true", help="time the first engine step, not the folder load alone")
    p.add_argument("--decode", action="store_true",
                   help="median decode step of one stream with and without an adapter (--n rounds of 64 tokens)")
    p.add_argument("--streams", type=int, default=1,
                   help="with --decode: this many sequences at once, each through its own adapter")
    args = p.parse_args()
    if args.streams < 1 or (args.streams > 1 and not args.decode):
        p.error("--streams: a positive count, with --decode")
    if args.decode:
        decode_steps(args.n or 10, args.streams)
    elif args.engine:
        first_step(args.n or 12)
    else:
        folder_load(args.n or 20)


if __name__ == "__main__":
    main()

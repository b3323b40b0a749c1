"""Where the packed LoRA layer's two paths cross over (sets `packed_lora.RUN_COST`).

    .venv/bin/python benchmarks/packed_lora_paths.py [--adapters 8] [--rank 8]

One packed q/v LoRA on SmolLM2-135M's qkv shapes (d_in 576, slices 576/192/192),
bf16, for batches of T tokens in runs of equal length, adapters round-robin over
runs. Times `packed_lora.lora_linear` forced onto the dense path and onto the
per-run path; prints microseconds per call and the cheaper path. Pure torch, no
vLLM engine.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from t2l_vllm.cpu_lora import packed as packed_lora

SLICES = (576, 192, 192)
D_IN = 576


def time_call(fn, tokens: int) -> float:
    for _ in range(5):
        fn()
    n = max(5, 20000 // tokens)
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--adapters", type=int, default=8)
    p.add_argument("--rank", type=int, default=8)
    args = p.parse_args()
    torch.manual_seed(0)
    bf = torch.bfloat16
    a = tuple(torch.randn(args.adapters, 1, args.rank, D_IN, dtype=bf) for _ in SLICES)
    b = tuple(torch.randn(args.adapters, 1, n, args.rank, dtype=bf) for n in SLICES)
    a[1].zero_()  # k_proj untargeted, as in a q/v adapter
    print("| tokens | run length | dense us | per-run us | cheaper | runs x RUN_COST > tokens x adapters |")
    print("|---|---|---|---|---|---|")
    for tokens in (64, 512, 2048):
        for run in (1, 4, 16, 32, 64, 128, 256):
            if run > tokens:
                continue
            idx = (torch.arange(tokens) // run) % args.adapters
            x, y = torch.randn(tokens, D_IN, dtype=bf), torch.randn(tokens, sum(SLICES), dtype=bf)
            plan, cache = packed_lora.BatchPlan.from_indices(idx), packed_lora.PackedCache()
            us = {}
            for dense in (True, False):
                forced = dataclasses.replace(plan, dense=dense)
                us[dense] = time_call(lambda: packed_lora.lora_linear(x, y, a, b, SLICES, 1.0, forced, cache), tokens)
            rule = len(plan.runs) * packed_lora.RUN_COST > tokens * len(plan.slots)
            cheaper = "dense" if us[True] < us[False] else "per-run"
            print(f"| {tokens} | {run} | {us[True]:.0f} | {us[False]:.0f} | {cheaper} | {'dense' if rule else 'per-run'} |")


if __name__ == "__main__":
    main()

"""The packed LoRA layer on small batches: float32 factors (the small-batch path) against bf16.

    .venv/bin/python benchmarks/small_batch_lora.py [--out-dir benchmarks/results/small_batch_lora]

One q/v LoRA layer on SmolLM2-135M's qkv shapes (d_in 576, slices 576/192/192,
k untargeted), rank 8, bf16 activations, `packed_lora.lora_linear` for decode
batches of T tokens (one token per sequence), with 1 adapter for all tokens and
with one adapter per token. Each cell is timed with the small-batch path on
(`SMALL_TOKENS` = 64, so every T here takes it) and off (`SMALL_TOKENS` = 0:
the bf16 GEMMs), interleaved, best of --rounds; the ratio off/on is the speed-up.
Also the base layer's own GEMM (x @ W^T, bf16) for the same T, to show what
share of a layer the LoRA update costs. Pure torch, one thread, no engine.
Outputs: small_batch_lora.json and .md in --out-dir.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from t2l_vllm.cpu_lora import packed as packed_lora

SLICES = (576, 192, 192)
D_IN = 576


def best_us(fn, calls: int, rounds: int) -> float:
    for _ in range(20):
        fn()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls * 1e6)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", default="1,2,4,8,16,32", help="comma-separated batch sizes T")
    p.add_argument("--slots", type=int, default=32, help="adapter slots in the layer (default 32)")
    p.add_argument("--calls", type=int, default=300, help="calls per timing round")
    p.add_argument("--rounds", type=int, default=7, help="timing rounds; the best is kept")
    p.add_argument("--out-dir", default="runs/small_batch_lora")
    args = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    bf = torch.bfloat16
    rank = 8
    a = tuple(torch.randn(args.slots, 1, rank, D_IN, dtype=bf) * 0.05 for _ in SLICES)
    b = tuple(torch.randn(args.slots, 1, n, rank, dtype=bf) * 0.05 for n in SLICES)
    a[1].zero_()  # k_proj untargeted, as in a q/v adapter
    w = torch.randn(sum(SLICES), D_IN, dtype=bf) * 0.05
    rows = []
    saved = packed_lora.SMALL_TOKENS
    try:
        for tokens in [int(t) for t in args.tokens.split(",")]:
            x = torch.randn(tokens, D_IN, dtype=bf)
            y = torch.zeros(tokens, sum(SLICES), dtype=bf)
            base = best_us(lambda: x @ w.T, args.calls, args.rounds)
            for adapters in sorted({1, min(tokens, args.slots)}):
                idx = torch.arange(tokens) % adapters
                plan, cache = packed_lora.BatchPlan.from_indices(idx), packed_lora.PackedCache()
                call = lambda: packed_lora.lora_linear(x, y, a, b, SLICES, 2.0, plan, cache)  # noqa: E731
                us = {"on": float("inf"), "off": float("inf")}
                for _ in range(2):  # interleaved: the machine's load drifts
                    for mode, small in (("on", 64), ("off", 0)):
                        packed_lora.SMALL_TOKENS = small
                        us[mode] = min(us[mode], best_us(call, args.calls, args.rounds))
                rows.append({"tokens": tokens, "adapters": adapters, "path": "dense" if plan.dense else "runs",
                             "bf16_us": round(us["off"], 2), "float32_us": round(us["on"], 2),
                             "speedup": round(us["off"] / us["on"], 2), "base_gemm_us": round(base, 2)})
                print(rows[-1], flush=True)
    finally:
        packed_lora.SMALL_TOKENS = saved
    lines = [f"Current SMALL_TOKENS = {saved} (batches of at most that many tokens take the float32 path).", "",
             "| tokens | adapters | path | bf16 us | float32 factors us | speed-up | base qkv GEMM us |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['tokens']} | {r['adapters']} | {r['path']} | {r['bf16_us']} | {r['float32_us']} | {r['speedup']} "
              f"| {r['base_gemm_us']} |" for r in rows]
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "small_batch_lora.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "small_batch_lora.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

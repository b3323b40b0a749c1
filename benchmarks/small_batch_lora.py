"""The packed LoRA layer on decode batches: its three paths, and bf16 against float32 factors.

    .venv/bin/python benchmarks/small_batch_lora.py --tokens 1,2,4,8,16,32,64 --adapters 1,4,8,T \\
        --layers 1,30 --rounds 3 --calls 20 --paired 40 --out-dir benchmarks/results/small_batch_lora

q/v LoRA layers on SmolLM2-135M's qkv shapes (d_in 576, slices 576/192/192,
k untargeted), rank 8, bf16 activations, `packed_lora.lora_linear` for decode
batches of T tokens (one token per sequence), adapters round-robin over the
tokens (--adapters; above: 1, 4, 8 and one per token). Each cell times every path,
forced, interleaved in one process (the machine's load drifts), best of --rounds:

    runs / runs f32     one GEMM pair per run, bf16 factors / float32 factors (the small-batch
                        path; with one adapter for every token, the slot's own float32 factors)
    dense / dense f32   masked GEMMs over all tokens and used adapters, bf16 / float32 factors
    gathered            per-token float32 factors, cached (a decode step repeats the plan)
    fused               the compiled op (t2l_vllm/cpu_lora/fused.py), one call per layer; timed
                        where it is built

and the base layer's own GEMM (x @ W^T, bf16) for the same T. --layers 1 calls one
layer again and again (its weights stay in the core's cache); --layers 30 calls 30
layers, each with its own weights, in turn, as a decode step of SmolLM2-135M does
(weights come from the shared cache or memory): the cost that counts end to end.
Times are per layer. Ratios: each path's
time over the gathered path's; the path `BatchPlan.from_indices` picks (current
constants) over the base GEMM; with --paired N, the median of N back-to-back
dense / gathered ratios (what `GATHER_SHARE` and `GATHER_TOKENS` in packed.py are
set from). `gather us` is the one-off cost of building the
gathered factors when the batch composition changes. A second table times the
candidate kernels for the gathered path (one adapter per token): batched GEMMs
(bmm) on bf16 and float32 factors, elementwise multiply + sum, einsum.
Pure torch, one thread, no engine. Outputs: small_batch_lora.json and .md in --out-dir.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch

from t2l_vllm.cpu_lora import packed as packed_lora

SLICES = (576, 192, 192)
D_IN = 576
RANK = 8
# path name -> (dense, gathered, SMALL_TOKENS while timed: 0 = bf16 GEMMs, 1 << 30 = float32 factors, fused op)
PATHS = {
    "runs": (False, False, 0, False),
    "runs f32": (False, False, 1 << 30, False),
    "dense": (True, False, 0, False),
    "dense f32": (True, False, 1 << 30, False),
    "gathered": (True, True, 0, False),
    "fused": (True, False, 0, True),
}

# markdown table: (header, row key)
COLUMNS = [("layers", "layers"), ("tokens", "tokens"), ("adapters", "adapters"), ("chosen path", "chosen")]
COLUMNS += [("base qkv GEMM", "base_gemm_us")]
COLUMNS += [(name, f"{name}_us") for name in PATHS]
COLUMNS += [(f"{name} / gathered", f"{name}_over_gathered") for name in PATHS if name != "gathered"]
COLUMNS += [("dense / gathered, paired median", "dense_over_gathered_paired")]
COLUMNS += [("chosen / base GEMM", "chosen_over_base"), ("gather (once)", "gather_us")]


def best_us(fn, calls: int, rounds: int) -> float:
    for _ in range(5):
        fn()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls * 1e6)
    return best


def chosen_path(plan: packed_lora.BatchPlan, tokens: int, small_tokens: int) -> str:
    """The `PATHS` entry that `lora_linear` runs for `plan` with the current constants."""
    if plan.fused is not None and packed_lora._fused_serves(plan):
        return "fused"
    if plan.dense and plan.gathered:
        return "gathered"
    if packed_lora.one_adapter_slot(plan, torch.bfloat16) is not None:
        return "runs f32"
    name = "dense" if plan.dense else "runs"
    return f"{name} f32" if tokens <= small_tokens else name


def time_paths(x, y, stacks, idx, args, small_tokens: int) -> dict[str, float]:
    """Microseconds per layer of `lora_linear` on every path, interleaved, best over two passes."""
    one_adapter_tokens = packed_lora.ONE_ADAPTER_TOKENS
    plan, cache = packed_lora.BatchPlan.from_indices(idx), packed_lora.PackedCache()
    names = [n for n in PATHS if (n in args.paths.split(",") or n == "gathered") and (n != "fused" or plan.fused)]
    us = dict.fromkeys(names, float("inf"))
    try:
        for _ in range(2):
            for name in names:
                dense, gathered, small, fused = PATHS[name]
                forced = dataclasses.replace(plan, dense=dense, gathered=gathered, key=tuple(idx.tolist()),
                                             fused=plan.fused if fused else None)
                packed_lora.SMALL_TOKENS = packed_lora.ONE_ADAPTER_TOKENS = small

                def call():
                    for a, b in stacks:
                        packed_lora.lora_linear(x, y, a, b, SLICES, 2.0, forced, cache)

                us[name] = min(us[name], best_us(call, args.calls, args.rounds) / len(stacks))
    finally:
        packed_lora.SMALL_TOKENS, packed_lora.ONE_ADAPTER_TOKENS = small_tokens, one_adapter_tokens
    return us


def paired_ratio(x, y, stacks, idx, pairs: int) -> float:
    """Median over `pairs` back-to-back runs of (dense time / gathered time), all `stacks` each run:
    a pair sees one machine load, so the median holds on a loaded machine where best-of times scatter."""
    plan, cache = packed_lora.BatchPlan.from_indices(idx), packed_lora.PackedCache()
    forced = [dataclasses.replace(plan, dense=True, gathered=g, key=tuple(idx.tolist()), fused=None)
              for g in (False, True)]

    def run(p) -> float:
        t0 = time.perf_counter()
        for a, b in stacks:
            packed_lora.lora_linear(x, y, a, b, SLICES, 2.0, p, cache)
        return time.perf_counter() - t0

    for p in forced * 2:  # warm-up, and the gathered factors built
        run(p)
    return statistics.median(run(forced[0]) / run(forced[1]) for _ in range(pairs))


def time_kernels(tokens: int, args) -> dict[str, float]:
    """The gathered path's shrink + expand (q and v slices) with each kernel, one adapter per token."""
    bf = torch.bfloat16
    x = torch.randn(tokens, D_IN, dtype=bf)
    a_t = torch.randn(tokens, D_IN, 2 * RANK, dtype=bf)  # [T, d_in, k]
    b_t = (torch.randn(tokens, RANK, SLICES[0], dtype=bf), torch.randn(tokens, RANK, SLICES[2], dtype=bf))
    a32, b32 = a_t.float(), tuple(b.float() for b in b_t)
    a32_rows = a32.transpose(1, 2).contiguous()  # [T, k, d_in] for the elementwise kernel

    def bmm(a, bs, dtype):
        h = torch.bmm(x.to(dtype).unsqueeze(1), a).to(bf).to(dtype)  # [T, 1, k]
        return [torch.bmm(h[:, :, i * RANK : (i + 1) * RANK], b) for i, b in enumerate(bs)]

    def mul_sum():
        h = (a32_rows * x.float().unsqueeze(1)).sum(2).to(bf).float()  # [T, k]
        return [(h[:, i * RANK : (i + 1) * RANK, None] * b).sum(1) for i, b in enumerate(b32)]

    def einsum():
        h = torch.einsum("td,tdk->tk", x.float(), a32).to(bf).float()
        return [torch.einsum("tr,trc->tc", h[:, i * RANK : (i + 1) * RANK], b) for i, b in enumerate(b32)]

    kernels = {
        "bmm bf16": lambda: bmm(a_t, b_t, bf),
        "bmm float32": lambda: bmm(a32, b32, torch.float32),
        "mul+sum float32": mul_sum,
        "einsum float32": einsum,
    }
    us = dict.fromkeys(kernels, float("inf"))
    for _ in range(2):
        for name, fn in kernels.items():
            us[name] = min(us[name], best_us(fn, args.calls, args.rounds))
    return us


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", default="1,2,4,8,16,32,64", help="comma-separated batch sizes T")
    p.add_argument("--adapters", default="1,8,T", help="comma-separated adapter counts; T: one per token")
    p.add_argument("--paths", default=",".join(PATHS), help="comma-separated paths to time (gathered always)")
    p.add_argument("--no-kernels", action="store_true", help="skip the kernel table")
    p.add_argument("--paired", type=int, default=0, help="paired dense/gathered runs per cell (0: none)")
    p.add_argument("--slots", type=int, default=64, help="adapter slots in the layer (default 64)")
    p.add_argument("--layers", default="1", help="comma-separated layer counts (1: hot caches; 30: a model's)")
    p.add_argument("--calls", type=int, default=300, help="calls per timing round")
    p.add_argument("--rounds", type=int, default=7, help="timing rounds; the best is kept")
    p.add_argument("--out-dir", default="runs/small_batch_lora")
    args = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    bf = torch.bfloat16
    stacks, weights = [], []  # per layer: (A stacks, B stacks); the base qkv weight
    for _ in range(max(int(n) for n in args.layers.split(","))):
        a = tuple(torch.randn(args.slots, 1, RANK, D_IN, dtype=bf) * 0.05 for _ in SLICES)
        b = tuple(torch.randn(args.slots, 1, n, RANK, dtype=bf) * 0.05 for n in SLICES)
        a[1].zero_()  # k_proj untargeted, as in a q/v adapter
        stacks.append((a, b))
        weights.append(torch.randn(sum(SLICES), D_IN, dtype=bf) * 0.05)
    small_tokens = packed_lora.SMALL_TOKENS
    layer = packed_lora.PackedLayer.build(*stacks[0], SLICES, bf)
    columns = layer.columns()
    rows, kernel_rows = [], []
    for layers, tokens in [(int(n), int(t)) for n in args.layers.split(",") for t in args.tokens.split(",")]:
        x = torch.randn(tokens, D_IN, dtype=bf)
        y = torch.zeros(tokens, sum(SLICES), dtype=bf)
        base = best_us(lambda: [x @ w.T for w in weights[:layers]], args.calls, args.rounds) / layers
        counts = {tokens if n == "T" else int(n) for n in args.adapters.split(",")}
        for adapters in sorted(n for n in counts if n <= min(tokens, args.slots)):
            idx = torch.arange(tokens) % adapters
            us = time_paths(x, y, stacks[:layers], idx, args, small_tokens)
            plan = packed_lora.BatchPlan.from_indices(idx)
            chosen = chosen_path(plan, tokens, small_tokens)
            gather = best_us(lambda: layer.gather(idx, columns), max(1, args.calls // 10), args.rounds)
            row = {"layers": layers, "tokens": tokens, "adapters": adapters, "chosen": chosen,
                   "base_gemm_us": round(base, 2)}
            row.update({f"{name}_us": round(t, 2) for name, t in us.items()})
            row.update({f"{n}_over_gathered": round(t / us["gathered"], 2) for n, t in us.items() if n != "gathered"})
            row["chosen_over_base"] = round(us[chosen] / base, 2) if chosen in us else None
            row["gather_us"] = round(gather, 2)
            if args.paired and adapters > 1:
                row["dense_over_gathered_paired"] = round(paired_ratio(x, y, stacks[:layers], idx, args.paired), 2)
            rows.append(row)
            print(row, flush=True)
        if tokens > 1 and layers == 1 and not args.no_kernels:
            kernel_rows.append({"tokens": tokens, **{k: round(v, 2) for k, v in time_kernels(tokens, args).items()}})
            print(kernel_rows[-1], flush=True)
    lines = [f"Constants: SMALL_TOKENS = {small_tokens}, ONE_ADAPTER_TOKENS = {packed_lora.ONE_ADAPTER_TOKENS}, "
             f"GATHER_SHARE = {packed_lora.GATHER_SHARE}, "
             f"GATHER_TOKENS = {packed_lora.GATHER_TOKENS}, RUN_COST = {packed_lora.RUN_COST}. Times in us per layer "
             "(one thread; absolute times depend on the machine's load, ratios are interleaved).", "",
             "| " + " | ".join(header for header, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(r.get(key, "-")) for _, key in COLUMNS) + " |" for r in rows]
    if kernel_rows:
        names = [k for k in kernel_rows[0] if k != "tokens"]
        lines += ["", "Gathered-path kernels, one adapter per token (shrink + q/v expand, us per call):", "",
                  "| tokens | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
        lines += ["| " + " | ".join(str(r[k]) for k in ["tokens", *names]) + " |" for r in kernel_rows]
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "small_batch_lora.json").write_text(json.dumps({"paths": rows, "kernels": kernel_rows}, indent=2) + "\n")
    (out / "small_batch_lora.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Multi-LoRA overhead on CPU: base model vs LoRA with vLLM's ops vs LoRA with ours.

    .venv/bin/python benchmarks/lora_ops_bench.py [--adapters 1,8,32] [--out benchmarks/results/lora_ops.json]

Four engines, one after another, each in its own process, on the embedded
default model (SmolLM2-135M-Instruct, bf16), offline `vllm.LLM`, greedy:
    base       enable_lora=False (torch.compile'd, vLLM's CPU default)
    base-eager enable_lora=False, enforce_eager=True (no torch.compile: what vLLM
               alone does to the model on CPU whenever LoRA is enabled)
    vllm-ops   enable_lora=True, vLLM's CPU LoRA path (T2L_VLLM_LORA_OPS=vllm)
    t2l-ops    enable_lora=True, ours (packed_lora.py, installed by our plugin,
               which keeps torch.compile on)
    t2l-ops-qv as t2l-ops, with lora_target_modules=[q_proj, v_proj]: only the
               modules the adapters target are LoRA-wrapped, as `t2l-vllm serve`
               sets from the hypernetwork checkpoint
    t2l-ops-qv-torch  as t2l-ops-qv with T2L_VLLM_FUSED=0: the pure-torch paths
               instead of the compiled op (cpu_lora/fused.py)
--engines picks a subset (base is always run: every ratio is to it).
Workloads (same prompts for every engine):
    decode-heavy   32 sequences, ~16-token prompts, 64 new tokens
    prefill-heavy  16 sequences, ~256-token prompts, 2 new tokens
For LoRA engines the sequences are spread round-robin over K adapters (rank 8,
q_proj+v_proj, non-zero weights from a randomised hypernetwork). Throughput is
(prompt + generated) tokens per second of `LLM.generate`, median of --repeats runs
after one warm-up; the result is the ratio to the base engine of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ is None:  # run as `python benchmarks/lora_ops_bench.py`: `benchmarks.*` resolves from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import int_list

WORKLOADS = {
    "decode-heavy": {"num_seqs": 32, "prompt_words": 12, "max_tokens": 64},
    "prefill-heavy": {"num_seqs": 16, "prompt_words": 200, "max_tokens": 2},
}
ENGINES = {
    "base": {"enable_lora": False, "env": {}},
    # vLLM alone turns compilation off on CPU when LoRA is enabled; this shows what that costs.
    "base-eager": {"enable_lora": False, "enforce_eager": True, "env": {}},
    "vllm-ops": {"enable_lora": True, "env": {"T2L_VLLM_LORA_OPS": "vllm"}},
    "t2l-ops": {"enable_lora": True, "env": {"T2L_VLLM_LORA_OPS": "t2l"}},
    "t2l-ops-qv": {"enable_lora": True, "target_modules": ["q_proj", "v_proj"], "env": {"T2L_VLLM_LORA_OPS": "t2l"}},
    # As t2l-ops-qv without the compiled op (cpu_lora/fused.py): the pure-torch paths.
    "t2l-ops-qv-torch": {"enable_lora": True, "target_modules": ["q_proj", "v_proj"],
                         "env": {"T2L_VLLM_LORA_OPS": "t2l", "T2L_VLLM_FUSED": "0"}},
}


def make_adapters(base_dir: Path, count: int, out_dir: Path) -> list[str]:
    """`count` distinct non-zero adapters for the base model, from a randomised hypernetwork."""
    from t2l_vllm.checkpoint import save_hypernet
    from t2l_vllm.config import HypernetConfig
    from t2l_vllm.generator import AdapterGenerator
    from t2l_vllm.hypernet import HyperLoRA, randomise_heads
    from t2l_vllm.target_spec import target_spec_from_dir

    net = randomise_heads(HyperLoRA.initialise(HypernetConfig(target=target_spec_from_dir(base_dir)), seed=1), std=0.01)
    ckpt = save_hypernet(net, out_dir / "hypernet")
    generator = AdapterGenerator.from_pretrained(ckpt, base_dir)
    made = generator.generate_to_dir([f"Benchmark task {i}: answer briefly." for i in range(count)], out_dir / "adapters")
    return [str(path) for _, path in made]


def prompts(words: int, count: int) -> list[str]:
    vocab = "the sea river stone light quick brown fox jumps over lazy dog and runs far away".split()
    return [" ".join(vocab[(i + j) % len(vocab)] for j in range(words)) + f" {i}" for i in range(count)]


def worker(spec_path: str) -> None:
    """One engine: run every workload x adapter count, print JSON results."""
    spec = json.loads(Path(spec_path).read_text())
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    kw = {"enable_lora": True, "max_loras": max(spec["adapter_counts"]), "max_lora_rank": 8} if spec["enable_lora"] else {}
    if spec.get("enforce_eager"):
        kw["enforce_eager"] = True
    if spec.get("target_modules"):
        kw["lora_target_modules"] = spec["target_modules"]
    llm = LLM(model=spec["model"], dtype="bfloat16", max_model_len=1024, seed=0, **kw)
    loras = [LoRARequest(f"a{i}", i + 1, p) for i, p in enumerate(spec["adapters"])]
    results = []
    for name, w in WORKLOADS.items():
        texts = prompts(w["prompt_words"], w["num_seqs"])
        params = SamplingParams(temperature=0, max_tokens=w["max_tokens"], ignore_eos=True)
        for k in spec["adapter_counts"] if spec["enable_lora"] else [0]:
            req_loras = [loras[i % k] for i in range(len(texts))] if k else None
            llm.generate(texts, params, lora_request=req_loras, use_tqdm=False)  # warm-up
            rates = []
            for _ in range(spec["repeats"]):
                t0 = time.perf_counter()
                outs = llm.generate(texts, params, lora_request=req_loras, use_tqdm=False)
                wall = time.perf_counter() - t0
                tokens = sum(len(o.prompt_token_ids) + len(o.outputs[0].token_ids) for o in outs)
                rates.append(tokens / wall)
            results.append({"workload": name, "adapters": k, "tokens_per_s": statistics.median(rates)})
    print("RESULT " + json.dumps(results), flush=True)


def run_engine(name: str, model: str, adapters: list[str], counts: list[int], repeats: int) -> list[dict]:
    cfg = ENGINES[name]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump({"model": model, "adapters": adapters, "adapter_counts": counts, "repeats": repeats,
                   "enable_lora": cfg["enable_lora"], "enforce_eager": cfg.get("enforce_eager", False),
                   "target_modules": cfg.get("target_modules")}, fh)
    proc = subprocess.run([sys.executable, __file__, "--worker", fh.name], capture_output=True, text=True,
                          env={**os.environ, **cfg["env"]})
    os.unlink(fh.name)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{name} engine failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def report(rows: dict[str, list[dict]], counts: list[int]) -> tuple[list[dict], str]:
    """Per workload and adapter count: each engine's tokens/s and its ratio to base."""
    engines = [e for e in rows if e != "base"]
    base = {r["workload"]: r["tokens_per_s"] for r in rows["base"]}
    table = []
    for wl in WORKLOADS:
        for k in counts:
            row = {"workload": wl, "adapters": k, "base_tok_s": base[wl]}
            for eng in engines:
                # engines without LoRA report one row per workload, whatever the count
                tok = next(r["tokens_per_s"] for r in rows[eng] if r["workload"] == wl and r["adapters"] in (k, 0))
                key = eng.replace("-", "_")
                row[f"{key}_tok_s"], row[f"{key}_over_base"] = tok, tok / base[wl]
            table.append(row)
    md = ["| workload | adapters in batch | base tok/s | " + " | ".join(f"{e} tok/s (/ base)" for e in engines) + " |",
          "|---|---|---|" + "---|" * len(engines)]
    for r in table:
        cells = [f"{r[e.replace('-', '_') + '_tok_s']:.0f} ({r[e.replace('-', '_') + '_over_base']:.2f}x)" for e in engines]
        md.append(f"| {r['workload']} | {r['adapters']} | {r['base_tok_s']:.0f} | " + " | ".join(cells) + " |")
    return table, "\n".join(md)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--adapters", type=int_list, default="1,8,32", help="adapter counts per batch, comma-separated")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--model", help="base model folder (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--out", help="write JSON results here")
    p.add_argument("--engines", default=",".join(ENGINES),
                   help=f"engines to run, comma-separated (base always runs; default all: {','.join(ENGINES)})")
    args = p.parse_args()
    if args.worker:
        return worker(args.worker)

    from t2l_vllm import defaults

    counts = args.adapters
    model = Path(args.model) if args.model else defaults.default_base_model_dir()
    tmp = Path(tempfile.mkdtemp(prefix="t2l-lora-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    adapters = make_adapters(model, max(counts), tmp)
    names = ["base"] + [e for e in args.engines.split(",") if e and e != "base"]
    unknown = [e for e in names if e not in ENGINES]
    if unknown:
        p.error(f"unknown engines {unknown}; choose from {', '.join(ENGINES)}")
    rows = {}
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows[name] = run_engine(name, str(model), adapters, counts, args.repeats)
    table, md = report(rows, counts)
    print(md)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"rows": table, "raw": rows, "cpu_count": os.cpu_count()}, indent=2))
        Path(args.out).with_suffix(".md").write_text(md + "\n")


if __name__ == "__main__":
    main()

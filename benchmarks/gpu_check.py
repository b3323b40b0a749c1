"""GPU check of adapter generation for a 7B-shaped target (a prepared script for a machine with CUDA).

    .venv/bin/python benchmarks/gpu_check.py                     # CUDA: timing + CUDA-vs-CPU check
    .venv/bin/python benchmarks/gpu_check.py --device cpu        # smoke test anywhere (small --repeats)

Target: Mistral-7B's shapes (its config.json is written here, no download), LoRA
rank 8 on q_proj + v_proj, the L hypernetwork (about 55M parameters) with
randomised heads, the embedded MiniLM encoder. On --device:

    timing  `AdapterGenerator.generate` for one new description per call
            (encode + hypernet + PEFT tensors copied to the host in the adapter
            dtype, i.e. everything before the folder is written), synchronised,
            --repeats calls after --warmup; p50 and p95 per adapter, and per
            adapter in calls of --batch descriptions. Target: p50 < 5 ms.
    check   the same network and descriptions on the CPU: the adapters' A and B
            (float32) and the update they make, s * B(A x) on random x, agree
            with the CPU's within --rtol (relative to the largest CPU value).

With --device cpu both sides run on the CPU, so the check is exact; it makes
sure the script runs end to end. Exit status 1 when a check fails (the timing
target is reported, not enforced). Outputs: gpu_check.json and gpu_check.md
in --out-dir.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

if __package__ is None:  # run as `python benchmarks/gpu_check.py`: `benchmarks.*` resolves from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# mistralai/Mistral-7B-v0.1 config.json (the fields the target spec and vLLM's loader read).
MISTRAL_7B_CONFIG = {
    "architectures": ["MistralForCausalLM"],
    "model_type": "mistral",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "max_position_embeddings": 32768,
    "vocab_size": 32000,
    "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0,
    "sliding_window": 4096,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}
TARGET_MODULES = ("q_proj", "v_proj")
TARGET_P50_MS = 5.0


def build(base_dir: Path, device: str, seed: int = 0):
    """The generator (fresh L network, randomised heads, embedded encoder) on `device`, adapters in float32."""
    from t2l_vllm.config import EncoderConfig, HypernetConfig
    from t2l_vllm.encoders import load_encoder
    from t2l_vllm.generator import AdapterGenerator
    from t2l_vllm.hypernet import HyperLoRA, randomise_heads
    from t2l_vllm.target_spec import target_spec_from_dir

    config = HypernetConfig(target=target_spec_from_dir(base_dir, TARGET_MODULES), encoder=EncoderConfig(),
                            variant="L", rank=8)
    net = randomise_heads(HyperLoRA.initialise(config, seed=seed), seed=seed).to(device)
    encoder = load_encoder(config.encoder, base_dir, device=device)
    return AdapterGenerator(net, encoder, base_model_name="mistral-7b-shaped", dtype="float32")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_generation(gen, device: str, repeats: int, warmup: int, batch: int) -> dict:
    """Milliseconds per adapter: single-description calls, and calls of `batch` descriptions."""
    for i in range(warmup):
        gen.generate([f"Warm-up description {i}."])
    _sync(device)
    single = []
    for i in range(repeats):
        t0 = time.perf_counter()
        gen.generate([f"Classify the sentiment of review number {i} as positive or negative."])
        _sync(device)
        single.append((time.perf_counter() - t0) * 1e3)
    batched = []
    for i in range(max(1, repeats // batch)):
        t0 = time.perf_counter()
        gen.generate([f"Translate sentence {i}.{j} into French." for j in range(batch)])
        _sync(device)
        batched.append((time.perf_counter() - t0) * 1e3 / batch)
    q = lambda xs, p: statistics.quantiles(xs, n=100)[p - 1] if len(xs) > 1 else xs[0]  # noqa: E731
    return {
        "single_p50_ms": round(statistics.median(single), 3), "single_p95_ms": round(q(single, 95), 3),
        "batch": batch, "batched_p50_ms_per_adapter": round(statistics.median(batched), 3),
        "calls": repeats,
    }


def compare(gen_dev, gen_cpu, descriptions: list[str], rtol: float) -> dict:
    """Adapters and their update s * B(A x) on `gen_dev`'s device against the CPU's."""
    torch.manual_seed(0)
    worst_factor, worst_update = 0.0, 0.0
    scale = gen_cpu.hypernet.config.alpha / (gen_cpu.hypernet.config.rank ** 0.5)  # rsLoRA, as emitted
    for desc in descriptions:
        [dev] = gen_dev.generate([desc])
        [cpu] = gen_cpu.generate([desc])
        assert dev.adapter_id == cpu.adapter_id
        for key, ref in cpu.tensors.items():
            got = dev.tensors[key]
            worst_factor = max(worst_factor, float((got - ref).abs().max() / ref.abs().max().clamp(min=1e-12)))
        for key in cpu.tensors:
            if ".lora_A." not in key:
                continue
            b_key = key.replace(".lora_A.", ".lora_B.")
            x = torch.randn(4, cpu.tensors[key].shape[1])
            ref = scale * (x @ cpu.tensors[key].T) @ cpu.tensors[b_key].T  # [4, d_out]
            device = next(gen_dev.hypernet.parameters()).device
            a, b = dev.tensors[key].to(device), dev.tensors[b_key].to(device)
            got = (scale * (x.to(device) @ a.T) @ b.T).cpu()
            worst_update = max(worst_update, float((got - ref).abs().max() / ref.abs().max().clamp(min=1e-12)))
    return {"descriptions": len(descriptions), "max_rel_err_factors": worst_factor,
            "max_rel_err_update": worst_update, "rtol": rtol,
            "ok": worst_factor <= rtol and worst_update <= rtol}


def markdown(report: dict) -> str:
    t, c = report["timing"], report["check"]
    return "\n".join([
        f"Device: {report['device']} ({report['device_name']}); target Mistral-7B shapes, q_proj + v_proj, rank 8, "
        f"L hypernetwork ({report['hypernet_params_m']}M parameters).",
        "",
        "| measure | value | target | met |",
        "|---|---|---|---|",
        f"| generate, 1 description per call, p50 ms/adapter | {t['single_p50_ms']} | < {TARGET_P50_MS} | "
        f"{'yes' if t['single_p50_ms'] < TARGET_P50_MS else 'no'} |",
        f"| generate, 1 description per call, p95 ms/adapter | {t['single_p95_ms']} | | |",
        f"| generate, {t['batch']} per call, p50 ms/adapter | {t['batched_p50_ms_per_adapter']} | | |",
        f"| {report['device']} vs CPU, A and B, max relative error | {c['max_rel_err_factors']:.2e} | <= {c['rtol']} | "
        f"{'yes' if c['max_rel_err_factors'] <= c['rtol'] else 'no'} |",
        f"| {report['device']} vs CPU, s * B(A x), max relative error | {c['max_rel_err_update']:.2e} | <= {c['rtol']} | "
        f"{'yes' if c['max_rel_err_update'] <= c['rtol'] else 'no'} |",
    ]) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="where to time generation (default cuda); cpu for a smoke test")
    p.add_argument("--repeats", type=int, default=50, help="timed single-description calls (default 50)")
    p.add_argument("--warmup", type=int, default=5, help="untimed calls first (default 5)")
    p.add_argument("--batch", type=int, default=8, help="descriptions per call in the batched timing (default 8)")
    p.add_argument("--check-descriptions", type=int, default=3, help="descriptions compared with the CPU (default 3)")
    p.add_argument("--rtol", type=float, default=2e-2,
                   help="allowed error relative to the largest CPU value (default 2e-2: TF32 and reduction order)")
    p.add_argument("--out-dir", default="runs/gpu_check", help="where gpu_check.json and .md go")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("CUDA is not available here; pass --device cpu for a smoke test")
    if min(args.repeats, args.batch, args.check_descriptions) < 1 or args.warmup < 0:
        p.error("--repeats, --batch and --check-descriptions must be >= 1, --warmup >= 0")
    with tempfile.TemporaryDirectory(prefix="t2l-gpu-check-") as tmp:
        base_dir = Path(tmp)
        (base_dir / "config.json").write_text(json.dumps(MISTRAL_7B_CONFIG, indent=2))
        gen = build(base_dir, args.device)
        timing = time_generation(gen, args.device, args.repeats, args.warmup, args.batch)
        gen_cpu = gen if args.device == "cpu" else build(base_dir, "cpu")
        check = compare(gen, gen_cpu, [f"Check description {i}: answer briefly." for i in range(args.check_descriptions)],
                        args.rtol)
    report = {
        "device": args.device,
        "device_name": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu",
        "torch": torch.__version__,
        "hypernet_params_m": round(sum(p.numel() for p in gen.hypernet.parameters()) / 1e6, 1),
        "timing": timing, "check": check,
        "target_p50_ms": TARGET_P50_MS, "target_met": timing["single_p50_ms"] < TARGET_P50_MS,
    }
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "gpu_check.md").write_text(markdown(report))
    print(markdown(report))
    return report


if __name__ == "__main__":
    sys.exit(0 if main()["check"]["ok"] else 1)

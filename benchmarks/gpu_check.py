"""GPU check of adapter generation for a 7B-shaped target (a prepared script for a machine with CUDA).

    .venv/bin/python benchmarks/gpu_check.py                     # CUDA: timing + CUDA-vs-CPU check
    .venv/bin/python benchmarks/gpu_check.py --device cpu        # smoke test anywhere (small --repeats)

    # a CUDA machine without this repo's venv (the 90 MB encoder weights do not travel):
    .venv/bin/python benchmarks/gpu_check.py --export-encoder .gpu/encoder        # here
    python3 benchmarks/gpu_check.py --encoder .gpu/encoder --out-dir OUT          # there

Target: Mistral-7B's shapes (its config.json is written here, no download), LoRA
rank 8 on q_proj + v_proj, the L hypernetwork (about 55M parameters) with
randomised heads, the embedded MiniLM encoder (or --encoder DIR: a transformers
encoder folder; one without weights gets seeded random ones, for a machine the
90 MB weights cannot be copied to: timing and the device-vs-CPU comparison do
not depend on their values). On --device:

    timing  `AdapterGenerator.generate` for one new description per call
            (encode + hypernet + PEFT tensors copied to the host in the served
            dtype, bf16, i.e. everything before the folder is written),
            synchronised, --repeats calls after --warmup; p50 and p95 per
            adapter, per adapter in calls of --batch descriptions, and the
            three stages apart. Target: p50 < 5 ms. The generator captures its
            CUDA graphs first, as `t2l-vllm serve` does at start-up (timed).
            Baselines from the same run: the same without CUDA graphs, and on
            the CPU of the same machine (--cpu-repeats calls); the copy to the
            host three ways.
    graphs  graph replays against eager passes (difference reported), and a
            second generator with its own captures: byte-identical adapters.
    check   the same network and descriptions on the CPU: the adapters' A and B
            (float32) and the update they make, s * B(A x) on random x, agree
            with the CPU's within --rtol (relative to the largest CPU value).
    peft    an adapter generated on --device, written as a PEFT folder, loaded
            by PEFT into a Mistral model of the 7B attention shapes cut to
            --peft-layers layers (random weights, float32) on --device and on
            the CPU: the change the adapter makes to the logits agrees within
            --rtol, and is not zero.

With --device cpu both sides run on the CPU, so the checks are exact; it makes
sure the script runs end to end. Exit status 1 when a check fails (the timing
target is reported, not enforced). Outputs: gpu_check.json and gpu_check.md
in --out-dir.
"""

from __future__ import annotations

import argparse
import copy
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
# Files an encoder folder needs besides its weights (all-MiniLM-L6-v2's set).
ENCODER_TEXT_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                      "vocab.txt")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def encoder_source(folder: str, work_dir: Path, seed: int = 0) -> tuple[str, str]:
    """(EncoderConfig.source, how its weights were got) for --encoder.

    A folder without weights gets seeded random ones of its config's
    architecture, written next to a copy of its tokenizer under `work_dir`.
    """
    if folder == "default":
        return "default", "embedded all-MiniLM-L6-v2"
    src = Path(folder)
    if not (src / "config.json").is_file():
        raise SystemExit(f"--encoder {folder}: no config.json there")
    if any((src / name).is_file() for name in WEIGHT_FILES):
        return str(src), f"{src} (its weights)"
    from transformers import AutoConfig, AutoModel

    out = work_dir / "encoder"
    _copy_text_files(src, out)
    torch.manual_seed(seed)
    AutoModel.from_config(AutoConfig.from_pretrained(str(src))).save_pretrained(str(out))
    return str(out), f"{src} architecture and tokenizer, seeded random weights"


def _copy_text_files(src: Path, out: Path) -> None:
    """An encoder folder's config and tokenizer files (those it has) from `src` into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ENCODER_TEXT_FILES:
        if (src / name).is_file():
            (out / name).write_bytes((src / name).read_bytes())


def export_encoder(out: Path) -> dict:
    """The embedded encoder's text files into `out` (what --encoder needs on a machine without the package)."""
    from t2l_vllm.defaults import default_encoder_dir

    _copy_text_files(default_encoder_dir(), out)
    print(f"wrote {', '.join(ENCODER_TEXT_FILES)} to {out}")
    return {"ok": True, "exported": str(out)}


def build(base_dir: Path, device: str, encoder_src: str = "default", seed: int = 0, cuda_graphs: bool = True):
    """The generator (fresh L network, randomised heads, the encoder) on `device`, adapters in float32."""
    from t2l_vllm.config import EncoderConfig, HypernetConfig
    from t2l_vllm.encoders import load_encoder
    from t2l_vllm.generator import AdapterGenerator
    from t2l_vllm.hypernet import HyperLoRA, randomise_heads
    from t2l_vllm.target_spec import target_spec_from_dir

    config = HypernetConfig(target=target_spec_from_dir(base_dir, TARGET_MODULES),
                            encoder=EncoderConfig(source=encoder_src), variant="L", rank=8)
    net = randomise_heads(HyperLoRA.initialise(config, seed=seed), seed=seed).to(device)
    encoder = load_encoder(config.encoder, base_dir, device=device, cuda_graphs=cuda_graphs)
    return AdapterGenerator(net, encoder, base_model_name="mistral-7b-shaped", dtype="float32",
                            cuda_graphs=cuda_graphs)


def served(gen, cuda_graphs: bool = True):
    """The same network emitting bf16 adapters, as `t2l-vllm serve` does (eager: a new eager encoder too)."""
    from t2l_vllm.encoders import load_encoder
    from t2l_vllm.generator import AdapterGenerator

    encoder = gen.encoder
    if not cuda_graphs:
        encoder = load_encoder(gen.hypernet.config.encoder, device=str(encoder.device), cuda_graphs=False)
    return AdapterGenerator(gen.hypernet, encoder, base_model_name=gen.base_model_name, dtype="bfloat16",
                            cuda_graphs=cuda_graphs)


def graphs_vs_eager(gen, descriptions: list[str]) -> dict:
    """Graph replays against eager passes on the same device: largest difference in A and B (0 = same bits)."""
    eager = served(gen, cuda_graphs=False)
    worst = 0.0
    for desc in descriptions:
        [g], [e] = gen.generate([desc]), eager.generate([desc])
        worst = max(worst, max(float((g.tensors[k] - e.tensors[k]).abs().max()) for k in g.tensors))
    return {"max_abs_diff": worst, "encoder_graphs": len(gen.encoder.graphs or ()),
            "encoder_graphs_disabled": gen.encoder.graphs.disabled if gen.encoder.graphs else None,
            "hypernet_graph_disabled": gen._hypernet_graph.disabled if gen._hypernet_graph else None}


def same_bits_rebuilt(gen, rebuilt, descriptions: list[str]) -> bool:
    """Adapters of two generators built apart (their own captures) from the same weights: identical bytes?"""
    a, b = served(gen), served(rebuilt)
    for desc in descriptions:
        [x], [y] = a.generate([desc]), b.generate([desc])
        if any(not torch.equal(x.tensors[k], y.tensors[k]) for k in x.tensors):
            return False
    return True


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
    stages = time_stages(gen, device, repeats)
    q = lambda xs, p: statistics.quantiles(xs, n=100)[p - 1] if len(xs) > 1 else xs[0]  # noqa: E731
    return {
        "single_p50_ms": round(statistics.median(single), 3), "single_p95_ms": round(q(single, 95), 3),
        "batch": batch, "batched_p50_ms_per_adapter": round(statistics.median(batched), 3),
        "calls": repeats, **stages,
    }


def time_stages(gen, device: str, repeats: int) -> dict:
    """p50 ms of generate's three stages apart, each synchronised: encode, hypernet, copy to the host."""
    from t2l_vllm.adapter import adapter_tensors

    enc, net, host = [], [], []
    dev = next(gen.hypernet.parameters()).device
    with torch.inference_mode():
        for i in range(repeats):
            t0 = time.perf_counter()
            emb = gen.encoder.encode([f"Summarise support ticket {i} in one sentence."]).to(dev)  # [1, enc_dim]
            _sync(device)
            t1 = time.perf_counter()
            factors = gen._hypernet_pass(emb)
            _sync(device)
            t2 = time.perf_counter()
            adapter_tensors(factors, gen.hypernet.config, gen.dtype, gen._to_host)  # waits for the device
            t3 = time.perf_counter()
            enc.append((t1 - t0) * 1e3)
            net.append((t2 - t1) * 1e3)
            host.append((t3 - t2) * 1e3)
    return {"encode_p50_ms": round(statistics.median(enc), 3), "hypernet_p50_ms": round(statistics.median(net), 3),
            "to_host_p50_ms": round(statistics.median(host), 3)}


def time_to_host(gen, device: str, repeats: int, kept: int = 8) -> dict:
    """p50 ms per adapter of the copy to the host in bf16, three ways, `kept` adapters held at once (a batch)."""
    from t2l_vllm.adapter import HostCopier

    dev = next(gen.hypernet.parameters()).device
    with torch.inference_mode():
        emb = gen.encoder.encode(["Copy timing description."]).to(dev)
        tensors = [t[0] for pair in gen.hypernet(emb).factors.values() for t in pair]

        def per_tensor():
            return [t.to("cpu", torch.bfloat16) for t in tensors]

        def pageable():
            return torch.cat([t.to(torch.bfloat16).reshape(-1) for t in tensors]).to("cpu")

        out = {}
        for name, fn in (("per_tensor", per_tensor), ("flat_pageable", pageable),
                         ("staged", lambda copier=HostCopier(): copier(tensors, torch.bfloat16))):
            times = []
            for _ in range(max(2, repeats // kept)):
                _sync(device)
                t0 = time.perf_counter()
                held = [fn() for _ in range(kept)]
                times.append((time.perf_counter() - t0) * 1e3 / kept)
                del held
            out[f"to_host_{name}_p50_ms"] = round(statistics.median(times), 3)
    out["to_host_mb"] = round(sum(t.numel() for t in tensors) * 2 / 1e6, 2)
    out["to_host_kept"] = kept
    return out


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


def peft_check(gen, device: str, layers: int, rtol: float, work_dir: Path) -> dict:
    """A PEFT folder generated on `device`, loaded by PEFT into a cut Mistral on `device` and on the CPU.

    The model keeps the 7B attention shapes (hidden 4096, 32 query / 8 KV heads of
    128) and the first `layers` layers; the MLP and vocabulary are shrunk since
    the adapter does not touch them. Compares the logit change (with - without
    the adapter) across devices.
    """
    from peft import PeftModel
    from transformers import MistralConfig, MistralForCausalLM

    [adapter] = gen.generate(["Answer every question in exactly three words."])
    folder = gen.write(adapter, work_dir / "peft")
    cfg = dict(MISTRAL_7B_CONFIG, num_hidden_layers=layers, intermediate_size=512, vocab_size=512)
    for key in ("architectures", "model_type", "torch_dtype"):
        cfg.pop(key)
    torch.manual_seed(0)
    base = MistralForCausalLM(MistralConfig(**cfg)).float().eval()
    ids = torch.randint(0, cfg["vocab_size"], (2, 16))
    deltas = {}
    for where in dict.fromkeys(["cpu", device]):
        model = PeftModel.from_pretrained(copy.deepcopy(base).to(where), str(folder)).eval()
        with torch.inference_mode():
            with_adapter = model(input_ids=ids.to(where)).logits.float().cpu()  # [2, 16, vocab]
            with model.disable_adapter():
                without = model(input_ids=ids.to(where)).logits.float().cpu()
        deltas[where] = with_adapter - without
    ref = deltas["cpu"]
    scale = float(ref.abs().max())
    err = float((deltas[device] - ref).abs().max()) / max(scale, 1e-12)
    return {"layers": layers, "max_abs_logit_change": scale, "max_rel_err_change": err, "rtol": rtol,
            "ok": scale > 0 and err <= rtol}


def markdown(report: dict) -> str:
    t, c, cpu = report["timing"], report["check"], report["cpu_timing"]
    rows = [
        f"Device: {report['device']} ({report['device_name']}, torch {report['torch']}); target Mistral-7B shapes, "
        f"q_proj + v_proj, rank 8, L hypernetwork ({report['hypernet_params_m']}M parameters); encoder: "
        f"{report['encoder']}.",
        "",
        "| measure | value | target | met |",
        "|---|---|---|---|",
        f"| generate, 1 description per call, p50 ms/adapter | {t['single_p50_ms']} | < {TARGET_P50_MS} | "
        f"{'yes' if t['single_p50_ms'] < TARGET_P50_MS else 'no'} |",
        f"| generate, 1 description per call, p95 ms/adapter | {t['single_p95_ms']} | | |",
        f"| generate, {t['batch']} per call, p50 ms/adapter | {t['batched_p50_ms_per_adapter']} | | |",
        f"| stages p50 ms: encode / hypernet / copy to host (bf16) | {t['encode_p50_ms']} / {t['hypernet_p50_ms']} / "
        f"{t['to_host_p50_ms']} | | |",
    ]
    e, g = report["eager_timing"], report["graphs_vs_eager"]
    if e is not None:
        rows += [
            f"| eager (no CUDA graphs), 1 per call, p50 ms/adapter | {e['single_p50_ms']} (graphs / eager "
            f"{t['single_p50_ms'] / e['single_p50_ms']:.3f}) | | |",
            f"| eager stages p50 ms: encode / hypernet / copy to host | {e['encode_p50_ms']} / {e['hypernet_p50_ms']} / "
            f"{e['to_host_p50_ms']} | | |",
            f"| capture of all graphs at start-up ({g['captured']}: one per token count + the hypernetwork), ms | "
            f"{g['capture_ms']} | | |",
            f"| copy to host ({t['to_host_mb']} MB bf16, {t['to_host_kept']} held at once), p50 ms/adapter: per tensor / "
            f"one flat pageable copy / pinned staging + clone (used) | {t['to_host_per_tensor_p50_ms']} / "
            f"{t['to_host_flat_pageable_p50_ms']} / {t['to_host_staged_p50_ms']} | | |",
            f"| graphs vs eager, A and B, max abs difference | {g['max_abs_diff']:.3g} ({g['encoder_graphs']} encoder "
            f"graphs; disabled: encoder {g['encoder_graphs_disabled']}, hypernet {g['hypernet_graph_disabled']}) | | |",
            f"| same description, generator rebuilt with its own captures: identical bytes | "
            f"{'yes' if g['same_bits_rebuilt'] else 'NO'} | yes | {'yes' if g['same_bits_rebuilt'] else 'no'} |",
        ]
    if cpu is not None:
        rows.append(f"| same machine's CPU ({cpu['threads']} threads), 1 per call, p50 ms/adapter "
                    f"({cpu['calls']} calls) | {cpu['single_p50_ms']} (device / CPU "
                    f"{t['single_p50_ms'] / cpu['single_p50_ms']:.3f}) | | |")
    rows += [
        f"| {report['device']} vs CPU, A and B, max relative error | {c['max_rel_err_factors']:.2e} | <= {c['rtol']} | "
        f"{'yes' if c['max_rel_err_factors'] <= c['rtol'] else 'no'} |",
        f"| {report['device']} vs CPU, s * B(A x), max relative error | {c['max_rel_err_update']:.2e} | <= {c['rtol']} | "
        f"{'yes' if c['max_rel_err_update'] <= c['rtol'] else 'no'} |",
    ]
    p = report["peft"]
    if p is not None:
        rows.append(f"| PEFT on {report['device']} vs CPU, {p['layers']}-layer cut, logit change, max relative error "
                    f"| {p['max_rel_err_change']:.2e} (change up to {p['max_abs_logit_change']:.3g}) | <= {p['rtol']} | "
                    f"{'yes' if p['ok'] else 'no'} |")
    return "\n".join(rows) + "\n"


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
    p.add_argument("--encoder", default="default",
                   help="encoder folder (default: the embedded one); without weights, seeded random weights")
    p.add_argument("--export-encoder", metavar="DIR",
                   help="only write the embedded encoder's config and tokenizer (no weights, ~0.7 MB) to DIR, "
                        "for a machine without the package; then pass --encoder DIR there")
    p.add_argument("--cpu-repeats", type=int, default=10,
                   help="timed calls on the CPU for the same-run ratio (default 10; 0 skips; not with --device cpu)")
    p.add_argument("--peft-layers", type=int, default=2, help="layers of the PEFT check model (default 2; 0 skips)")
    args = p.parse_args(argv)
    if args.export_encoder:
        return export_encoder(Path(args.export_encoder))
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("CUDA is not available here; pass --device cpu for a smoke test")
    if min(args.repeats, args.batch, args.check_descriptions) < 1 or min(args.warmup, args.cpu_repeats,
                                                                          args.peft_layers) < 0:
        p.error("--repeats, --batch and --check-descriptions must be >= 1; --warmup, --cpu-repeats and "
                "--peft-layers >= 0")
    with tempfile.TemporaryDirectory(prefix="t2l-gpu-check-") as tmp:
        work = Path(tmp)
        base_dir = work / "base"
        base_dir.mkdir()
        (base_dir / "config.json").write_text(json.dumps(MISTRAL_7B_CONFIG, indent=2))
        encoder_src, encoder_note = encoder_source(args.encoder, work)
        gen = build(base_dir, args.device, encoder_src)
        t0 = time.perf_counter()
        captured = gen.capture_graphs()  # what `t2l-vllm serve` does at start-up
        capture_ms = (time.perf_counter() - t0) * 1e3
        timing = time_generation(served(gen), args.device, args.repeats, args.warmup, args.batch)
        eager_timing = graphs = None
        if args.device.startswith("cuda"):
            eager_timing = time_generation(served(gen, cuda_graphs=False), args.device, args.repeats, args.warmup,
                                           args.batch)
            timing.update(time_to_host(gen, args.device, args.repeats))
            descs = [f"Graph check {i}, say it twice." for i in range(3)]
            graphs = graphs_vs_eager(served(gen), descs)
            rebuilt = build(base_dir, args.device, encoder_src)
            rebuilt.capture_graphs()
            graphs.update(captured=captured, capture_ms=round(capture_ms, 1),
                          same_bits_rebuilt=same_bits_rebuilt(gen, rebuilt, descs))
        gen_cpu = gen if args.device == "cpu" else build(base_dir, "cpu", encoder_src)
        cpu_timing = None
        if args.device != "cpu" and args.cpu_repeats:
            cpu_timing = time_generation(served(gen_cpu), "cpu", args.cpu_repeats, 1, 1)
            cpu_timing["threads"] = torch.get_num_threads()
        check = compare(gen, gen_cpu, [f"Check description {i}: answer briefly." for i in range(args.check_descriptions)],
                        args.rtol)
        peft = peft_check(gen, args.device, args.peft_layers, args.rtol, work) if args.peft_layers else None
    report = {
        "device": args.device,
        "device_name": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu",
        "torch": torch.__version__,
        "encoder": encoder_note,
        "hypernet_params_m": round(sum(p.numel() for p in gen.hypernet.parameters()) / 1e6, 1),
        "timing": timing, "eager_timing": eager_timing, "graphs_vs_eager": graphs, "cpu_timing": cpu_timing,
        "check": check, "peft": peft,
        "target_p50_ms": TARGET_P50_MS, "target_met": timing["single_p50_ms"] < TARGET_P50_MS,
        "ok": check["ok"] and (peft is None or peft["ok"]) and (graphs is None or graphs["same_bits_rebuilt"]),
    }
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "gpu_check.md").write_text(markdown(report))
    print(markdown(report))
    return report


if __name__ == "__main__":
    sys.exit(0 if main()["ok"] else 1)

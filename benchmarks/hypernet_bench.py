"""Adapter generation latency without a server: encode / hypernet / write / register.

    .venv/bin/python benchmarks/hypernet_bench.py                      # embedded defaults, L/M/S, batches 1,4,16,64
    .venv/bin/python benchmarks/hypernet_bench.py --base-model DIR --encoder DIR --batch-sizes 1,2

For each hypernetwork variant (L, M, S) a freshly initialised network for the
base model's shapes (only its config.json is read) with randomised heads, so the
adapters are non-trivial; for each batch size B (descriptions per `generate`
call) and device (CPU, and CUDA when present):

    encode    description encoder (AdapterGenerator.generate's own timer)
    hypernet  hypernetwork forward (same timer)
    tensors   the rest of generate(): factors -> PEFT tensors in the adapter dtype
              (not part of the server's t2l_adapter_generation_seconds stages)
    write     adapter folder written (atomic rename) under --work-dir, tmpfs by default
    register  what vLLM's worker does with that folder: PEFTHelper parses and
              validates adapter_config.json, LoRAModel.from_local_checkpoint reads
              the weights (see `make_vllm_lora_loader`; the server's register stage
              adds the engine round trip and the copy into the LoRA slots)

Medians over --repeats calls (fresh descriptions each time), per call and per
description, and the ratio batch-vs-single per description. On CUDA the
encode/hypernet split follows kernel launches (asynchronous); the total is exact.
Absolute times depend on the machine; compare within one run.

Outputs (in --out-dir): hypernet_bench.json, hypernet_bench.md, hypernet_bench.png
(the PNG only when matplotlib is importable).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

if __package__ is None:  # run as `python benchmarks/hypernet_bench.py`: `benchmarks.*` resolves from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import int_list, pyplot, write_outputs

STAGES = ("encode", "hypernet", "tensors", "write", "register")
DEFAULT_WORK_DIR = "/dev/shm/t2l-hypernet-bench"
# Module names vLLM's LoRA manager expects in Llama-family checkpoints (the packed
# qkv_proj / gate_up_proj unpacked), which is what WorkerLoRAManager passes.
LLAMA_LORA_MODULES = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


# ---- the only vLLM-internal calls ----------------------------------------------------


def make_vllm_lora_loader(max_rank: int, max_position_embeddings: int | None, vocab_size: int, dtype) -> Callable[[Path], None]:
    """A function doing what vLLM 0.32's worker does to load an adapter folder.

    Mirrors `WorkerLoRAManager._load_adapter` (vllm/lora/worker_manager.py):
    parse adapter_config.json, validate it against a LoRAConfig, read the
    weights into a LoRAModel on the CPU. Kept in one place because these are
    vLLM internals that may change between versions.
    """
    from vllm.config.lora import LoRAConfig
    from vllm.lora.lora_model import LoRAModel
    from vllm.lora.peft_helper import PEFTHelper

    lora_config = LoRAConfig(max_lora_rank=max_rank, max_loras=1)

    def load(folder: Path) -> None:
        helper = PEFTHelper.from_local_dir(str(folder), max_position_embeddings)
        helper.validate_legal(lora_config)
        LoRAModel.from_local_checkpoint(
            str(folder), LLAMA_LORA_MODULES, peft_helper=helper, lora_model_id=1,
            device="cpu", dtype=dtype, model_vocab_size=vocab_size,
        )

    return load


# ---- building what is measured -------------------------------------------------------


def variant_config(base_model_dir: Path, encoder: str | None, variant: str, encoder_kind: str = "hf-mean"):
    """HypernetConfig of `variant` for the base model's shapes; `encoder` None = the embedded default."""
    from t2l_vllm.config import EncoderConfig, HypernetConfig
    from t2l_vllm.target_spec import target_spec_from_dir

    if encoder is None:
        enc = EncoderConfig(kind=encoder_kind)
    else:
        dim = int(json.loads((Path(encoder) / "config.json").read_text())["hidden_size"])
        enc = EncoderConfig(kind=encoder_kind, source=str(encoder), dim=dim)
    return HypernetConfig(target=target_spec_from_dir(base_model_dir), encoder=enc, variant=variant)


def build_generator(config, base_model_dir: Path, device: str, dtype: str, seed: int):
    """An AdapterGenerator around a fresh, randomised network on `device`."""
    from t2l_vllm.encoders import load_encoder
    from t2l_vllm.generator import AdapterGenerator
    from t2l_vllm.hypernet import HyperLoRA, randomise_heads

    net = randomise_heads(HyperLoRA.initialise(config, seed=seed), seed=seed).to(device)
    encoder = load_encoder(config.encoder, base_model_dir, device=device)
    return AdapterGenerator(net, encoder, base_model_name=str(base_model_dir), dtype=dtype)


def build_loader(config, base_model_dir: Path, dtype: str) -> Callable[[Path], None]:
    from t2l_vllm.config import VLLM_RANKS
    from t2l_vllm.generator import DTYPES
    from t2l_vllm.target_spec import read_base_config

    base_cfg = read_base_config(base_model_dir)
    rank = next(r for r in VLLM_RANKS if r >= config.rank)
    return make_vllm_lora_loader(rank, base_cfg.get("max_position_embeddings"), int(base_cfg["vocab_size"]), DTYPES[dtype])


# ---- measuring -----------------------------------------------------------------------


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def one_call(gen, loader, texts: list[str], work_dir: Path, device: str) -> dict[str, float]:
    """Stage times (ms) of one generate call of len(texts) descriptions, written and registered."""
    _sync(device)
    t0 = time.perf_counter()
    adapters = gen.generate(texts)
    _sync(device)
    wall = (time.perf_counter() - t0) * 1e3
    t = adapters[0].timings  # shared by the whole call
    stages = {"encode": t.encode_ms, "hypernet": t.hypernet_ms, "tensors": max(0.0, wall - t.encode_ms - t.hypernet_ms)}
    t0 = time.perf_counter()
    folders = [gen.write(a, work_dir) for a in adapters]
    stages["write"] = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    for folder in folders:
        loader(folder)
    stages["register"] = (time.perf_counter() - t0) * 1e3
    stages["total"] = sum(stages[s] for s in STAGES)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    return stages


def bench_generator(gen, loader, batch_sizes: list[int], repeats: int, work_dir: Path, device: str, label: str) -> list[dict]:
    """Rows of median stage times per batch size; every call uses descriptions never used before."""
    counter = iter(range(10**9))

    def texts(n: int) -> list[str]:
        return [f"Benchmark task {next(counter)} ({label}): classify the sentiment of the text." for _ in range(n)]

    one_call(gen, loader, texts(1), work_dir, device)  # warm-up: lazy initialisation, first vLLM load
    rows = []
    for b in batch_sizes:
        calls = [one_call(gen, loader, texts(b), work_dir, device) for _ in range(repeats)]
        per_call = {k: round(statistics.median(c[k] for c in calls), 3) for k in (*STAGES, "total")}
        rows.append({
            "batch_size": b,
            "repeats": repeats,
            "per_call_ms": per_call,
            "per_description_ms": {k: round(v / b, 3) for k, v in per_call.items()},
            "total_per_description_ms_min_max": [round(min(c["total"] for c in calls) / b, 3),
                                                 round(max(c["total"] for c in calls) / b, 3)],
        })
    single = next((r for r in rows if r["batch_size"] == 1), None)
    for r in rows:
        base = single["per_description_ms"]["total"] if single else None
        r["batch_vs_single_per_description"] = round(r["per_description_ms"]["total"] / base, 3) if base else None
    return rows


def bench_config(config, base_model_dir, *, batch_sizes=(1, 4, 16, 64), device: str = "cpu", repeats: int = 5,
                 work_dir=DEFAULT_WORK_DIR, dtype: str = "bfloat16", seed: int = 0) -> dict:
    """Benchmark one HypernetConfig on one device: {variant, device, params, rows}."""
    base_model_dir = Path(base_model_dir)
    work = Path(work_dir) / f"{config.variant}-{device.replace(':', '')}"
    work.mkdir(parents=True, exist_ok=True)
    try:
        gen = build_generator(config, base_model_dir, device, dtype, seed)
        loader = build_loader(config, base_model_dir, dtype)
        rows = bench_generator(gen, loader, list(batch_sizes), repeats, work, device, f"{config.variant}/{device}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    params = sum(p.numel() for p in gen.hypernet.parameters())
    return {"variant": config.variant, "device": device, "hypernet_params": params, "rows": rows}


def default_devices() -> list[str]:
    import torch

    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def run(base_model_dir: Path, encoder: str | None, variants: list[str], batch_sizes: list[int], devices: list[str],
        repeats: int, work_dir: Path, dtype: str, seed: int, encoder_kind: str = "hf-mean") -> dict:
    """Every (device, variant): the report written by main()."""
    results = []
    for device in devices:
        for variant in variants:
            config = variant_config(base_model_dir, encoder, variant, encoder_kind)
            results.append(bench_config(config, base_model_dir, batch_sizes=batch_sizes, device=device,
                                        repeats=repeats, work_dir=work_dir, dtype=dtype, seed=seed))
            print(one_line(results[-1]), file=sys.stderr)
    spec = variant_config(base_model_dir, encoder, variants[0], encoder_kind)
    return {
        "note": "Medians over repeats; compare within this run, absolute times depend on the machine.",
        "base_model": str(base_model_dir),
        "encoder": encoder or "default (all-MiniLM-L6-v2)",
        "target": {"num_layers": spec.target.num_layers, "modules": [m.name for m in spec.target.modules], "rank": spec.rank},
        "dtype": dtype,
        "work_dir": str(work_dir),
        "stages": list(STAGES),
        "results": results,
    }


def one_line(result: dict) -> str:
    parts = [f"B={r['batch_size']}: {r['per_description_ms']['total']:.2f} ms/desc" for r in result["rows"]]
    return f"{result['device']} {result['variant']}: " + ", ".join(parts)


# ---- outputs -------------------------------------------------------------------------


def markdown(report: dict) -> str:
    lines = [
        f"Base model {Path(report['base_model']).name} ({report['target']['num_layers']} layers, "
        f"{'+'.join(report['target']['modules'])}, rank {report['target']['rank']}), encoder {report['encoder']}, "
        f"adapters in {report['dtype']} written to {report['work_dir']}. Medians, ms.",
        "",
        "| device | variant | params | batch | " + " | ".join(f"{s} /desc" for s in STAGES)
        + " | total /desc | total /call | batch vs single /desc |",
        "|---|---|---|---|" + "---|" * len(STAGES) + "---|---|---|",
    ]
    for res in report["results"]:
        for r in res["rows"]:
            d = r["per_description_ms"]
            cells = " | ".join(f"{d[s]:.2f}" for s in STAGES)
            lines.append(
                f"| {res['device']} | {res['variant']} | {res['hypernet_params'] / 1e6:.1f}M | {r['batch_size']} | {cells} "
                f"| **{d['total']:.2f}** | {r['per_call_ms']['total']:.2f} | {r['batch_vs_single_per_description']} |"
            )
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> bool:
    """Per-description total vs batch size, and the stage split at batch 1; False without matplotlib."""
    plt = pyplot()
    if plt is None:
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    labels, bottoms = [], []
    for res in report["results"]:
        label = f"{res['device']} {res['variant']}"
        rows = res["rows"]
        ax1.plot([r["batch_size"] for r in rows], [r["per_description_ms"]["total"] for r in rows], marker="o", label=label)
        labels.append(label)
        bottoms.append(rows[0]["per_description_ms"])
    bottom = [0.0] * len(labels)
    for stage in STAGES:
        values = [b[stage] for b in bottoms]
        ax2.bar(labels, values, bottom=bottom, label=stage)
        bottom = [x + y for x, y in zip(bottom, values)]
    ax1.set_xscale("log", base=2)
    ax1.set_xlabel("descriptions per call (batch)")
    ax1.set_title("ms per description (total)")
    ax1.set_ylim(bottom=0)
    ax1.grid(alpha=0.3)
    ax1.legend()
    ax2.set_title(f"stages at batch {report['results'][0]['rows'][0]['batch_size']} (ms per description)")
    ax2.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


# ---- command line --------------------------------------------------------------------


def str_list(choices: tuple[str, ...]):
    def parse(text: str) -> list[str]:
        values = [v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in values if v not in choices and not v.startswith("cuda:")]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"unknown value(s) {bad}; choose from {', '.join(choices)}")
        return values

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-model", help="base model folder, only config.json is read (default: embedded SmolLM2-135M-Instruct)")
    p.add_argument("--encoder", help="description encoder folder (default: the embedded all-MiniLM-L6-v2)")
    p.add_argument("--encoder-kind", default="hf-mean", choices=["hf-mean", "hf-cls", "base-hidden"], help="pooling (default hf-mean)")
    p.add_argument("--variants", type=str_list(("L", "M", "S")), default=["L", "M", "S"], help="comma-separated (default L,M,S)")
    p.add_argument("--batch-sizes", type=int_list, default=[1, 4, 16, 64], help="descriptions per call (default 1,4,16,64)")
    p.add_argument("--devices", type=str_list(("cpu", "cuda")), default=None, help="default: cpu, plus cuda when available")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per batch size; medians are reported (default 5)")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"], help="adapter dtype (default bfloat16)")
    p.add_argument("--seed", type=int, default=0, help="seed of the network initialisation (default 0)")
    p.add_argument("--work-dir", default=DEFAULT_WORK_DIR, help=f"where adapters are written (default {DEFAULT_WORK_DIR}, tmpfs)")
    p.add_argument("--out-dir", default="runs/hypernet_bench", help="where the JSON, markdown and PNG go (default runs/hypernet_bench)")
    return p


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns the report (also written to --out-dir)."""
    import os

    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.repeats < 1:
        raise SystemExit("--repeats must be >= 1")
    if args.base_model:
        base = Path(args.base_model)
    else:
        from t2l_vllm.defaults import default_base_model_dir

        base = default_base_model_dir()
    report = run(base, args.encoder, args.variants, args.batch_sizes, args.devices or default_devices(), args.repeats,
                 Path(args.work_dir), args.dtype, args.seed, args.encoder_kind)
    paths = write_outputs(report, Path(args.out_dir), "hypernet_bench", markdown, plot)
    print(markdown(report))
    print("wrote " + ", ".join(paths.values()), file=sys.stderr)
    return report


if __name__ == "__main__":
    main()

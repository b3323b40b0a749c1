"""`t2l-vllm` command line. The CLI owns logging, progress bars and environment."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def _quiet_libraries() -> None:
    # Offline by design: nothing may try to reach a model hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _resolve_models(args: argparse.Namespace) -> tuple[Path, Path]:
    from . import defaults

    base = Path(args.base_model) if args.base_model else defaults.default_base_model_dir()
    hypernet = Path(args.hypernet) if args.hypernet else defaults.default_hypernet_dir(base)
    return base, hypernet


def cmd_generate(args: argparse.Namespace) -> int:
    from . import envs
    from .generator import AdapterGenerator

    t0 = time.perf_counter()
    base, hypernet = _resolve_models(args)
    gen = AdapterGenerator.from_pretrained(
        hypernet, base, base_model_name=args.base_model_name, dtype=args.dtype
    )
    load_ms = (time.perf_counter() - t0) * 1e3
    out_root = Path(args.out) if args.out else envs.cache_dir() / "adapters"
    results = gen.generate_to_dir(args.descriptions, out_root)
    rows = [{"adapter_id": a.adapter_id, "path": str(p), "description": a.description} for a, p in results]
    t = results[0][0].timings
    report = {
        "adapters": rows,
        "hypernet": str(hypernet),
        "base_model": str(base),
        "timings_ms": {
            "load": round(load_ms, 1),
            "encode": round(t.encode_ms, 2),
            "hypernet": round(t.hypernet_ms, 2),
            "write": round(t.write_ms, 2),
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for r in rows:
        print(f"{r['adapter_id']}  {r['path']}")
    tm = report["timings_ms"]
    print(
        f"{len(rows)} adapter(s): encode {tm['encode']} ms, hypernet {tm['hypernet']} ms, "
        f"write {tm['write']} ms (load {tm['load']} ms)"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="t2l-vllm", description="Text-to-LoRA adapters for vLLM")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="turn task descriptions into PEFT LoRA adapter folders")
    g.add_argument("descriptions", nargs="+", help="one or more task descriptions (batched in one forward)")
    g.add_argument("--out", help="folder that receives one <adapter_id>/ folder each (default: cache/adapters)")
    g.add_argument("--hypernet", help="hypernetwork checkpoint folder (default: the embedded one)")
    g.add_argument("--base-model", help="base model folder (default: the embedded SmolLM2-135M-Instruct)")
    g.add_argument("--base-model-name", help="name written as base_model_name_or_path (default: the folder)")
    g.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    g.add_argument("--json", action="store_true", help="print a JSON report")
    g.set_defaults(func=cmd_generate)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    try:
        return args.func(args)
    except ValueError as e:
        print(f"t2l-vllm {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

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


def _has_flag(argv: list[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in argv)


def _cpu_preload(env: dict[str, str]) -> None:
    """vLLM on CPU wants Intel OpenMP and tcmalloc preloaded (measured +6% throughput)."""
    import glob

    libs = [p for p in env.get("LD_PRELOAD", "").split(":") if p]
    candidates = [Path(sys.prefix) / "lib" / "libiomp5.so"] + [
        Path(p) for p in sorted(glob.glob("/usr/lib/*-linux-gnu/libtcmalloc_minimal.so.4"))
    ]
    for lib in candidates:
        if lib.is_file() and str(lib) not in libs:
            libs.append(str(lib))
    if libs:
        env["LD_PRELOAD"] = ":".join(libs)


def serve_command(args: argparse.Namespace, vllm_args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The vLLM API server command line and environment for `t2l-vllm serve`."""
    import torch

    from . import defaults
    from .checkpoint import check_base_compatible, read_hypernet_config
    from .config import VLLM_RANKS
    from .serve_config import ServeConfig
    from .target_spec import read_base_config

    base, hypernet = _resolve_models(argparse.Namespace(base_model=args.model, hypernet=args.hypernet))
    hn_config, _ = read_hypernet_config(hypernet)
    check_base_compatible(hn_config, read_base_config(base), base_name=str(base))

    env = dict(os.environ)
    plugins = [p for p in env.get("VLLM_PLUGINS", "").split(",") if p]
    for name in ("t2l_vllm", "t2l_vllm_endpoints"):
        if name not in plugins:
            plugins.append(name)
    env["VLLM_PLUGINS"] = ",".join(plugins)
    env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "1"
    env["T2L_VLLM_HYPERNET"] = str(Path(hypernet).resolve())
    for key, value in (
        ("T2L_VLLM_ADAPTER_DIR", args.adapter_dir),
        ("T2L_VLLM_MAX_ENGINE_ADAPTERS", args.max_engine_adapters),
        ("T2L_VLLM_MAX_DISK_ADAPTERS", args.max_disk_adapters),
        ("T2L_VLLM_MAX_DESCRIPTION_CHARS", args.max_description_chars),
    ):
        if value is not None:
            env[key] = str(value)
    # Validate the bounds now, with the error in this terminal rather than in the server log.
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        serve_config = ServeConfig.from_env()
    finally:
        os.environ.clear()
        os.environ.update(saved)

    on_cpu = not torch.cuda.is_available()
    if on_cpu:
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
        _cpu_preload(env)

    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(base)]
    if not args.model and not _has_flag(vllm_args, "--served-model-name"):
        cmd += ["--served-model-name", defaults.BASE_NAME]
    rank = next(r for r in VLLM_RANKS if r >= hn_config.rank)
    max_loras = 8
    extra = {
        "--enable-lora": None,
        "--max-lora-rank": str(rank),
        "--max-loras": str(max_loras),
        "--max-cpu-loras": str(max(max_loras, serve_config.max_engine_adapters)),
        "--max-model-len": "4096",
    }
    for flag, value in extra.items():
        if not _has_flag(vllm_args, flag):
            cmd += [flag] if value is None else [flag, value]
    return cmd + vllm_args, env


def cmd_serve(args: argparse.Namespace, vllm_args: list[str]) -> int:
    cmd, env = serve_command(args, vllm_args)
    print("t2l-vllm serve: " + " ".join(cmd), file=sys.stderr, flush=True)
    os.execvpe(cmd[0], cmd, env)
    return 1  # not reached


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

    sv = sub.add_parser(
        "serve",
        help="start vLLM's OpenAI server with on-the-fly adapters (other arguments go to vLLM)",
        description="Starts vLLM's OpenAI-compatible server with the t2l-vllm plugin. Arguments not listed "
        "here are passed to vLLM unchanged (e.g. --port, --api-key, --dtype, --max-loras).",
    )
    sv.add_argument("--model", help="base model folder (default: the embedded SmolLM2-135M-Instruct)")
    sv.add_argument("--hypernet", help="hypernetwork checkpoint folder (default: the embedded one)")
    sv.add_argument("--adapter-dir", help="durable adapter folder (default: cache/adapters)")
    sv.add_argument("--max-engine-adapters", type=int, help="adapters registered in vLLM at once (default 32)")
    sv.add_argument("--max-disk-adapters", type=int, help="adapters kept on disk (default 1024)")
    sv.add_argument("--max-description-chars", type=int, help="longest task_description accepted (default 4000)")
    sv.set_defaults(func=cmd_serve, passthrough=True)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    _quiet_libraries()
    try:
        return args.func(args, rest) if getattr(args, "passthrough", False) else args.func(args)
    except ValueError as e:
        print(f"t2l-vllm {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

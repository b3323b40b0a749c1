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


def _base_model(args: argparse.Namespace) -> Path:
    """--base-model, or the embedded default (converted on first use)."""
    from . import defaults

    return Path(args.base_model) if args.base_model else defaults.default_base_model_dir()


def _resolve_models(args: argparse.Namespace) -> tuple[Path, Path]:
    from . import defaults

    base = _base_model(args)
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
    from .serving.config import ServeConfig
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
        "--enable-lora": [],
        "--max-lora-rank": [str(rank)],
        "--max-loras": [str(max_loras)],
        "--max-cpu-loras": [str(max(max_loras, serve_config.max_engine_adapters))],
        "--max-model-len": ["4096"],
        # LoRA-wrap only the modules the hypernetwork writes: every other wrapped
        # layer would still cost a LoRA call per step for all-zero weights.
        "--lora-target-modules": [m.name for m in hn_config.target.modules],
    }
    for flag, values in extra.items():
        if not _has_flag(vllm_args, flag):
            cmd += [flag, *values]
    return cmd + vllm_args, env


def cmd_serve(args: argparse.Namespace, vllm_args: list[str]) -> int:
    cmd, env = serve_command(args, vllm_args)
    print("t2l-vllm serve: " + " ".join(cmd), file=sys.stderr, flush=True)
    os.execvpe(cmd[0], cmd, env)
    return 1  # not reached


def _progress_bar(desc: str):
    """A tqdm bar fed by a trainer's progress(step, total, record) callback."""
    from tqdm.auto import tqdm

    bar = None

    def update(step: int, total: int, record: dict) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, initial=step - 1, desc=desc, dynamic_ncols=True)
        bar.update(step - bar.n)
        bar.set_postfix({k: v for k, v in record.items() if k in ("loss", "ce", "l1", "task")})
        if step >= total:
            bar.close()

    return update


def _hypernet_config(args: argparse.Namespace, base: Path):
    from .config import HypernetConfig
    from .target_spec import target_spec_from_dir

    return HypernetConfig(target=target_spec_from_dir(base), variant=args.variant)


def cmd_train_sft(args: argparse.Namespace) -> int:
    from .training.sft import SFTConfig, train_sft

    base = _base_model(args)
    config = SFTConfig(
        steps=args.steps, lr=args.lr, tasks_per_batch=args.tasks_per_batch, seed=args.seed,
        save_every=args.save_every, style=args.style, init_from=str(args.init_from or ""),
    )
    t0 = time.perf_counter()
    ckpt = train_sft(_hypernet_config(args, base), base, Path(args.out), config, progress=_progress_bar("sft"))
    print(f"checkpoint: {ckpt} ({time.perf_counter() - t0:.0f} s this session)")
    return 0


def cmd_train_oracles(args: argparse.Namespace) -> int:
    from .tasks import FAMILIES
    from .training.peft_lora import OracleConfig, train_oracles

    base = _base_model(args)
    names = args.tasks.split(",") if args.tasks else list(FAMILIES)
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown task families: {', '.join(unknown)}")
    config = OracleConfig(steps=args.steps, lr=args.lr, batch_size=args.batch_size, seed=args.seed)
    t0 = time.perf_counter()
    done = train_oracles(
        _hypernet_config(args, base), base, Path(args.out), [FAMILIES[n] for n in names], config,
        progress=_progress_bar("oracles"),
    )
    print(f"{len(done)} oracle adapters under {args.out} ({time.perf_counter() - t0:.0f} s this session)")
    return 0


def cmd_train_multitask(args: argparse.Namespace) -> int:
    from .training.peft_lora import MultitaskConfig, train_multitask

    base = _base_model(args)
    config = MultitaskConfig(steps=args.steps, lr=args.lr, seed=args.seed, save_every=args.save_every)
    t0 = time.perf_counter()
    path = train_multitask(_hypernet_config(args, base), base, Path(args.out), config, progress=_progress_bar("multitask"))
    print(f"adapter: {path} ({time.perf_counter() - t0:.0f} s this session)")
    return 0


def cmd_train_recon(args: argparse.Namespace) -> int:
    from .training.reconstruction import ReconConfig, train_reconstruction

    base = _base_model(args)
    config = ReconConfig(
        library=str(Path(args.library).resolve()), tasks=args.tasks or "", steps=args.steps, lr=args.lr,
        seed=args.seed, tasks_per_batch=args.tasks_per_batch,
    )
    t0 = time.perf_counter()
    ckpt = train_reconstruction(_hypernet_config(args, base), base, Path(args.out), config, progress=_progress_bar("recon"))
    print(f"checkpoint: {ckpt} ({time.perf_counter() - t0:.0f} s this session)")
    return 0


def cmd_make_tasks(args: argparse.Namespace) -> int:
    from .tasks import make_examples, write_jsonl

    families = args.tasks.split(",") if args.tasks else None
    examples = make_examples(families, args.split, args.n_per_task, args.seed)
    write_jsonl(args.out, examples)
    print(f"{len(examples)} examples -> {args.out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation import GENERATED_MODES, EvalConfig, parse_modes, run_eval
    from .tasks import read_jsonl

    modes = parse_modes(args.modes)
    examples = read_jsonl(args.tasks)
    # vLLM on CPU otherwise reserves most of the machine's memory for its KV cache.
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    base, hypernet = _resolve_models(args)
    if not any(m in GENERATED_MODES for m in modes):
        hypernet = None  # no adapter is generated: results must not name a hypernetwork
    config = EvalConfig(modes=modes, max_tokens=args.max_tokens, seed=args.seed)
    t0 = time.perf_counter()
    results = run_eval(
        examples, base, Path(args.out), config, hypernet_dir=hypernet,
        multitask_dir=args.multitask, oracle_dir=args.oracles,
    )
    from .evaluation import markdown_table

    print(markdown_table(results), end="")
    print(f"{len(examples)} examples x {len(modes)} modes in {time.perf_counter() - t0:.0f} s; results in {args.out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import torch

    from .checkpoint import WEIGHTS_NAME, load_hypernet, read_hypernet_config, save_hypernet

    _, metadata = read_hypernet_config(args.hypernet)
    net = load_hypernet(args.hypernet)
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[args.dtype]
    metadata = {**metadata, "exported_dtype": args.dtype}
    out = save_hypernet(net, Path(args.out), dtype=dtype, metadata=metadata)
    size = (out / WEIGHTS_NAME).stat().st_size / 2**20
    print(f"{out}: {size:.1f} MiB ({args.dtype})")
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

    ts = sub.add_parser("train-sft", help="train a hypernetwork end to end through the base model (resumable)")
    ts.add_argument("--out", required=True, help="run folder; rerunning the same command resumes it")
    ts.add_argument("--base-model", help="base model folder (default: the embedded SmolLM2-135M-Instruct)")
    ts.add_argument("--variant", default="L", choices=["L", "M", "S"])
    ts.add_argument("--steps", type=int, default=2000)
    ts.add_argument("--lr", type=float, default=2.5e-5)
    ts.add_argument("--tasks-per-batch", type=int, default=8)
    ts.add_argument("--seed", type=int, default=0)
    ts.add_argument("--save-every", type=int, default=50)
    ts.add_argument("--style", default="t2l", choices=["t2l", "t2l+desc"], help="prompt style trained on")
    ts.add_argument("--init-from", help="start from this hypernetwork checkpoint (e.g. a reconstruction run)")
    ts.set_defaults(func=cmd_train_sft)

    to = sub.add_parser("train-oracles", help="train one PEFT LoRA per task family (resumable per family)")
    to.add_argument("--out", required=True, help="library folder: one <family>/ PEFT folder each")
    to.add_argument("--tasks", help="comma-separated families (default: all, held-out ones included)")
    to.add_argument("--base-model", help="base model folder (default: the embedded SmolLM2-135M-Instruct)")
    to.add_argument("--variant", default="L", choices=["L", "M", "S"], help=argparse.SUPPRESS)
    to.add_argument("--steps", type=int, default=60)
    to.add_argument("--lr", type=float, default=1e-3)
    to.add_argument("--batch-size", type=int, default=8)
    to.add_argument("--seed", type=int, default=0)
    to.set_defaults(func=cmd_train_oracles)

    tm = sub.add_parser("train-multitask", help="train one PEFT LoRA on all training families (resumable)")
    tm.add_argument("--out", required=True, help="run folder; the adapter lands in <out>/adapter")
    tm.add_argument("--base-model", help="base model folder (default: the embedded SmolLM2-135M-Instruct)")
    tm.add_argument("--variant", default="L", choices=["L", "M", "S"], help=argparse.SUPPRESS)
    tm.add_argument("--steps", type=int, default=600)
    tm.add_argument("--lr", type=float, default=5e-4)
    tm.add_argument("--seed", type=int, default=0)
    tm.add_argument("--save-every", type=int, default=50)
    tm.set_defaults(func=cmd_train_multitask)

    tr = sub.add_parser("train-recon", help="train a hypernetwork to reconstruct the oracle library (resumable)")
    tr.add_argument("--out", required=True, help="run folder; the checkpoint lands in <out>/checkpoint")
    tr.add_argument("--library", required=True, help="folder written by train-oracles")
    tr.add_argument("--base-model", help="base model folder (default: the embedded SmolLM2-135M-Instruct)")
    tr.add_argument("--tasks", help="comma-separated training families to reconstruct (default: all)")
    tr.add_argument("--variant", default="L", choices=["L", "M", "S"])
    tr.add_argument("--steps", type=int, default=500)
    tr.add_argument("--tasks-per-batch", type=int, default=4)
    tr.add_argument("--lr", type=float, default=4e-5)
    tr.add_argument("--seed", type=int, default=0)
    tr.set_defaults(func=cmd_train_recon)

    ev = sub.add_parser("eval", help="score modes (base, base+desc, t2l, ...) on a JSONL task file with one vLLM engine")
    ev.add_argument("--tasks", required=True, help="JSONL file: task, description, input, target per line")
    ev.add_argument("--modes", default="base,base+desc,t2l,t2l+desc",
                    help="comma-separated: base, base+desc, t2l, t2l+desc, multitask, oracle, random-desc, other-desc")
    ev.add_argument("--out", required=True, help="folder for results.json, results.md, predictions.jsonl, averages.png")
    ev.add_argument("--hypernet", help="hypernetwork checkpoint folder (default: the embedded one)")
    ev.add_argument("--base-model", help="base model folder (default: the embedded SmolLM2-135M-Instruct)")
    ev.add_argument("--multitask", help="PEFT adapter folder for mode multitask")
    ev.add_argument("--oracles", help="folder with one PEFT adapter per task for mode oracle")
    ev.add_argument("--max-tokens", type=int, default=32)
    ev.add_argument("--seed", type=int, default=0, help="seed of the robustness probes' descriptions")
    ev.set_defaults(func=cmd_eval)

    ex = sub.add_parser("export", help="write a hypernetwork checkpoint in a smaller dtype (e.g. to ship it)")
    ex.add_argument("--hypernet", required=True, help="checkpoint folder (e.g. <run>/checkpoint)")
    ex.add_argument("--out", required=True, help="destination folder (replaced atomically)")
    ex.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ex.set_defaults(func=cmd_export)

    mk = sub.add_parser("make-tasks", help="write a JSONL task file from the built-in task suite")
    mk.add_argument("--split", required=True, choices=["train", "heldout-desc", "heldout-family"])
    mk.add_argument("--n-per-task", type=int, default=20)
    mk.add_argument("--seed", type=int, default=1000)
    mk.add_argument("--tasks", help="comma-separated families (default: all of the split)")
    mk.add_argument("--out", required=True)
    mk.set_defaults(func=cmd_make_tasks)
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

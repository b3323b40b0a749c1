"""`t2l-vllm` command line. The CLI owns logging, progress bars and environment."""

from __future__ import annotations

import argparse
import json
import os
import shutil
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


def cmd_serve(args: argparse.Namespace, vllm_args: list[str]) -> int:
    import torch

    from .serving.config import ServeConfig
    from .serving.launch import serve_command

    # Validated here, with the error in this terminal rather than in the server log.
    config = ServeConfig.from_args(args)
    on_cpu = not torch.cuda.is_available()
    if on_cpu:
        _build_fused_lora_op()
    cmd, env = serve_command(args.model, config, vllm_args, os.environ, on_cpu=on_cpu)
    print("t2l-vllm serve: " + " ".join(cmd), file=sys.stderr, flush=True)
    os.execvpe(cmd[0], cmd, env)
    return 1  # not reached


def _build_fused_lora_op() -> None:
    """Compile the CPU LoRA op before vLLM starts (its engine processes only load it; cached)."""
    from . import envs
    from .cpu_lora import fused

    if not envs.fused_lora():
        return
    try:
        print(f"t2l-vllm serve: compiled LoRA op {fused.build()}", file=sys.stderr, flush=True)
    except Exception as e:  # no compiler, say: the pure-torch ops serve
        print(f"t2l-vllm serve: compiled LoRA op not built ({type(e).__name__}: {e}); using the torch ops",
              file=sys.stderr, flush=True)


def _progress_bar(desc: str):
    """A tqdm bar fed by a trainer's progress(step, total, record) callback."""
    from tqdm.auto import tqdm

    bar = None

    def update(step: int, total: int, record: dict) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, initial=step - 1, desc=desc, dynamic_ncols=True)
        bar.update(step - bar.n)
        bar.set_postfix({k: v for k, v in record.items() if k in ("loss", "ce", "kl", "l1", "task")})
        if step >= total:
            bar.close()

    return update


def _answer(args: argparse.Namespace) -> str:
    """--answer, or the suite's default (v1: short, as the shipped checkpoint; compositional: all)."""
    from .tasks.suites import DEFAULT_ANSWER

    return args.answer or DEFAULT_ANSWER[args.suite]


def _train(args: argparse.Namespace, name: str, train, *inputs, report=lambda out: f"checkpoint: {out}") -> int:
    """Run `train(hypernet_config, base, out, *inputs, progress=bar)`; print `report(result)` and the time."""
    from .config import HypernetConfig
    from .target_spec import target_spec_from_dir

    base = _base_model(args)
    hypernet_config = HypernetConfig(target=target_spec_from_dir(base), variant=args.variant)
    t0 = time.perf_counter()
    result = train(hypernet_config, base, Path(args.out), *inputs, progress=_progress_bar(name))
    print(f"{report(result)} ({time.perf_counter() - t0:.0f} s this session)")
    return 0


def cmd_train_sft(args: argparse.Namespace) -> int:
    from .training.sft import SFTConfig, train_sft

    config = SFTConfig(
        steps=args.steps, lr=args.lr, tasks_per_batch=args.tasks_per_batch, seed=args.seed,
        save_every=args.save_every, style=args.style, init_from=str(args.init_from or ""), answer=_answer(args),
        distill_weight=args.distill_weight, distill_tokens=args.distill_tokens, distill_only=args.distill_only,
        suite=args.suite, max_families=args.max_families, sibling_batches=args.sibling_batches,
    )
    return _train(args, "sft", train_sft, config)


def cmd_train_oracles(args: argparse.Namespace) -> int:
    from .tasks.suites import get_suite
    from .training.peft_lora import OracleConfig, train_oracles

    families = get_suite(args.suite).families
    answer = _answer(args)
    wanted = ("short", "open") if answer == "all" else (answer,)
    names = args.tasks.split(",") if args.tasks else [n for n, f in families.items() if f.answer in wanted]
    unknown = [n for n in names if n not in families]
    if unknown:
        raise ValueError(f"unknown task families: {', '.join(unknown)}")
    config = OracleConfig(steps=args.steps, lr=args.lr, batch_size=args.batch_size, seed=args.seed)
    return _train(
        args, "oracles", train_oracles, [families[n] for n in names], config,
        report=lambda done: f"{len(done)} oracle adapters under {args.out}",
    )


def cmd_train_multitask(args: argparse.Namespace) -> int:
    from .training.peft_lora import MultitaskConfig, train_multitask

    config = MultitaskConfig(
        steps=args.steps, lr=args.lr, seed=args.seed, save_every=args.save_every, answer=_answer(args), suite=args.suite
    )
    return _train(args, "multitask", train_multitask, config, report=lambda path: f"adapter: {path}")


def cmd_train_recon(args: argparse.Namespace) -> int:
    from .training.reconstruction import ReconConfig, train_reconstruction

    config = ReconConfig(
        library=str(Path(args.library).resolve()), tasks=args.tasks or "", steps=args.steps, lr=args.lr,
        seed=args.seed, tasks_per_batch=args.tasks_per_batch, answer=_answer(args), suite=args.suite,
    )
    return _train(args, "recon", train_reconstruction, config)


def cmd_make_tasks(args: argparse.Namespace) -> int:
    from .tasks import write_jsonl
    from .tasks.suites import get_suite, nested_subset

    suite = get_suite(args.suite)
    if args.split not in suite.splits:
        raise ValueError(f"split {args.split!r} is not a split of the {suite.name} suite ({', '.join(suite.splits)})")
    families = args.tasks.split(",") if args.tasks else None
    if args.max_families:
        # The split's first N families in the suite's fixed nested order (every group early).
        pool = [suite.families[n] for n in families] if families else suite.split_families(args.split, args.answer)
        families = [f.name for f in nested_subset(pool, args.max_families, suite.operation_of)]
    examples = suite.make_examples(families, args.split, args.n_per_task, args.seed, answer=args.answer)
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
    config = EvalConfig(modes=modes, max_tokens=args.max_tokens, seed=args.seed,
                        policy=args.policy, min_confidence=args.min_confidence)
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
    from .confidence import load_confidence
    from .routing import ROUTING_FILE

    _, metadata = read_hypernet_config(args.hypernet)
    net = load_hypernet(args.hypernet)
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[args.dtype]
    metadata = {**metadata, "exported_dtype": args.dtype}
    out = save_hypernet(net, Path(args.out), dtype=dtype, metadata=metadata, confidence=load_confidence(args.hypernet))
    if (Path(args.hypernet) / ROUTING_FILE).is_file():  # the router is the checkpoint's too: copy it unchanged
        shutil.copy2(Path(args.hypernet) / ROUTING_FILE, out / ROUTING_FILE)
    size = (out / WEIGHTS_NAME).stat().st_size / 2**20
    print(f"{out}: {size:.1f} MiB ({args.dtype})")
    return 0


def cmd_confidence_index(args: argparse.Namespace) -> int:
    from .checkpoint import read_hypernet_config
    from .confidence import CONFIDENCE_FILE, build_confidence_index
    from .encoders import load_encoder
    from .tasks.suites import get_suite, select_training_families

    config, _ = read_hypernet_config(args.hypernet)
    if config.encoder.kind == "base-hidden":
        raise ValueError("confidence-index needs a text encoder; this checkpoint reads the base model's hidden states")
    suite = get_suite(args.suite)
    families = select_training_families(suite, _answer(args), args.max_families)
    descriptions = [d for fam in families for d in suite.train_descriptions(fam)]
    index = build_confidence_index(load_encoder(config.encoder), descriptions)
    path = index.save(args.hypernet)
    print(f"{path}: {len(descriptions)} training descriptions ({CONFIDENCE_FILE}, {path.stat().st_size / 1024:.0f} KiB)")
    return 0


def cmd_train_router(args: argparse.Namespace) -> int:
    import random

    from .checkpoint import read_hypernet_config
    from .encoders import load_encoder
    from .routing import ROUTING_FILE, Router, RouterTrainConfig, train_metric
    from .tasks.suites import get_suite, select_training_families

    config, _ = read_hypernet_config(args.hypernet)
    if config.encoder.kind == "base-hidden":
        raise ValueError("train-router needs a text encoder; this checkpoint reads the base model's hidden states")
    train = RouterTrainConfig(steps=args.steps, lr=args.lr, temperature=args.temperature, seed=args.seed)
    if args.descriptions_per_family < 2:
        raise ValueError(f"--descriptions-per-family must be >= 2, got {args.descriptions_per_family}")
    # Known: what the checkpoint was trained on (as confidence-index). Metric data: those, plus the
    # metric suite's training families (never a held-out family or description of either suite).
    suite = get_suite(args.suite)
    known_fams = select_training_families(suite, _answer(args), args.max_families)
    known = [(f.name, d) for f in known_fams for d in suite.train_descriptions(f)]
    data, pairs, known_names = list(known), {}, {f.name for f in known_fams}
    for name in [n for n in args.metric_suites.split(",") if n]:
        other = get_suite(name)
        fams = other.training_families("all")
        pairs.update(other.siblings(fams) if name != args.suite else {})
        for f in fams:
            if f.name in known_names:
                continue
            descs = list(other.train_descriptions(f))
            data += [(f.name, d) for d in random.Random(f"router:{f.name}").sample(
                descs, min(args.descriptions_per_family, len(descs)))]
    encoder = load_encoder(config.encoder)
    print(f"embedding {len(data)} descriptions of {len({f for f, _ in data})} families "
          f"({len(known)} known: the checkpoint's training descriptions)", flush=True)
    emb = encoder.encode([d for _, d in data])  # [N, dim]
    weight = train_metric(emb, [f for f, _ in data], pairs, train,
                          log=lambda step, loss: print(f"step {step}: loss {loss:.4f}", flush=True))
    router = Router(weight, tuple(d for _, d in known), emb[:len(known)])
    meta = {"suite": args.suite, "answer": _answer(args), "max_families": args.max_families,
            "metric_suites": args.metric_suites, "sampled_per_family": args.descriptions_per_family,
            "descriptions": len(data), **train.__dict__}
    path = router.save(args.hypernet, meta)
    print(f"{path}: task metric {router.dim}x{router.dim}, {len(known)} known descriptions "
          f"({ROUTING_FILE}, {path.stat().st_size / 1024:.0f} KiB)")
    return 0


def _add_suite(parser: argparse.ArgumentParser, answer_help: str) -> None:
    """--suite and --answer, shared by the training commands and confidence-index."""
    from .tasks.suites import SUITES

    parser.add_argument("--suite", default="v1", choices=list(SUITES),
                        help="task suite: v1 (the original 87 families, default) or compositional (issue 13's grid)")
    parser.add_argument("--answer", default=None, choices=["short", "open", "all"],
                        help=answer_help + " (default: short for --suite v1, all for --suite compositional)")


def build_parser() -> argparse.ArgumentParser:
    from .confidence import DEFAULT_MIN_CONFIDENCE, DEFAULT_POLICY, POLICIES
    from .routing import RouterTrainConfig
    from .serving.config import ServeConfig
    from .tasks import splits as v1_splits
    from .tasks.suites import COMPOSITIONAL_SPLITS, SUITES

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
        allow_abbrev=False,  # an abbreviation must never swallow a vLLM flag meant to pass through
        help="start vLLM's OpenAI server with on-the-fly adapters (other arguments go to vLLM)",
        description="Starts vLLM's OpenAI-compatible server with the t2l-vllm plugin. Arguments not listed "
        "here are passed to vLLM unchanged (e.g. --port, --api-key, --dtype, --max-num-seqs).",
    )
    sv.add_argument("--model", help="base model folder (default: the embedded SmolLM2-135M-Instruct)")
    ServeConfig.add_arguments(sv)
    sv.set_defaults(func=cmd_serve, passthrough=True)

    from .cluster.cli import add_parser as add_cluster_parser

    add_cluster_parser(sub)

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
    _add_suite(ts, "training families by answer type: short, open or all")
    ts.add_argument("--max-families", type=int, default=0,
                    help="train on the first N training families of the suite's fixed nested order "
                    "(25 within 50 within 100 ..., every group early; default 0: all)")
    ts.add_argument("--sibling-batches", action="store_true",
                    help="put a sibling of each sampled family (its mirror, else a group-mate) into the same step")
    ts.add_argument("--distill-weight", type=float, default=0.0,
                    help="weight of context distillation: KL to the base model prompted with the description (0: off)")
    ts.add_argument("--distill-tokens", type=int, default=48, help="length of the teacher's greedy continuation")
    ts.add_argument("--distill-only", action="store_true", help="train on the distillation KL alone (no cross-entropy)")
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
    _add_suite(to, "without --tasks: families by answer type")
    to.set_defaults(func=cmd_train_oracles)

    tm = sub.add_parser("train-multitask", help="train one PEFT LoRA on all training families (resumable)")
    tm.add_argument("--out", required=True, help="run folder; the adapter lands in <out>/adapter")
    tm.add_argument("--base-model", help="base model folder (default: the embedded SmolLM2-135M-Instruct)")
    tm.add_argument("--variant", default="L", choices=["L", "M", "S"], help=argparse.SUPPRESS)
    tm.add_argument("--steps", type=int, default=600)
    tm.add_argument("--lr", type=float, default=5e-4)
    tm.add_argument("--seed", type=int, default=0)
    tm.add_argument("--save-every", type=int, default=50)
    _add_suite(tm, "training families by answer type: short, open or all")
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
    _add_suite(tr, "training families by answer type: short, open or all")
    tr.set_defaults(func=cmd_train_recon)

    ev = sub.add_parser("eval", help="score modes (base, base+desc, t2l, ...) on a JSONL task file with one vLLM engine")
    ev.add_argument("--tasks", required=True, help="JSONL file: task, description, input, target per line")
    ev.add_argument("--modes", default="base,base+desc,t2l,t2l+desc",
                    help="comma-separated: base, base+desc, t2l, t2l+desc, multitask, oracle, random-desc, other-desc, "
                    "policy (what t2l-vllm serve serves with --policy and --min-confidence)")
    ev.add_argument("--out", required=True, help="folder for results.json, results.md, predictions.jsonl, averages.png")
    ev.add_argument("--hypernet", help="hypernetwork checkpoint folder (default: the embedded one)")
    ev.add_argument("--base-model", help="base model folder (default: the embedded SmolLM2-135M-Instruct)")
    ev.add_argument("--multitask", help="PEFT adapter folder for mode multitask")
    ev.add_argument("--oracles", help="folder with one PEFT adapter per task for mode oracle")
    ev.add_argument("--max-tokens", type=int, default=32)
    ev.add_argument("--policy", default=DEFAULT_POLICY, choices=list(POLICIES),
                    help="mode policy: how a description below --min-confidence is served (as serve's --low-confidence-policy)")
    ev.add_argument("--min-confidence", type=float, default=DEFAULT_MIN_CONFIDENCE, help="mode policy: the threshold")
    ev.add_argument("--seed", type=int, default=0, help="seed of the robustness probes' descriptions")
    ev.set_defaults(func=cmd_eval)

    ex = sub.add_parser("export", help="write a hypernetwork checkpoint in a smaller dtype (e.g. to ship it)")
    ex.add_argument("--hypernet", required=True, help="checkpoint folder (e.g. <run>/checkpoint)")
    ex.add_argument("--out", required=True, help="destination folder (replaced atomically)")
    ex.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ex.set_defaults(func=cmd_export)

    mk = sub.add_parser("make-tasks", help="write a JSONL task file from the built-in task suite")
    split_names = list(dict.fromkeys(v1_splits.SPLITS + COMPOSITIONAL_SPLITS))
    mk.add_argument("--split", required=True, choices=split_names,
                    help="v1: train, heldout-desc, heldout-family; compositional: also heldout-combination, mirror")
    mk.add_argument("--suite", default="v1", choices=list(SUITES), help="task suite (default v1, the original)")
    mk.add_argument("--max-families", type=int, default=0,
                    help="only the split's first N families in the suite's fixed nested order (default 0: all)")
    mk.add_argument("--n-per-task", type=int, default=20)
    mk.add_argument("--seed", type=int, default=1000)
    mk.add_argument("--tasks", help="comma-separated families (default: all of the split)")
    mk.add_argument("--out", required=True)
    mk.add_argument("--answer", choices=["short", "open", "all"], default=None,
                    help="families by answer type: short, open or all (default: v1 short without --tasks, "
                    "compositional all)")
    mk.set_defaults(func=cmd_make_tasks)

    ci = sub.add_parser(
        "confidence-index",
        help="write a checkpoint's confidence index (its training descriptions, embedded) into the checkpoint folder",
    )
    ci.add_argument("--hypernet", required=True, help="checkpoint folder to add confidence.safetensors to")
    _add_suite(ci, "the training families the checkpoint was trained on")
    ci.add_argument("--max-families", type=int, default=0, help="as the checkpoint's train-sft --max-families")
    ci.set_defaults(func=cmd_confidence_index)

    rt = sub.add_parser(
        "train-router",
        help="train the library's task metric and write it, with the checkpoint's training descriptions, into the "
             "checkpoint folder (routing.safetensors)",
    )
    rt.add_argument("--hypernet", required=True, help="checkpoint folder to add routing.safetensors to")
    _add_suite(rt, "the training families the checkpoint was trained on")
    rt.add_argument("--max-families", type=int, default=0, help="as the checkpoint's train-sft --max-families")
    rt.add_argument("--metric-suites", default="compositional",
                    help="comma-separated suites whose training families the metric also learns from")
    rt.add_argument("--descriptions-per-family", type=int, default=16,
                    help="training descriptions drawn per family of a metric suite")
    rt.add_argument("--steps", type=int, default=RouterTrainConfig.steps)
    rt.add_argument("--lr", type=float, default=RouterTrainConfig.lr)
    rt.add_argument("--temperature", type=float, default=RouterTrainConfig.temperature)
    rt.add_argument("--seed", type=int, default=RouterTrainConfig.seed)
    rt.set_defaults(func=cmd_train_router)
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

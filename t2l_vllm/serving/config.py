"""ServeConfig: every setting of the serving side, declared once.

Each field carries its default, its environment variable and its help text.
`t2l-vllm serve` derives its flags from the fields (`add_arguments`), resolves
flags over environment over defaults (`from_args`), and hands the result to the
server process as environment (`to_env`), where the plugin reads it back
(`from_env`). Nothing else in the package spells a serving default.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from .. import envs
from ..adapter import DEFAULT_MAX_DESCRIPTION_CHARS
from ..confidence import DEFAULT_MIN_CONFIDENCE, DEFAULT_POLICY, POLICIES

NONE = "none"  # the value that turns an optional folder off


def _setting(default: Any, env: str, help: str, parse: Callable[[str], Any] = str, flag: str | None = None):
    return field(default=default, metadata={"env": env, "help": help, "parse": parse, "flag": flag})


def _path(raw: str) -> Path:
    return Path(raw).expanduser()


def _optional_path(raw: str) -> Path | None:
    return None if raw.lower() == NONE else Path(raw).expanduser()


def _bool(raw: str) -> bool:
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _paths(raw: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in raw.split(",") if p.strip())


@dataclass(frozen=True)
class ServeConfig:
    """How the server generates, keeps, registers and guards adapters.

    `None` for a folder or the device means "derive it": see `from_env`.
    """

    hypernet_dir: Path | None = _setting(
        None, "T2L_VLLM_HYPERNET", "hypernetwork checkpoint folder (default: the embedded one for the base model)",
        _path, flag="--hypernet",
    )
    adapter_dir: Path | None = _setting(
        None, "T2L_VLLM_ADAPTER_DIR", "durable adapter folder (default: <cache>/adapters)", _path,
    )
    fast_dir: Path | None = _setting(
        None, "T2L_VLLM_FAST_DIR",
        "tmpfs folder vLLM loads adapters from, 'none' to load from --adapter-dir "
        "(default: a private folder under /dev/shm for this adapter dir)", _optional_path,
    )
    max_engine_adapters: int = _setting(
        32, "T2L_VLLM_MAX_ENGINE_ADAPTERS",
        "adapters registered in vLLM at once; the least recently used idle ones are unloaded", int,
    )
    max_disk_adapters: int = _setting(
        1024, "T2L_VLLM_MAX_DISK_ADAPTERS", "adapters kept on disk; the least recently used idle ones are deleted", int,
    )
    max_description_chars: int = _setting(
        DEFAULT_MAX_DESCRIPTION_CHARS, "T2L_VLLM_MAX_DESCRIPTION_CHARS", "longest task_description accepted", int,
    )
    max_loras: int = _setting(
        8, "T2L_VLLM_MAX_LORAS", "distinct adapters in one running batch (vLLM's --max-loras)", int,
    )
    device: str | None = _setting(
        None, "T2L_VLLM_DEVICE", "where the hypernetwork runs (default: cuda when present, else cpu)",
        flag="--hypernet-device",
    )
    low_confidence_policy: str = _setting(
        DEFAULT_POLICY, "T2L_VLLM_LOW_CONFIDENCE_POLICY",
        "how a task_description whose confidence is below --min-confidence is served: 'adapter' (its "
        "adapter anyway), 'prompt' (the base model with the description as system message) or 'both'",
    )
    min_confidence: float = _setting(
        DEFAULT_MIN_CONFIDENCE, "T2L_VLLM_MIN_CONFIDENCE",
        "confidence (max cosine of the description to the hypernetwork's training descriptions) "
        "below which --low-confidence-policy applies", float,
    )
    max_pending_generations: int = _setting(
        64, "T2L_VLLM_MAX_PENDING_GENERATIONS",
        "hypernetwork jobs (new adapters, confidence scores) running or queued; a request that needs "
        "one more gets 429 with Retry-After. Requests for adapters already made never wait on these", int,
    )
    max_new_adapters_per_minute: int = _setting(
        0, "T2L_VLLM_MAX_NEW_ADAPTERS_PER_MINUTE",
        "new adapters one API key (or, without --api-key, the whole server) may create per minute; "
        "beyond it 429 with Retry-After (0: no limit)", int,
    )
    log_descriptions: bool = _setting(
        False, "T2L_VLLM_LOG_DESCRIPTIONS",
        "write each new adapter's task_description to the server log (user data: off by default; for debugging)",
        _bool,
    )
    public_paths: tuple[str, ...] = _setting(
        ("/health", "/ping", "/metrics"), "T2L_VLLM_PUBLIC_PATHS",
        "comma-separated routes answered without the API key when --api-key is set (health checks, Prometheus)",
        _paths,
    )

    def __post_init__(self) -> None:
        for name in ("max_engine_adapters", "max_loras", "max_description_chars", "max_pending_generations"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_disk_adapters < self.max_engine_adapters:
            raise ValueError(
                f"max_disk_adapters ({self.max_disk_adapters}) must be >= max_engine_adapters "
                f"({self.max_engine_adapters}): every registered adapter needs its files"
            )
        if self.max_new_adapters_per_minute < 0:
            raise ValueError(
                f"max_new_adapters_per_minute must be >= 0 (0: no limit), got {self.max_new_adapters_per_minute}"
            )
        if self.low_confidence_policy not in POLICIES:
            raise ValueError(
                f"low_confidence_policy must be one of {', '.join(POLICIES)}, got {self.low_confidence_policy!r}"
            )
        if not -1.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence is a cosine similarity in [-1, 1], got {self.min_confidence}")
        for p in self.public_paths:
            if not p.startswith("/"):
                raise ValueError(f"public path {p!r} must start with '/'")

    # ---- where values come from ------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "ServeConfig":
        """Defaults, then environment variables, then `overrides`; derived fields filled in.

        Unset `adapter_dir` and `device` are derived; `fast_dir` is derived unless
        it was set (an explicit None or "none" turns the tmpfs tier off).
        """
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = envs.get(f.metadata["env"], environ)
            if raw is not None:
                try:
                    values[f.name] = f.metadata["parse"](raw)
                except ValueError:
                    raise ValueError(f"environment variable {f.metadata['env']} has an invalid value {raw!r}") from None
        values.update(overrides)
        if values.get("adapter_dir") is None:
            values["adapter_dir"] = envs.cache_dir(environ) / "adapters"
        if "fast_dir" not in values:  # unset; an explicit None (from "none") turns the tier off
            values["fast_dir"] = default_fast_dir(values["adapter_dir"])
        if values.get("device") is None:
            import torch

            values["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        return cls(**values)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """One flag per field (`--max-engine-adapters`, ...); unset flags fall back to env, then default."""
        for f in dataclasses.fields(cls):
            default = ",".join(f.default) if isinstance(f.default, tuple) else f.default
            # A derived default (None) is described in the help text itself.
            shown = f"env {f.metadata['env']}" if default is None else f"default: {default}; env {f.metadata['env']}"
            boolean = isinstance(f.default, bool)  # --flag / --no-flag
            kind = {"action": argparse.BooleanOptionalAction} if boolean else {"type": f.metadata["parse"]}
            parser.add_argument(
                flag_of(f), dest=f.name, default=argparse.SUPPRESS, help=f"{f.metadata['help']} [{shown}]", **kind,
            )

    @classmethod
    def from_args(cls, args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> "ServeConfig":
        """Flags over environment over defaults (a flag not given is absent from `args`)."""
        given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
        return cls.from_env(environ, **given)

    def to_env(self) -> dict[str, str]:
        """The environment that makes `from_env` in the server process return this config."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                if f.name == "fast_dir":
                    out[f.metadata["env"]] = NONE
                continue
            if isinstance(value, tuple):
                value = ",".join(value)
            elif isinstance(value, Path):
                value = value.resolve()
            out[f.metadata["env"]] = str(value)
        return out


def flag_of(f: dataclasses.Field) -> str:
    return f.metadata["flag"] or "--" + f.name.replace("_", "-")


def default_fast_dir(durable: Path) -> Path | None:
    """The tmpfs tier's default: private to the durable folder, so two servers with
    different adapter folders never evict each other's fast copies. None without /dev/shm."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        return None
    tag = hashlib.sha256(str(Path(durable).resolve()).encode()).hexdigest()[:12]
    return shm / f"t2l_vllm-{os.getuid()}" / tag

"""Settings of the serving side (store bounds, folders, limits), validated once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import envs


@dataclass(frozen=True)
class ServeConfig:
    """How the server generates, keeps and registers adapters.

    adapter_dir: durable folder, one `<adapter_id>/` PEFT folder each.
    fast_dir: tmpfs folder vLLM loads from (a memory copy); None to load from adapter_dir.
    max_disk_adapters: adapters kept on disk; the least recently used are deleted.
    max_engine_adapters: adapters registered in vLLM at once; the least recently
        used idle ones are unloaded (vLLM's name map and the engine's copy).
    """

    hypernet_dir: Path | None = None
    adapter_dir: Path = Path("adapters")
    fast_dir: Path | None = None
    max_disk_adapters: int = 1024
    max_engine_adapters: int = 32
    max_description_chars: int = 4000
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.max_engine_adapters < 1:
            raise ValueError(f"max_engine_adapters must be >= 1, got {self.max_engine_adapters}")
        if self.max_disk_adapters < self.max_engine_adapters:
            raise ValueError(
                f"max_disk_adapters ({self.max_disk_adapters}) must be >= max_engine_adapters "
                f"({self.max_engine_adapters}): every registered adapter needs its files"
            )
        if self.max_description_chars < 1:
            raise ValueError(f"max_description_chars must be >= 1, got {self.max_description_chars}")

    @classmethod
    def from_env(cls) -> "ServeConfig":
        import torch

        hypernet = envs.hypernet_dir()
        adapter_dir = envs.adapter_dir()
        return cls(
            hypernet_dir=Path(hypernet) if hypernet else None,
            adapter_dir=adapter_dir,
            fast_dir=envs.fast_dir(adapter_dir),
            max_disk_adapters=envs.max_disk_adapters(),
            max_engine_adapters=envs.max_engine_adapters(),
            max_description_chars=envs.max_description_chars(),
            device=envs.device() or ("cuda" if torch.cuda.is_available() else "cpu"),
        )

"""Configuration of a hypernetwork and the adapters it emits.

Frozen dataclasses, validated on construction with messages that say what to
change. `HypernetConfig` round-trips through the checkpoint's `config.json`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from .target_spec import TargetSpec

FORMAT_VERSION = 1
VARIANTS = ("L", "M", "S")
ENCODER_KINDS = ("hf-mean", "hf-cls", "base-hidden")
# vLLM pads adapters up to one of these ranks (`max_lora_rank`).
VLLM_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


@dataclass(frozen=True)
class EncoderConfig:
    """Which model turns a task description into a vector.

    kind: "hf-mean" (mean-pooled encoder), "hf-cls" (CLS token) or "base-hidden"
        (mean-pooled last hidden state of the base LLM itself).
    source: "default" (the embedded all-MiniLM-L6-v2, or the base model for
        "base-hidden") or a local model folder.
    dim: size of the vector it produces.
    """

    kind: str = "hf-mean"
    source: str = "default"
    dim: int = 384
    max_tokens: int = 256

    def __post_init__(self) -> None:
        if self.kind not in ENCODER_KINDS:
            raise ValueError(f"encoder kind {self.kind!r} unknown; choose from {', '.join(ENCODER_KINDS)}")
        if not isinstance(self.source, str) or not self.source:
            raise ValueError("encoder source must be 'default' or a local folder path")
        if self.dim < 1:
            raise ValueError(f"encoder dim must be >= 1, got {self.dim}")
        if self.max_tokens < 8:
            raise ValueError(f"encoder max_tokens must be >= 8, got {self.max_tokens}")


@dataclass(frozen=True)
class HypernetConfig:
    """Architecture of a Text-to-LoRA hypernetwork and of the LoRA it emits.

    variant: "L" (head emits A and B at once), "M" (one head for A and B plus an
        A/B embedding) or "S" (one rank row at a time).
    rank, alpha, use_rslora: the emitted LoRA; scaling is alpha/sqrt(rank) with
        rsLoRA, alpha/rank without, exactly as PEFT and vLLM apply it.
    """

    target: TargetSpec
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    variant: str = "L"
    rank: int = 8
    alpha: float = 16.0
    use_rslora: bool = True
    task_emb_dim: int = 64
    pos_emb_dim: int = 32
    latent_dim: int = 128
    head_in_dim: int = 512
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant {self.variant!r} unknown; choose from {', '.join(VARIANTS)}")
        if self.rank not in VLLM_RANKS:
            raise ValueError(f"rank {self.rank} is not one vLLM serves; choose from {VLLM_RANKS}")
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")
        for name in ("task_emb_dim", "pos_emb_dim", "latent_dim", "head_in_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def scaling(self) -> float:
        return self.alpha / (self.rank**0.5 if self.use_rslora else self.rank)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["target"] = self.target.to_dict()
        d["format_version"] = FORMAT_VERSION
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "HypernetConfig":
        d = dict(d)
        version = d.pop("format_version", None)
        if version != FORMAT_VERSION:
            raise ValueError(
                f"checkpoint format version {version!r} is not supported (this t2l-vllm reads {FORMAT_VERSION})"
            )
        try:
            target = TargetSpec.from_dict(d.pop("target"))
            encoder = EncoderConfig(**d.pop("encoder"))
            return cls(target=target, encoder=encoder, **d)
        except (KeyError, TypeError) as e:
            raise ValueError(f"malformed hypernetwork config: {e}") from e

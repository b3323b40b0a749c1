"""How close a description is to what the hypernetwork was trained on.

A hypernetwork is reliable near its training descriptions and guesses far from
them: for a task unlike any it saw it emits the nearest training task's adapter.
The confidence of a description is its largest cosine similarity to the
training descriptions, in the encoder's space the hypernetwork itself reads:

    conf(d) = max_i  <e(d), e_i> / (|e(d)| |e_i|)      in [-1, 1]

The checkpoint carries the e_i (`confidence.safetensors`: [N, enc_dim], L2
normalised), so the score needs no task suite at serving time, and costs one
[N, d] x [d] product (N is a few hundred) after the encoder pass that
generation does anyway.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

CONFIDENCE_FILE = "confidence.safetensors"
_KEY = "train_embeddings"

# How a description below the threshold is served, by the server and by `t2l-vllm eval --modes policy`:
#   adapter  its adapter anyway; prompt  the base model, description as system message;
#   both     the adapter and the description as system message.
POLICIES = ("adapter", "prompt", "both")
DEFAULT_POLICY = "prompt"
DEFAULT_MIN_CONFIDENCE = 0.45


def route(confidence: float | None, policy: str, min_confidence: float) -> str:
    """The path for one description: the policy below the threshold, else (and when unknown) the adapter."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    return policy if confidence is not None and confidence < min_confidence else "adapter"


@dataclass(frozen=True)
class ConfidenceIndex:
    """L2-normalised embeddings of the training descriptions: [N, dim] float32."""

    embeddings: torch.Tensor

    def __post_init__(self) -> None:
        if self.embeddings.ndim != 2 or self.embeddings.shape[0] < 1:
            raise ValueError(f"a confidence index needs [N >= 1, dim] embeddings, got {tuple(self.embeddings.shape)}")

    @classmethod
    def from_embeddings(cls, emb: torch.Tensor) -> "ConfidenceIndex":
        emb = emb.detach().to("cpu", torch.float32)
        return cls(emb / emb.norm(dim=-1, keepdim=True).clamp_min(1e-12))

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def score(self, emb: torch.Tensor) -> list[float]:
        """emb: [B, dim] description embeddings -> B confidences (max cosine), rounded to 4 places.

        Rounded so that the score of a description is the same number on every
        run and machine (float noise stays below the fourth decimal).
        """
        if emb.ndim != 2 or emb.shape[1] != self.dim:
            raise ValueError(f"expected [B, {self.dim}] embeddings, got {tuple(emb.shape)}")
        q = emb.detach().to("cpu", torch.float32)
        q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        best = (q @ self.embeddings.T).max(dim=-1).values  # [B]
        return [round(float(v), 4) for v in best]

    def save(self, ckpt_dir: str | Path) -> Path:
        path = Path(ckpt_dir) / CONFIDENCE_FILE
        save_file({_KEY: self.embeddings.to(torch.float16).contiguous()}, str(path), metadata={"format": "pt"})
        os.chmod(path, 0o644)  # shipped and read by servers under other users, like the weights
        return path


def load_confidence(ckpt_dir: str | Path) -> ConfidenceIndex | None:
    """The checkpoint's index, or None when it has none (confidence is then unknown)."""
    path = Path(ckpt_dir) / CONFIDENCE_FILE
    if not path.is_file():
        return None
    try:
        emb = load_file(str(path))[_KEY]
    except (SafetensorError, OSError, KeyError, RuntimeError) as e:
        raise ValueError(f"corrupt confidence index {path}: {e}") from e
    return ConfidenceIndex.from_embeddings(emb)


def build_confidence_index(encoder, descriptions: list[str]) -> ConfidenceIndex:
    """Embed the training descriptions with the hypernetwork's own encoder."""
    if not descriptions:
        raise ValueError("a confidence index needs at least one training description")
    return ConfidenceIndex.from_embeddings(encoder.encode(list(descriptions)))

"""Which adapter should serve a description: a task metric, and the tasks the hypernetwork knows.

The library (serving/library.py) must send a new wording of a library task to
that task's adapter, and a wording of any other task to the hypernetwork. In
the raw encoder space both fail at once: two wordings of one task written by
different people sit at cosine 0.5-0.8, while a *different* task's wording
sits just as close ("translate into French" / "... into Spanish"). Two parts
fix most of it (benchmarks/library_eval.py, README):

1. A task metric, learned on the task suites: a residual linear map of the
   encoder's L2-normalised vectors,

       m(e) = normalise(e + e W)          e: [B, d], W: [d, d] (zero at init)

   trained with a supervised contrastive loss (descriptions of one family are
   positives, every other description in the batch a negative), batches
   putting a family beside its mirror (smaller / larger) so that the loss
   must separate them. The raw space is the starting point (W = 0), so the
   map only moves what the suite shows.
2. The tasks the hypernetwork knows: its training descriptions, with their
   texts (for the lexical check) and vectors. A library adapter serves a
   description only if its best description is at least as close, less a
   margin, as the nearest training description: when a wording is nearer a
   task the hypernetwork was trained on, the hypernetwork serves it.

`routing.safetensors` in the checkpoint folder holds both (`t2l-vllm
train-router`). Pure torch + safetensors; no side effects.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

ROUTING_FILE = "routing.safetensors"
_W, _KNOWN = "metric_weight", "known_embeddings"
# In the task metric, a library match needs cosine >= DEFAULT_ROUTED_THRESHOLD to a library
# description and at least (nearest training description - DEFAULT_ROUTED_MARGIN). Chosen with
# benchmarks/library_eval.py on the shipped router (README; fitted on that eval): the most
# library hits with no misroute there and at the next margin up (22 of 31 held-out wordings).
DEFAULT_ROUTED_THRESHOLD = 0.50
DEFAULT_ROUTED_MARGIN = 0.02


@dataclass(frozen=True)
class RouterTrainConfig:
    """Training of the task metric (supervised contrastive, Khosla et al. 2020)."""

    steps: int = 3000
    lr: float = 1e-3
    temperature: float = 0.1  # the loss's tau: cosine / tau are the logits
    families_per_batch: int = 96  # mirrors/siblings added beside each drawn family count towards it
    per_family_in_batch: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.families_per_batch < 2 or self.per_family_in_batch < 2:
            raise ValueError("router training needs steps >= 1, families_per_batch >= 2 and "
                             f"per_family_in_batch >= 2, got {self.steps}, {self.families_per_batch}, "
                             f"{self.per_family_in_batch}")
        if not (self.lr > 0 and self.temperature > 0):
            raise ValueError(f"lr and temperature must be > 0, got {self.lr} and {self.temperature}")


@dataclass(frozen=True)
class Router:
    """weight: [d, d] float32, the metric's residual map. known: the hypernetwork's training
    descriptions (texts) and their raw L2-normalised encoder vectors [N, d] float32."""

    weight: torch.Tensor
    known_texts: tuple[str, ...]
    known_embeddings: torch.Tensor

    def __post_init__(self) -> None:
        d = self.weight.shape[0] if self.weight.ndim == 2 else -1
        if self.weight.ndim != 2 or self.weight.shape[1] != d:
            raise ValueError(f"a router's metric weight is [d, d], got {tuple(self.weight.shape)}")
        if self.known_embeddings.ndim != 2 or self.known_embeddings.shape[1] != d:
            raise ValueError(f"known embeddings must be [N, {d}], got {tuple(self.known_embeddings.shape)}")
        if len(self.known_texts) != self.known_embeddings.shape[0]:
            raise ValueError(f"{len(self.known_texts)} known texts for {self.known_embeddings.shape[0]} embeddings")

    @property
    def dim(self) -> int:
        return int(self.weight.shape[0])

    def project(self, emb: torch.Tensor) -> torch.Tensor:
        """[B, d] or [d] encoder vectors -> the same shape in the task metric, L2-normalised."""
        e = F.normalize(emb.detach().to("cpu", torch.float32), dim=-1)
        return F.normalize(e + e @ self.weight, dim=-1)

    def known_projected(self) -> torch.Tensor:
        """[N, d]: the training descriptions in the task metric."""
        return self.project(self.known_embeddings)

    def save(self, ckpt_dir: str | Path, metadata: dict | None = None) -> Path:
        path = Path(ckpt_dir) / ROUTING_FILE
        tmp = path.with_suffix(".tmp")
        meta = {"format": "pt", "known_texts": json.dumps(list(self.known_texts)),
                "train": json.dumps(metadata or {})}
        save_file({_W: self.weight.to(torch.float32).contiguous(),
                   _KNOWN: self.known_embeddings.to(torch.float16).contiguous()}, str(tmp), metadata=meta)
        os.chmod(tmp, 0o644)  # shipped and read by servers under other users, like the weights
        os.replace(tmp, path)
        return path


def load_router(ckpt_dir: str | Path) -> Router | None:
    """The checkpoint's router, or None when it has none (the library then uses raw cosine)."""
    path = Path(ckpt_dir) / ROUTING_FILE
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), "pt") as f:
            texts = json.loads((f.metadata() or {})["known_texts"])
            weight, known = f.get_tensor(_W), f.get_tensor(_KNOWN)
    except (SafetensorError, OSError, KeyError, RuntimeError, json.JSONDecodeError) as e:
        raise ValueError(f"corrupt router {path}: {e}; rebuild it with `t2l-vllm train-router`") from e
    return Router(weight.to(torch.float32), tuple(texts), F.normalize(known.to(torch.float32), dim=-1))


def train_metric(embeddings: torch.Tensor, families: list[str], pairs: dict[str, tuple[str, ...]],
                 config: RouterTrainConfig, log=None) -> torch.Tensor:
    """The metric's W [d, d] from encoder vectors [N, d] of descriptions labelled by family.

    pairs: family -> families a batch should hold beside it (its mirror, siblings).
    log(step, loss), when given, is called every 500 steps and at the end.
    """
    if embeddings.ndim != 2 or embeddings.shape[0] != len(families):
        raise ValueError(f"need [N, d] embeddings for N = {len(families)} labels, got {tuple(embeddings.shape)}")
    names = sorted(set(families))
    if len(names) < 2:
        raise ValueError("the task metric needs descriptions of at least two families")
    fid = {n: i for i, n in enumerate(names)}
    labels = torch.tensor([fid[f] for f in families])
    rows = [(labels == i).nonzero().flatten() for i in range(len(names))]
    x = F.normalize(embeddings.detach().to(torch.float32), dim=-1)
    gen = torch.Generator().manual_seed(config.seed)
    rng = random.Random(config.seed)
    w = torch.zeros(x.shape[1], x.shape[1], requires_grad=True)
    opt = torch.optim.AdamW([w], lr=config.lr, weight_decay=0.0)
    want = min(config.families_per_batch, len(names))
    for step in range(1, config.steps + 1):
        chosen: dict[str, None] = {}  # ordered: the batch is the same for the same seed
        while len(chosen) < want:
            name = names[rng.randrange(len(names))]
            chosen[name] = None
            for other in pairs.get(name, ()):
                if other in fid:
                    chosen[other] = None
        idx = torch.cat([rows[fid[n]][torch.randperm(len(rows[fid[n]]), generator=gen)[:config.per_family_in_batch]]
                         for n in chosen])
        z = F.normalize(x[idx] + x[idx] @ w, dim=-1)  # [b, d]
        lab = labels[idx]
        eye = torch.eye(len(idx), dtype=torch.bool)
        logits = (z @ z.T / config.temperature).masked_fill(eye, float("-inf"))  # [b, b], no self-pairs
        pos = (lab[:, None] == lab[None, :]) & ~eye
        logp = logits.log_softmax(dim=1).masked_fill(eye, 0.0)
        has = pos.any(1)  # a family with one description in the batch has no positive
        loss = -((logp * pos).sum(1)[has] / pos.sum(1)[has]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if log is not None and (step % 500 == 0 or step == config.steps):
            log(step, float(loss.detach()))
    return w.detach()


def best_match(query: torch.Tensor, text: str, rows: torch.Tensor, texts: list[str] | tuple[str, ...],
               conflict) -> tuple[int, float] | None:
    """The row of `rows` [N, d] nearest `query` [d] (both in one space, normalised) whose text has
    no lexical conflict with `text`: (row, cosine), or None."""
    if rows.shape[0] == 0:
        return None
    sims = rows @ query  # [N]
    for i in torch.argsort(sims, descending=True).tolist():
        if conflict(text, texts[i]) is None:
            return i, float(sims[i])
    return None

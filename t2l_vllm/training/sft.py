"""T2L SFT: train the hypernetwork end to end through the frozen base model.

Each step samples `tasks_per_batch` distinct training families with one
example each and one training description per example, generates one adapter
per example in a single batched hypernetwork forward, applies them with hooks
(functional_lora) and minimises the completion-only cross-entropy (label
smoothing) plus an L2 penalty on the generated factors. Only the
hypernetwork learns; the description encoder and base model are frozen, so
each description's embedding is computed once up front.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from t2l_vllm.checkpoint import load_hypernet, save_hypernet
from t2l_vllm.config import HypernetConfig
from t2l_vllm.hypernet import HyperLoRA, LoraFactors
from t2l_vllm.tasks.splits import train_descriptions, training_families
from t2l_vllm.training import loop
from t2l_vllm.training.data import collate, pad_id, sample_step, tokenize_example
from t2l_vllm.training.functional_lora import lora_applied, target_modules

CHECKPOINT_DIR = "checkpoint"


@dataclass(frozen=True)
class SFTConfig:
    """Upstream's recipe (GUIDE section 5) with a peak learning rate for short CPU runs."""

    steps: int = 2000
    tasks_per_batch: int = 8
    lr: float = 2.5e-5
    warmup_steps: int = 20
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    l2_coef: float = 1e-3
    max_tokens: int = 128
    seed: int = 0
    save_every: int = 50
    style: str = "t2l"
    init_from: str = ""

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.tasks_per_batch < 1:
            raise ValueError(f"tasks_per_batch must be >= 1, got {self.tasks_per_batch}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.save_every < 1:
            raise ValueError(f"save_every must be >= 1, got {self.save_every}")
        if self.style not in ("t2l", "t2l+desc"):
            raise ValueError(f"style must be 't2l' or 't2l+desc', got {self.style!r}")


def l2_penalty(lora: LoraFactors) -> torch.Tensor:
    """Mean square of every generated factor entry (A and B, all modules and layers)."""
    terms = [t.pow(2).mean() for a, b in lora.factors.values() for t in (a, b)]
    return torch.stack(terms).mean()


def train_sft(
    hypernet_config: HypernetConfig,
    base_model_dir: str | Path,
    out_dir: str | Path,
    config: SFTConfig,
    progress: loop.Progress | None = None,
) -> Path:
    """Run (or resume) SFT; returns the checkpoint folder `out_dir/checkpoint`."""
    out_dir, base_model_dir = Path(out_dir), Path(base_model_dir)
    state = loop.start_run(out_dir, config)
    model, tokenizer = loop.load_frozen_base(base_model_dir)
    modules = target_modules(model, hypernet_config.target)
    if config.init_from:
        net = load_hypernet(config.init_from)
        if net.config != hypernet_config:
            raise ValueError(f"--init-from {config.init_from} has a different hypernetwork config")
    else:
        net = HyperLoRA.initialise(hypernet_config, seed=config.seed)
    net.train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    step = 0
    if state is not None:
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]

    families = training_families()
    emb = loop.description_embeddings(
        hypernet_config.encoder, base_model_dir, [d for fam in families for d in train_descriptions(fam)]
    )
    pad = pad_id(tokenizer)

    while step < config.steps:
        t0 = time.perf_counter()
        examples = sample_step(families, config.tasks_per_batch, config.seed, step)
        batch = collate([tokenize_example(tokenizer, config.style, ex, config.max_tokens) for ex in examples], pad)
        lr = loop.lr_at(step, config.steps, config.lr, config.warmup_steps)
        loop.set_lr(optimizer, lr)
        lora = net(torch.stack([emb[ex["description"]] for ex in examples]))
        with lora_applied(modules, lora):
            ce = loop.completion_loss(model, batch, config.label_smoothing)
        l2 = l2_penalty(lora)
        loss = ce + config.l2_coef * l2
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        step += 1
        record = {
            "step": step,
            "loss": round(loss.item(), 5),
            "ce": round(ce.item(), 5),
            "l2": round(l2.item(), 7),
            "grad_norm": round(float(grad_norm), 4),
            "lr": lr,
            "sec": round(time.perf_counter() - t0, 3),
        }
        loop.log_record(out_dir, record)
        if step % config.save_every == 0 or step == config.steps:
            save_hypernet(net, out_dir / CHECKPOINT_DIR, metadata={"trainer": "sft", "step": step})
            loop.save_state(out_dir, {"step": step, "model": net.state_dict(), "optimizer": optimizer.state_dict()})
        if progress is not None:
            progress(step, config.steps, record)
    return out_dir / CHECKPOINT_DIR

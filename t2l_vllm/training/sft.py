"""T2L SFT: train the hypernetwork end to end through the frozen base model.

Each step samples `tasks_per_batch` distinct training families of the chosen
suite (tasks/suites.py; optionally a nested subset, optionally with siblings
paired in one step) with one example each and one training description per
example, generates one adapter per example in a single batched hypernetwork
forward, applies them with hooks (functional_lora) and minimises the
completion-only cross-entropy (label smoothing) plus an L2 penalty on the
generated factors. Only the hypernetwork learns; the description encoder and
base model are frozen, so each description's embedding is computed once up
front.

With `distill_weight > 0` the same step's examples (description and input,
not the target) also pay context distillation (training/distill.py): KL from
the frozen base model prompted with the description to the adapted model
prompted without it, over the teacher's own greedy continuation:

    loss = ce + distill_weight * kl + l2_coef * l2     (distill_only: no ce term)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from t2l_vllm.checkpoint import load_hypernet, save_hypernet
from t2l_vllm.confidence import ConfidenceIndex
from t2l_vllm.config import HypernetConfig
from t2l_vllm.hypernet import HyperLoRA, LoraFactors
from t2l_vllm.tasks import ANSWER_SELECTORS
from t2l_vllm.tasks.suites import SUITES, get_suite, select_training_families
from t2l_vllm.training import loop
from t2l_vllm.training.data import collate, pad_id, sample_step, tokenize_example
from t2l_vllm.training.distill import TeacherCache, distill_batches, distill_loss
from t2l_vllm.training.functional_lora import lora_applied, target_modules

CHECKPOINT_DIR = "checkpoint"
# The teacher's continuations of a distillation run, kept so that a resumed run reuses them.
TEACHER_CACHE_NAME = "teacher_continuations.jsonl"


@dataclass(frozen=True)
class SFTConfig:
    """Upstream's recipe (README, "Train and evaluate": SFT recipe) with a peak learning rate for short CPU runs."""

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

    # Which training families: "short" (the original suite, what the shipped checkpoint saw), "open" or "all".
    answer: str = "short"
    # Which task suite (tasks/suites.py): "v1", the original 87 families, or "compositional".
    suite: str = "v1"
    # Train on the first N families of the suite's fixed nested order (tasks/suites.py
    # nested_subset: every group early, 25 within 50 within 100 ...); 0: all of them.
    max_families: int = 0
    # Put a sibling (the mirror operation, else a group-mate in the same format) of each
    # sampled family into the same step (training/data.py sample_step).
    sibling_batches: bool = False

    # Context distillation (training/distill.py): weight of the KL term (0: off, the plain recipe),
    # the teacher's continuation length in tokens, and whether the KL replaces the cross-entropy.
    distill_weight: float = 0.0
    distill_tokens: int = 48
    distill_only: bool = False

    def __post_init__(self) -> None:
        if self.answer not in ANSWER_SELECTORS:
            raise ValueError(f"answer must be one of {', '.join(ANSWER_SELECTORS)}, got {self.answer!r}")
        if self.suite not in SUITES:
            raise ValueError(f"suite must be one of {', '.join(SUITES)}, got {self.suite!r}")
        if self.max_families < 0:
            raise ValueError(f"max_families must be >= 0 (0: all families), got {self.max_families}")
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
        if not (math.isfinite(self.distill_weight) and self.distill_weight >= 0):
            raise ValueError(f"distill_weight must be a finite number >= 0, got {self.distill_weight}")
        if self.distill_tokens < 1:
            raise ValueError(f"distill_tokens must be >= 1, got {self.distill_tokens}")
        if self.distill_weight > 0 and self.distill_tokens >= self.max_tokens:
            raise ValueError(f"distill_tokens ({self.distill_tokens}) must be < max_tokens ({self.max_tokens})")
        if self.distill_only and not self.distill_weight > 0:
            raise ValueError("distill_only needs distill_weight > 0 (otherwise there is no loss)")


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
    loop.start_run(out_dir, config)
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
    suite = get_suite(config.suite)
    families = select_training_families(suite, config.answer, config.max_families)
    emb = loop.description_embeddings(
        hypernet_config.encoder, base_model_dir, [d for fam in families for d in suite.train_descriptions(fam)]
    )
    siblings = suite.siblings(families) if config.sibling_batches else None
    pad = pad_id(tokenizer)
    # Shipped with the checkpoint: how close a served description is to these.
    confidence = ConfidenceIndex.from_embeddings(torch.stack(list(emb.values())))
    teacher = None
    if config.distill_weight > 0:
        teacher = TeacherCache(model, tokenizer, config.distill_tokens, out_dir / TEACHER_CACHE_NAME)

    def step_loss(step: int) -> tuple[torch.Tensor, dict]:
        examples = sample_step(families, config.tasks_per_batch, config.seed, step, suite.train_descriptions, siblings)
        # The teacher's continuations first: generation runs before the step's graph exists.
        ys = teacher.continuations(examples) if teacher is not None else None
        lora = net(torch.stack([emb[ex["description"]] for ex in examples]))
        terms, logged = [], {}
        if not config.distill_only:
            batch = collate([tokenize_example(tokenizer, config.style, ex, config.max_tokens) for ex in examples], pad)
            with lora_applied(modules, lora):
                ce = loop.completion_loss(model, batch, config.label_smoothing)
            terms.append(ce)
            logged["ce"] = round(ce.item(), 5)
        if ys is not None:
            t_batch, s_batch = distill_batches(tokenizer, examples, ys, config.style, config.max_tokens, pad)
            kl = distill_loss(model, modules, lora, t_batch, s_batch)
            terms.append(config.distill_weight * kl)
            logged["kl"] = round(kl.item(), 5)
        l2 = l2_penalty(lora)
        loss = sum(terms[1:], terms[0]) + config.l2_coef * l2
        return loss, {"loss": round(loss.item(), 5), **logged, "l2": round(l2.item(), 7)}

    def save(step: int) -> dict:
        save_hypernet(net, out_dir / CHECKPOINT_DIR, metadata={"trainer": "sft", "step": step}, confidence=confidence)
        return net.state_dict()

    loop.run_steps(
        optimizer, step_loss, steps=config.steps, lr=config.lr, warmup_steps=config.warmup_steps,
        out_dir=out_dir, save_every=config.save_every, save=save, load=net.load_state_dict,
        clip_grad_norm=1.0, progress=progress,
    )
    return out_dir / CHECKPOINT_DIR

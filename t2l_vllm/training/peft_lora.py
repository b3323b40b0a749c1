"""Baselines trained with PEFT on the frozen base model.

- Oracles: one LoRA per task family, trained on that family's examples only
  (the "adapter library" T2L reconstruction learns from, and the per-task
  ceiling in the results table). Resumable per family: a finished family's
  folder is never retrained.
- Multi-task: one LoRA on all training families at once (the paper's strongest
  simple baseline), batches sampled exactly like SFT's. Like the paper's
  multi-task LoRA, which sees each benchmark's instructions in its prompt, it
  reads the task description as the system message: inputs here carry no
  instructions, so without it the LoRA could not tell the tasks apart.
  Resumable per step.

Both emit plain PEFT folders with the hypernetwork's LoRA shape (rank, alpha,
rsLoRA, target modules), which vLLM and `t2l-vllm eval` load directly.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from t2l_vllm.config import HypernetConfig
from t2l_vllm.peft_format import WEIGHTS_FILE, lora_kwargs
from t2l_vllm.prompts import PROMPT_STYLES
from t2l_vllm.tasks.families import TaskFamily
from t2l_vllm.tasks import ANSWER_SELECTORS
from t2l_vllm.tasks.splits import family_seed
from t2l_vllm.tasks.suites import SUITES, get_suite
from t2l_vllm.training import loop
from t2l_vllm.training.data import collate, pad_id, sample_step, tokenize_example


def peft_lora_config(hypernet_config: HypernetConfig):
    """The LoRA shape T2L emits, as a PEFT config."""
    from peft import LoraConfig

    c = hypernet_config
    return LoraConfig(**lora_kwargs(c.rank, c.alpha, c.use_rslora, list(c.target.module_names)))


@dataclass(frozen=True)
class OracleConfig:
    steps: int = 60
    batch_size: int = 8
    lr: float = 1e-3
    warmup_steps: int = 5
    max_tokens: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


@dataclass(frozen=True)
class MultitaskConfig:
    steps: int = 600
    tasks_per_batch: int = 8
    lr: float = 5e-4
    warmup_steps: int = 20
    max_tokens: int = 128
    seed: int = 0
    save_every: int = 50
    style: str = "base+desc"

    # Which training families: "short" (the original suite, what the shipped checkpoint saw), "open" or "all".
    answer: str = "short"
    # Which task suite (tasks/suites.py): "v1", the original 87 families, or "compositional".
    suite: str = "v1"

    def __post_init__(self) -> None:
        if self.answer not in ANSWER_SELECTORS:
            raise ValueError(f"answer must be one of {', '.join(ANSWER_SELECTORS)}, got {self.answer!r}")
        if self.suite not in SUITES:
            raise ValueError(f"suite must be one of {', '.join(SUITES)}, got {self.suite!r}")
        if self.style not in PROMPT_STYLES:
            raise ValueError(f"style must be one of {PROMPT_STYLES}, got {self.style!r}")
        if self.steps < 1 or self.tasks_per_batch < 1 or self.save_every < 1:
            raise ValueError("steps, tasks_per_batch and save_every must be >= 1")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


def _family_batch(fam: TaskFamily, rng: random.Random, n: int) -> list[dict]:
    # The t2l prompt style ignores the description: an oracle knows its one task.
    return [
        dict(zip(("input", "target"), fam.generate(rng)), task=fam.name, description=fam.descriptions[0])
        for _ in range(n)
    ]


def train_oracles(
    hypernet_config: HypernetConfig,
    base_model_dir: str | Path,
    out_dir: str | Path,
    families: list[TaskFamily],
    config: OracleConfig,
    progress: loop.Progress | None = None,
) -> dict[str, Path]:
    """One PEFT LoRA per family in `out_dir/<family>/`; returns family -> folder."""
    from peft import get_peft_model

    out_dir, base_model_dir = Path(out_dir), Path(base_model_dir)
    loop.start_run(out_dir, config)
    model, tokenizer = loop.load_frozen_base(base_model_dir)
    pad = pad_id(tokenizer)
    done = {}
    for i, fam in enumerate(families):
        final = out_dir / fam.name
        if (final / WEIGHTS_FILE).is_file():
            done[fam.name] = final
            continue
        t0 = time.perf_counter()
        # Every oracle starts from the same LoRA init (as upstream trains its library with
        # one fixed seed): A barely moves in training, so the library's delta-Ws share
        # their row spaces and reconstruction has structure to learn. With a different
        # random A per task they share little, and reconstruction from a first such
        # library stayed at the L1 of predicting zero.
        torch.manual_seed(config.seed)
        peft_model = get_peft_model(model, peft_lora_config(hypernet_config))
        params = [p for p in peft_model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
        rng = random.Random(family_seed(config.seed, f"oracle-data-{fam.name}"))

        def step_loss(step: int) -> tuple[torch.Tensor, dict]:
            rows = [tokenize_example(tokenizer, "t2l", ex, config.max_tokens) for ex in _family_batch(fam, rng, config.batch_size)]
            loss = loop.completion_loss(peft_model.get_base_model(), collate(rows, pad))
            return loss, {"loss": loss.item()}

        # No per-step files: a family is short, and its folder is written only when it is done.
        records = loop.run_steps(optimizer, step_loss, steps=config.steps, lr=config.lr, warmup_steps=config.warmup_steps)
        losses = [r["loss"] for r in records]
        tail = losses[-max(1, len(losses) // 4) :]
        tmp = Path(tempfile.mkdtemp(prefix=f".{fam.name}.", dir=out_dir))
        peft_model.save_pretrained(str(tmp))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        model = peft_model.unload()  # the base model without LoRA layers, for the next family
        record = {
            "task": fam.name,
            "first_loss": round(losses[0], 4),
            "last_loss": round(sum(tail) / len(tail), 4),
            "sec": round(time.perf_counter() - t0, 1),
        }
        loop.log_record(out_dir, record)
        done[fam.name] = final
        if progress is not None:
            progress(i + 1, len(families), record)
    return done


def train_multitask(
    hypernet_config: HypernetConfig,
    base_model_dir: str | Path,
    out_dir: str | Path,
    config: MultitaskConfig,
    progress: loop.Progress | None = None,
) -> Path:
    """One PEFT LoRA on all training families; returns its folder `out_dir/adapter`."""
    from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    out_dir, base_model_dir = Path(out_dir), Path(base_model_dir)
    loop.start_run(out_dir, config)
    model, tokenizer = loop.load_frozen_base(base_model_dir)
    torch.manual_seed(config.seed)
    peft_model = get_peft_model(model, peft_lora_config(hypernet_config))
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    suite = get_suite(config.suite)
    families = suite.training_families(config.answer)
    pad = pad_id(tokenizer)

    def step_loss(step: int) -> tuple[torch.Tensor, dict]:
        examples = sample_step(families, config.tasks_per_batch, config.seed, step, suite.train_descriptions)
        rows = [tokenize_example(tokenizer, config.style, ex, config.max_tokens) for ex in examples]
        loss = loop.completion_loss(peft_model.get_base_model(), collate(rows, pad))
        return loss, {"loss": round(loss.item(), 5)}

    def save(step: int) -> dict:
        peft_model.save_pretrained(str(out_dir / "adapter"))
        return get_peft_model_state_dict(peft_model)

    loop.run_steps(
        optimizer, step_loss, steps=config.steps, lr=config.lr, warmup_steps=config.warmup_steps,
        out_dir=out_dir, save_every=config.save_every, save=save,
        load=lambda weights: set_peft_model_state_dict(peft_model, weights), progress=progress,
    )
    return out_dir / "adapter"

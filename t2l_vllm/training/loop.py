"""Plumbing every trainer shares: the loss, learning-rate schedule, resume state, log and step loop.

A run folder holds
    run_config.json   the trainer's config; a resumed run must match it
    train_state.pt    step, trainable weights, optimizer state (written atomically)
    log.jsonl         one line per logged step
so killing a run at any point and starting the same command again continues
from the last saved step with the same batches (batches depend on (seed, step)).
A trainer says how to compute one step's loss and how to save and load its
weights; `run_steps` does everything else.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Callable

import torch
from torch.nn import functional as F

from t2l_vllm.training.data import IGNORE_INDEX, Batch

STATE_NAME = "train_state.pt"
RUN_CONFIG_NAME = "run_config.json"
LOG_NAME = "log.jsonl"

# progress(step, total_steps, record) is called after every step; the CLI draws a bar with it.
Progress = Callable[[int, int, dict], None]
# step_loss(step) -> (loss, log fields) for 0-based `step`; its batch must depend on (seed, step) only.
StepLoss = Callable[[int], tuple[torch.Tensor, dict]]


def completion_loss(model, batch: Batch, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy over answer tokens only.

    The LM head runs only at positions whose next token is labelled, so the
    prompt (most of every sequence) costs no vocabulary projection.
    """
    hidden = model.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
    targets = batch.labels[:, 1:]  # [B, T-1]: position t predicts token t+1
    keep = targets != IGNORE_INDEX
    if not keep.any():
        raise ValueError("batch has no answer tokens to train on")
    logits = model.lm_head(hidden[:, :-1][keep]).float()  # [n_answer_tokens, vocab]
    return F.cross_entropy(logits, targets[keep], label_smoothing=label_smoothing)


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warmup to `peak`, then cosine decay to 10% of it at `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def description_embeddings(encoder_config, base_model_dir: Path, descriptions) -> dict[str, torch.Tensor]:
    """description -> [enc_dim] embedding, each computed once (the encoder is frozen in training)."""
    from t2l_vllm.encoders import load_encoder

    encoder = load_encoder(encoder_config, base_model_dir)
    texts = sorted(set(descriptions))
    return dict(zip(texts, encoder.encode(texts)))


def start_run(out_dir: Path, config: Any) -> None:
    """Create the run folder or check it belongs to `config` (before any model is loaded)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = asdict(config)
    cfg_path = out_dir / RUN_CONFIG_NAME
    if cfg_path.is_file():
        saved = json.loads(cfg_path.read_text())
        # A field added to the config since the run started, left at its default,
        # reproduces the older behaviour: the run may resume (and records it).
        added = {f.name: wanted[f.name] for f in fields(config) if f.name not in saved and wanted[f.name] == f.default}
        if added:
            saved |= added
            cfg_path.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
        if saved != wanted:
            diff = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
            raise ValueError(
                f"{out_dir} holds a run with a different config (differs in {', '.join(diff)}); "
                "use another --out or the same settings to resume"
            )
    else:
        cfg_path.write_text(json.dumps(wanted, indent=2, sort_keys=True) + "\n")


def run_steps(
    optimizer: torch.optim.Optimizer,
    step_loss: StepLoss,
    *,
    steps: int,
    lr: float,
    warmup_steps: int,
    out_dir: Path | None = None,
    save_every: int = 1,
    save: Callable[[int], dict] | None = None,
    load: Callable[[dict], None] | None = None,
    clip_grad_norm: float | None = None,
    progress: Progress | None = None,
) -> list[dict]:
    """Train from the last saved step (or 0) up to `steps`; returns this call's log records.

    Each step: learning rate `lr_at(step, steps, lr, warmup_steps)`, loss from
    `step_loss`, zero_grad, backward, optional clipping, optimizer step; then the
    record {"step", <step_loss's fields>, ["grad_norm"], "lr", "sec"} is logged.

    Args:
        optimizer: over the trainable weights.
        step_loss: step -> (loss, log fields).
        out_dir: the run folder (made by `start_run`): resume from its train_state.pt,
            append to its log.jsonl, save every `save_every` steps and after the last.
            None: keep nothing on disk (the caller saves the result).
        save: with `out_dir`: writes the trainer's output for a step (checkpoint or
            adapter folder) and returns the trainable weights train_state.pt keeps.
        load: with `out_dir`: restores weights `save` returned, on resume.
        clip_grad_norm: clip the gradient to this total norm and log it as "grad_norm".
        progress: called after every step with (step, steps, record).
    """
    if out_dir is not None and (save is None or load is None):
        raise ValueError("run_steps with out_dir needs save and load")
    step = 0 if out_dir is None else _resume(out_dir, optimizer, load)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    records = []
    while step < steps:
        t0 = time.perf_counter()
        step_lr = lr_at(step, steps, lr, warmup_steps)
        set_lr(optimizer, step_lr)
        loss, fields = step_loss(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad_norm is not None:
            fields["grad_norm"] = round(float(torch.nn.utils.clip_grad_norm_(params, clip_grad_norm)), 4)
        optimizer.step()
        step += 1
        record = {"step": step, **fields, "lr": step_lr, "sec": round(time.perf_counter() - t0, 3)}
        records.append(record)
        if out_dir is not None:
            log_record(out_dir, record)
            if step % save_every == 0 or step == steps:
                _save_state(out_dir, {"step": step, "model": save(step), "optimizer": optimizer.state_dict()})
        if progress is not None:
            progress(step, steps, record)
    return records


def _resume(out_dir: Path, optimizer: torch.optim.Optimizer, load: Callable[[dict], None]) -> int:
    """The last saved step (0: none), with weights and optimizer state restored."""
    state_path = out_dir / STATE_NAME
    step = 0
    if state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        load(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
    # Steps logged after the last save are redone now: drop their old lines.
    log = out_dir / LOG_NAME
    if log.is_file():
        lines = log.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if json.loads(line).get("step", 0) <= step]
        if len(kept) != len(lines):
            log.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    return step


def _save_state(out_dir: Path, state: dict) -> None:
    tmp = out_dir / (STATE_NAME + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, out_dir / STATE_NAME)


def log_record(out_dir: Path, record: dict) -> None:
    with open(out_dir / LOG_NAME, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def load_frozen_base(base_model_dir: Path):
    """(model, tokenizer) with every base weight frozen, in the folder's dtype."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(base_model_dir), dtype="auto")
    model.requires_grad_(False)
    return model.eval(), tokenizer

"""Context distillation: the adapter should make the model behave as the description prompt does.

"Learning by Distilling Context" (Snell et al., 2022), applied to T2L. For a
description d and an input x:

    teacher  the frozen base model, no adapter, prompt style "base+desc"
             (d as the system message, x as the user message)
    student  the base model with the adapter generated from d, prompt without d
             (style "t2l"; SFT passes its own style)
    y        the teacher's greedy continuation of its own prompt: at most
             `max_new_tokens` tokens, ending with end of turn if it stopped
    loss     KL(teacher || student), per token of y, averaged over all y tokens
             of the batch. The position predicting y[i] sees [teacher prompt + y[:i]]
             on the teacher side and [student prompt + y[:i]] on the student side.

No reference answer is needed, so any description can be distilled.

Cost per step (B examples, n = sum of len(y)):
    - y: one batched greedy `generate` (left padding, KV cache) for the examples
      not seen before in the run; `TeacherCache` keeps y per (description, input),
      in memory and, in a run folder, appended to a JSONL file so that a resumed
      run reuses exactly the continuations the interrupted one generated (y from
      a padded batch may differ in the last bit between batch compositions).
    - teacher: one forward without grad over B x (teacher prompt + y).
    - student: one forward + backward over B x (student prompt + y).
    Both run the LM head only at the n positions predicting y (as
    `loop.completion_loss` does), so the vocabulary projection costs n rows, not B x seq.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.nn import functional as F

from t2l_vllm.hypernet import LoraFactors
from t2l_vllm.prompts import prompt_ids
from t2l_vllm.training.data import IGNORE_INDEX, Batch, collate
from t2l_vllm.training.functional_lora import lora_applied

TEACHER_STYLE = "base+desc"


def kl_per_token(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Mean over rows of KL(softmax(teacher / T) || softmax(student / T)), times T^2.

    Args:
        teacher_logits, student_logits: [n, vocab], row i for the same position.
        temperature: T; the T^2 factor keeps gradient sizes comparable across T (Hinton et al.).
    Returns:
        A scalar; exactly 0 when the logits are equal.
    """
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(f"teacher logits {tuple(teacher_logits.shape)} vs student logits {tuple(student_logits.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    return F.kl_div(s, t, log_target=True, reduction="batchmean") * temperature**2


@torch.no_grad()
def greedy_continuations(model, prompts: list[list[int]], max_new_tokens: int, eos_id: int, pad_id: int) -> list[list[int]]:
    """Each prompt's greedy continuation: one batched `generate` with left padding.

    Returns one token list per prompt, at most `max_new_tokens` long, ending with
    `eos_id` where the model emitted it (nothing after it).
    """
    from transformers import GenerationConfig

    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p)
        mask[i, width - len(p) :] = 1
    config = GenerationConfig(do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=eos_id, pad_token_id=pad_id)
    out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
    result = []
    for row in out[:, width:].tolist():
        result.append(row[: row.index(eos_id) + 1] if eos_id in row else row)
    return result


class TeacherCache:
    """(description, input) -> the teacher's continuation y, generated on first use.

    With `path`, every new continuation is appended there as a JSONL line
    {"description", "input", "tokens"} and the file is read back on creation
    (a line cut short by a kill is skipped). The continuation depends on the
    base model and `max_new_tokens`, so one file belongs to one run.
    """

    def __init__(self, model, tokenizer, max_new_tokens: int, path: Path | None = None):
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no eos_token; set one in its tokenizer_config.json")
        self.model, self.tokenizer, self.max_new_tokens, self.path = model, tokenizer, max_new_tokens, path
        self.generated = 0  # continuations generated by this object (cache misses)
        self._cache: dict[tuple[str, str], list[int]] = {}
        if path is not None and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self._cache[(row["description"], row["input"])] = [int(t) for t in row["tokens"]]
                except (ValueError, KeyError, TypeError):
                    continue

    def __len__(self) -> int:
        return len(self._cache)

    def continuations(self, examples: list[dict]) -> list[list[int]]:
        """y for each example (its "description" and "input"; any target is ignored)."""
        keys = [(ex["description"], ex["input"]) for ex in examples]
        missing = list(dict.fromkeys(k for k in keys if k not in self._cache))
        if missing:
            tok = self.tokenizer
            prompts = [prompt_ids(tok, TEACHER_STYLE, d, x) for d, x in missing]
            pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
            ys = greedy_continuations(self.model, prompts, self.max_new_tokens, tok.eos_token_id, pad)
            self._cache.update(zip(missing, ys))
            self.generated += len(missing)
            if self.path is not None:
                lines = "".join(
                    json.dumps({"description": d, "input": x, "tokens": y}) + "\n" for (d, x), y in zip(missing, ys)
                )
                with open(self.path, "a", encoding="utf-8") as fh:
                    fh.write(lines)
        return [self._cache[k] for k in keys]


def distill_batches(
    tokenizer, examples: list[dict], continuations: list[list[int]], student_style: str, max_tokens: int, pad: int
) -> tuple[Batch, Batch]:
    """(teacher, student) batches of prompt + y with y's tokens labelled, row i for example i.

    The student's prompt is cut from the left to fit `max_tokens`, as SFT rows are;
    the teacher's is kept whole (its system message is the description).
    """
    teacher_rows, student_rows = [], []
    for ex, y in zip(examples, continuations, strict=True):
        if not 1 <= len(y) < max_tokens:
            raise ValueError(f"continuation of {len(y)} tokens; it must be between 1 and max_tokens - 1 ({max_tokens - 1})")
        tp = prompt_ids(tokenizer, TEACHER_STYLE, ex["description"], ex["input"])
        sp = prompt_ids(tokenizer, student_style, ex["description"], ex["input"])[-(max_tokens - len(y)) :]
        teacher_rows.append((tp + y, [IGNORE_INDEX] * len(tp) + y))
        student_rows.append((sp + y, [IGNORE_INDEX] * len(sp) + y))
    return collate(teacher_rows, pad), collate(student_rows, pad)


def continuation_logits(model, batch: Batch) -> torch.Tensor:
    """[n_labelled, vocab] logits at the positions predicting the labelled tokens, in row-major order."""
    hidden = model.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
    keep = batch.labels[:, 1:] != IGNORE_INDEX  # position t predicts token t+1
    return model.lm_head(hidden[:, :-1][keep]).float()


def distill_loss(
    model, modules: dict, lora: LoraFactors, teacher: Batch, student: Batch, temperature: float = 1.0
) -> torch.Tensor:
    """KL(teacher || student) per continuation token; gradients reach only `lora`.

    Args:
        model: the frozen base model (teacher without the adapter, student with it).
        modules: `functional_lora.target_modules(model, spec)`.
        lora: one adapter per row of the batches.
        teacher, student: from `distill_batches` (the same continuation per row).
    """
    with torch.no_grad():
        t = continuation_logits(model, teacher)
    with lora_applied(modules, lora):
        s = continuation_logits(model, student)
    return kl_per_token(t, s, temperature)

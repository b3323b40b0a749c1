"""Blended adapters: one LoRA whose update is a weighted sum of other LoRAs' updates.

A member i applies dW_i = s_i B_i A_i (s_i = alpha_i / r_i, or alpha_i / sqrt(r_i)
with rsLoRA; A_i: [r_i, d_in], B_i: [d_out, r_i]). The blend with weights w_i
stacks the ranks:

    A = [A_1; ...; A_k]                     [R, d_in],  R = sum r_i
    B = [w_1 s_1 B_1, ..., w_k s_k B_k]     [d_out, R]
    B A = sum_i w_i s_i B_i A_i             (exact)

and is written with r = R, lora_alpha = R, no rsLoRA, so vLLM and PEFT apply it
with scale 1. The only rounding is storing w_i s_i B_i in the members' dtype.
When R exceeds the server's --max-lora-rank, each module's sum is cut to
that rank by a truncated SVD (the best rank-k approximation, Eckart-Young),
computed on the stacked factors without forming dW: QR of B and A^T, SVD of
the small R x R core. The blend's metadata records the relative Frobenius
error of that cut per adapter (its largest over modules).

The request form is a list of {"text", "weight"}; `parse_blend` validates it
and gives the canonical list the blend's id is derived from.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

import torch

from .adapter import ADAPTER_PREFIX, ID_HEX_CHARS, normalize_description
from .peft_format import adapter_config

MAX_BLEND_MEMBERS = 8
MAX_ABS_WEIGHT = 16.0


@dataclass(frozen=True)
class BlendMember:
    text: str  # normalised description
    weight: float


def parse_blend(value: object, max_chars: int) -> tuple[BlendMember, ...]:
    """Validate a blend request and return its canonical members (ValueError with what is wrong).

    Canonical: descriptions normalised as for single adapters, equal ones merged
    (weights added), sorted by text, so the same blend always gets the same id.
    """
    if not isinstance(value, list) or not value:
        raise ValueError('a blended task_description is a non-empty list of {"text": str, "weight": number}')
    if len(value) > MAX_BLEND_MEMBERS:
        raise ValueError(f"a blend takes at most {MAX_BLEND_MEMBERS} members, got {len(value)}")
    weights: dict[str, float] = {}
    for i, item in enumerate(value):
        if not isinstance(item, dict) or set(item) - {"text", "weight"} or "text" not in item:
            raise ValueError(f'blend member {i} must be an object {{"text": str, "weight": number}} (weight optional, 1)')
        w = item.get("weight", 1.0)
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
            raise ValueError(f"blend member {i}: weight must be a finite number, got {w!r}")
        if w == 0 or abs(w) > MAX_ABS_WEIGHT:
            raise ValueError(f"blend member {i}: weight must be non-zero and at most {MAX_ABS_WEIGHT} in size, got {w}")
        try:
            text = normalize_description(item["text"], max_chars)
        except ValueError as e:
            raise ValueError(f"blend member {i}: {e}") from None
        weights[text] = weights.get(text, 0.0) + float(w)
    return tuple(BlendMember(t, w) for t, w in sorted(weights.items()) if w != 0.0)


def canonical_json(members: tuple[BlendMember, ...]) -> str:
    """The stored description of a blend: its canonical member list as JSON."""
    return json.dumps([{"text": m.text, "weight": m.weight} for m in members], ensure_ascii=False)


def blend_id(members: tuple[BlendMember, ...], hypernet_digest: str) -> str:
    """`t2l-<32 hex>` of the canonical member list and the checkpoint (never equal to a single adapter's id)."""
    h = hashlib.sha256()
    h.update(b"blend\0" + hypernet_digest.encode() + b"\0" + canonical_json(members).encode("utf-8"))
    return ADAPTER_PREFIX + h.hexdigest()[:ID_HEX_CHARS]


def _scale(config: dict) -> float:
    r, alpha = int(config["r"]), float(config["lora_alpha"])
    return alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r


def _factor_keys(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Module prefixes (`...q_proj`) that have both lora_A and lora_B."""
    return sorted(k[: -len(".lora_A.weight")] for k in tensors
                  if k.endswith(".lora_A.weight") and k.replace(".lora_A.", ".lora_B.") in tensors)


def blend_tensors(
    members: list[tuple[dict[str, torch.Tensor], dict, float]], base_model_name: str, max_rank: int | None = None,
) -> tuple[dict[str, torch.Tensor], dict, float]:
    """(member tensors, member adapter_config, weight) -> (tensors, adapter_config, relative error).

    Members must target the same base model; a module some member lacks gets
    zeros in that member's rank slots. error is 0.0 unless the stacked rank
    was over `max_rank` (then the largest relative Frobenius error of a module).
    """
    if not members:
        raise ValueError("a blend needs at least one member")
    modules = sorted({k for tensors, _, _ in members for k in _factor_keys(tensors)})
    if not modules:
        raise ValueError("blend members hold no LoRA factors")
    total = sum(int(cfg["r"]) for _, cfg, _ in members)
    rank = total if max_rank is None or total <= max_rank else max_rank
    dtype = next(iter(members[0][0].values())).dtype
    out: dict[str, torch.Tensor] = {}
    worst = 0.0
    for mod in modules:
        shapes = {(t[f"{mod}.lora_A.weight"].shape[1], t[f"{mod}.lora_B.weight"].shape[0])
                  for t, _, _ in members if f"{mod}.lora_A.weight" in t}
        if len(shapes) != 1:
            raise ValueError(f"blend members disagree on the shape of {mod}: {sorted(shapes)}")
        [(d_in, d_out)] = shapes
        a_parts, b_parts = [], []
        for tensors, cfg, w in members:
            r = int(cfg["r"])
            a = tensors.get(f"{mod}.lora_A.weight")
            b = tensors.get(f"{mod}.lora_B.weight")
            if a is None:  # this member leaves the module alone
                a, b = torch.zeros(r, d_in), torch.zeros(d_out, r)
            a_parts.append(a.float())  # [r_i, d_in]
            b_parts.append(b.float() * (w * _scale(cfg)))  # [d_out, r_i]
        a_cat, b_cat = torch.cat(a_parts), torch.cat(b_parts, dim=1)  # [R, d_in], [d_out, R]
        if rank < total:
            a_cat, b_cat, err = _truncate(a_cat, b_cat, rank)
            worst = max(worst, err)
        out[f"{mod}.lora_A.weight"] = a_cat.to(dtype).contiguous()
        out[f"{mod}.lora_B.weight"] = b_cat.to(dtype).contiguous()
    targets = sorted({m for _, cfg, _ in members for m in cfg["target_modules"]})
    # Scale 1: lora_alpha = r without rsLoRA (the weights and scales are folded into B).
    return out, adapter_config(rank, float(rank), False, targets, base_model_name), worst


def _truncate(a: torch.Tensor, b: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Best rank-k factors of B A (A: [R, d_in], B: [d_out, R]) and the relative Frobenius error of the cut."""
    qb, rb = torch.linalg.qr(b)  # [d_out, R], [R, R]
    qa, ra = torch.linalg.qr(a.T)  # [d_in, R], [R, R]
    u, s, vh = torch.linalg.svd(rb @ ra.T)  # B A = qb (rb ra^T) qa^T
    total = float(s.square().sum())
    err = math.sqrt(float(s[k:].square().sum()) / total) if total > 0 else 0.0
    return vh[:k] @ qa.T, qb @ (u[:, :k] * s[:k]), err  # [k, d_in], [d_out, k]

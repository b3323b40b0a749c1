"""Segment-grouped multi-LoRA shrink/expand ops for CPU, in plain torch.

Drop-in replacements for vLLM's `vllm/lora/ops/torch_ops` (same signatures,
same dtype handling). vLLM's versions gather a full copy of the adapter weights
for every token (`weights[token_indices]` -> [T, out, in]) and then run a
per-token einsum. Here tokens are grouped by adapter and each group is one GEMM
against that adapter's weights, read in place:

    y[rows(a)] = x[rows(a)] @ W[a].T        for each adapter a in the batch

Tokens whose adapter index is -1 (requests without a LoRA) are left untouched.
vLLM's ops index the weight stack with -1 too, which in Python selects the last
adapter slot: such tokens then run through whatever adapter sits there.

Weights: [num_slots, 1, out, in] or [num_slots, out, in]. Indices: [T] int.
Every op expects one input row per output row and per index (vLLM's callers
always pass that; `rows_match` lets the installer route anything else to
vLLM's original op). No vLLM import here: this module is pure torch, tested
against vLLM's ops. The per-layer path of LoRA linear layers is
`packed_lora.py`; these ops serve vLLM's other LoRA calls (logits, embedding).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def rows_match(inputs: torch.Tensor, output_tensor: torch.Tensor, token_indices: torch.Tensor) -> bool:
    return inputs.shape[0] == output_tensor.shape[0] == token_indices.shape[0]


def slot_weights(weights: torch.Tensor) -> torch.Tensor:
    """[num_slots, 1, out, in] -> [num_slots, out, in]."""
    return weights.squeeze(1) if weights.dim() == 4 else weights


@dataclass(frozen=True)
class TokenGroups:
    """The tokens of one batch grouped by adapter slot.

    Computed once per batch and reused by every LoRA layer of the step.
    whole: the slot when every token uses one adapter (no reordering needed).
    perm: [T'] token positions sorted by slot, tokens without an adapter left out.
    ranges: (slot, start, end) spans of `perm`, one per slot in use.
    """

    whole: int | None
    perm: torch.Tensor | None
    ranges: tuple[tuple[int, int, int], ...]

    @classmethod
    def from_indices(cls, token_indices: torch.Tensor) -> "TokenGroups":
        """token_indices: [T] adapter slot per token, -1 for none."""
        if token_indices.numel() == 0:
            return cls(None, None, ())
        first = int(token_indices[0])
        if bool((token_indices == first).all()):
            return cls(first, None, ()) if first >= 0 else cls(None, None, ())
        slots, perm = torch.sort(token_indices, stable=True)
        counts = torch.bincount(slots + 1).tolist()  # counts[0] = tokens without an adapter
        ranges, start = [], 0  # offsets into perm, which starts after the adapter-less tokens
        for slot, n in enumerate(counts[1:]):
            if n:
                ranges.append((slot, start, start + n))
                start += n
        perm = perm[counts[0] :]
        return cls(None, perm, tuple(ranges))


def grouped_lora(
    inputs: torch.Tensor,
    weights: torch.Tensor,
    target: torch.Tensor,
    groups: TokenGroups,
    add: bool,
    scaling: float = 1.0,
) -> None:
    """target[t] (+)= scaling * inputs[t] @ W[slot(t)].T for every token with an adapter.

    inputs: [T, d_in]; weights: [slots, (1,) d_out_w, d_in]; target: [T, d_out] (a view,
    d_out <= d_out_w: only the first d_out output columns are used). Computed in
    target's dtype, as vLLM's ops do.
    """
    w_all = slot_weights(weights)
    width = target.shape[1]
    dtype = target.dtype
    if groups.whole is not None:
        slot = groups.whole
        y = inputs.to(dtype) @ w_all[slot, :width].to(dtype).T  # [T, width]
        if scaling != 1.0:
            y *= scaling
        if add:
            target += y
        else:
            target.copy_(y)
        return
    if not groups.ranges:
        return
    xs = inputs.index_select(0, groups.perm).to(dtype)  # [T', d_in], sorted by slot
    ys = torch.zeros(xs.shape[0], width, dtype=dtype)
    for slot, start, end in groups.ranges:
        torch.matmul(xs[start:end], w_all[slot, :width].to(dtype).T, out=ys[start:end])
    if scaling != 1.0:
        ys *= scaling
    if add:
        target.index_add_(0, groups.perm, ys)
    else:
        target.index_copy_(0, groups.perm, ys)


def bgmv_shrink(
    inputs: torch.Tensor,
    lora_b_weights: torch.Tensor,
    output_tensor: torch.Tensor,
    lora_indices_tensor: torch.Tensor,
    scaling: float = 1.0,
) -> None:
    """output[t, :r] = scaling * inputs[t] @ A[idx[t]].T   (inputs [T, in], A [slots, (1,) r, in])."""
    rank = slot_weights(lora_b_weights).shape[1]
    groups = TokenGroups.from_indices(lora_indices_tensor)
    grouped_lora(inputs, lora_b_weights, output_tensor[:, :rank], groups, add=False, scaling=scaling)


def bgmv_expand(
    inputs: torch.Tensor,
    lora_b_weights: torch.Tensor,
    output_tensor: torch.Tensor,
    lora_indices_tensor: torch.Tensor,
    add_inputs: bool = True,
) -> None:
    """output[t, :n] (+)= inputs[t] @ B[idx[t]].T   (inputs [T, r], B [slots, (1,) out, r]).

    n = min(out, output width): adapter and model may pad differently.
    """
    width = min(slot_weights(lora_b_weights).shape[1], output_tensor.shape[1])
    groups = TokenGroups.from_indices(lora_indices_tensor)
    grouped_lora(inputs, lora_b_weights, output_tensor[:, :width], groups, add=add_inputs)


def bgmv_expand_slice(
    inputs: torch.Tensor,
    lora_b_weights: torch.Tensor,
    output_tensor: torch.Tensor,
    lora_indices_tensor: torch.Tensor,
    slice_offset: int,
    slice_size: int,
    add_inputs: bool = True,
) -> None:
    """output[t, off:off+size] (+)= inputs[t] @ B[idx[t]].T, for packed projections (qkv, gate_up)."""
    groups = TokenGroups.from_indices(lora_indices_tensor)
    target = output_tensor[:, slice_offset : slice_offset + slice_size]
    grouped_lora(inputs, lora_b_weights, target, groups, add=add_inputs)


def _token_indices(lora_indices_tensor: torch.Tensor, seq_len_tensor: torch.Tensor) -> torch.Tensor:
    """Per-sequence adapter indices -> per-token ones (prefill segments are contiguous)."""
    return torch.repeat_interleave(lora_indices_tensor, seq_len_tensor)


def sgmv_shrink(
    inputs, lora_a_weights, output_tensor, b_seq_start_loc, seq_len_tensor, lora_indices_tensor,
    batches, max_seq_length, token_nums, scaling,
) -> None:
    bgmv_shrink(inputs, lora_a_weights, output_tensor, _token_indices(lora_indices_tensor, seq_len_tensor), scaling)


def sgmv_expand(
    inputs, lora_b_weights, output_tensor, b_seq_start_loc, seq_len_tensor, lora_indices_tensor,
    batches, max_seq_length, token_nums, add_inputs=False,
) -> None:
    bgmv_expand(inputs, lora_b_weights, output_tensor, _token_indices(lora_indices_tensor, seq_len_tensor), add_inputs)


def sgmv_expand_slice(
    inputs, lora_b_weights, output_tensor, b_seq_start_loc, seq_len_tensor, lora_indices_tensor,
    batches, max_seq_length, token_nums, slice_offset, slice_size, add_inputs=False,
) -> None:
    bgmv_expand_slice(
        inputs, lora_b_weights, output_tensor, _token_indices(lora_indices_tensor, seq_len_tensor),
        slice_offset, slice_size, add_inputs,
    )


OPS = {
    "bgmv_shrink": bgmv_shrink,
    "bgmv_expand": bgmv_expand,
    "bgmv_expand_slice": bgmv_expand_slice,
    "sgmv_shrink": sgmv_shrink,
    "sgmv_expand": sgmv_expand,
    "sgmv_expand_slice": sgmv_expand_slice,
}

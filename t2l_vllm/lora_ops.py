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
against vLLM's ops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

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
    padded: "PaddedGroups | None" = None

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
        return cls(None, perm, tuple(ranges), PaddedGroups.build(perm, ranges, token_indices.shape[0]))

    def slots(self) -> list[int]:
        return [self.whole] if self.whole is not None else [slot for slot, _, _ in self.ranges]


@dataclass(frozen=True)
class PaddedGroups:
    """The groups laid out as a [G, n_max] grid for one batched GEMM per factor.

    rows: [G, n_max] token row per cell; padding cells point at row T, an extra
        zero row appended to the input.
    slots: [G] adapter slot per group.
    cells: [T'] flat cell of each real token (padding dropped); tokens: [T'] its row.
    """

    rows: torch.Tensor
    slots: torch.Tensor
    cells: torch.Tensor
    tokens: torch.Tensor

    @classmethod
    def build(cls, perm: torch.Tensor, ranges: list[tuple[int, int, int]], num_tokens: int) -> "PaddedGroups | None":
        n_max = max(end - start for _, start, end in ranges)
        # Padding costs GEMM work; past 2x the real tokens a loop over groups is cheaper.
        if len(ranges) * n_max > 2 * perm.shape[0]:
            return None
        rows = torch.full((len(ranges), n_max), num_tokens, dtype=torch.long)
        cells = []
        for g, (_, start, end) in enumerate(ranges):
            rows[g, : end - start] = perm[start:end]
            cells.append(torch.arange(g * n_max, g * n_max + end - start))
        return cls(rows, torch.tensor([slot for slot, _, _ in ranges]), torch.cat(cells), perm)


def _padded_lora(x, y, a_all, b_all, size, offset, scale, padded: PaddedGroups) -> None:
    """All groups of one slice in two bmm calls (see `lora_linear`)."""
    x_ext = torch.cat([x, x.new_zeros(1, x.shape[1])])  # [T+1, d_in], row T is the padding row
    xp = x_ext[padded.rows].float()  # [G, n_max, d_in]
    a = a_all.index_select(0, padded.slots).float()  # [G, r, d_in]
    h = torch.bmm(xp, a.transpose(1, 2))  # [G, n_max, r] float32
    if scale != 1.0:
        h *= scale
    b = b_all.index_select(0, padded.slots)[:, :size].to(y.dtype)  # [G, size, r]
    out = torch.bmm(h.to(y.dtype), b.transpose(1, 2)).reshape(-1, size)  # [G * n_max, size]
    y[:, offset : offset + size].index_add_(0, padded.tokens, out.index_select(0, padded.cells))


def grouped_lora(
    inputs: torch.Tensor,
    weights: torch.Tensor,
    target: torch.Tensor,
    groups: TokenGroups,
    add: bool,
    scaling: float = 1.0,
    live: Callable[[int], bool] | None = None,
) -> None:
    """target[t] (+)= scaling * inputs[t] @ W[slot(t)].T for every token with an adapter.

    inputs: [T, d_in]; weights: [slots, (1,) d_out_w, d_in]; target: [T, d_out] (a view,
    d_out <= d_out_w: only the first d_out output columns are used). Computed in
    target's dtype, as vLLM's ops do. `live(slot)` False means the slot's weights are
    all zero here: its tokens get exactly zero, so the GEMM is skipped.
    """
    w_all = slot_weights(weights)
    width = target.shape[1]
    dtype = target.dtype
    if groups.whole is not None:
        slot = groups.whole
        if live is not None and not live(slot):
            if not add:
                target.zero_()
            return
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
    ranges = [r for r in groups.ranges if live is None or live(r[0])]
    if add and not ranges:
        return
    xs = inputs.index_select(0, groups.perm).to(dtype)  # [T', d_in], sorted by slot
    ys = torch.zeros(xs.shape[0], width, dtype=dtype)
    for slot, start, end in ranges:
        torch.matmul(xs[start:end], w_all[slot, :width].to(dtype).T, out=ys[start:end])
    if scaling != 1.0:
        ys *= scaling
    if add:
        target.index_add_(0, groups.perm, ys)
    else:
        target.index_copy_(0, groups.perm, ys)


def lora_linear(
    x: torch.Tensor,
    y: torch.Tensor,
    a_stacks: tuple[torch.Tensor, ...],
    b_stacks: tuple[torch.Tensor, ...],
    output_slices: tuple[int, ...],
    scale: float,
    groups: TokenGroups,
    live: Callable[[torch.Tensor], Callable[[int], bool]] | None = None,
) -> None:
    """y[:, slice i] += (scale * x @ A_i[slot].T) @ B_i[slot].T for every token with an adapter.

    The whole LoRA of one (possibly packed) linear layer in one call, with the
    numerics of vLLM's shrink-then-expand: the shrink result is float32, cast to
    y's dtype before the expand. x: [T, d_in]; y: [T, sum(output_slices)];
    A_i: [slots, (1,) r, d_in]; B_i: [slots, (1,) size_i, r]. `live(stack)(slot)`
    False skips a slot whose weights are zero for that stack.
    """
    slots = groups.slots()
    if not slots:
        return
    xs = x if groups.whole is not None else x.index_select(0, groups.perm)  # [T', d_in]
    offset = 0
    for a_stack, b_stack, size in zip(a_stacks, b_stacks, output_slices):
        a_all, b_all = slot_weights(a_stack), slot_weights(b_stack)
        la, lb = (live(a_stack), live(b_stack)) if live is not None else (None, None)
        spans = (
            [(groups.whole, 0, xs.shape[0])] if groups.whole is not None else list(groups.ranges)
        )
        spans = [sp for sp in spans if la is None or (la(sp[0]) and lb(sp[0]))]
        if spans and groups.padded is not None and len(spans) > 1:
            # Dead slots (zero weights) in the grid contribute exact zeros.
            _padded_lora(x, y, a_all, b_all, size, offset, scale, groups.padded)
        elif spans:
            ys = torch.zeros(xs.shape[0], size, dtype=y.dtype) if groups.whole is None else None
            for slot, start, end in spans:
                h = xs[start:end].float() @ a_all[slot].float().T  # [n, r] float32, like vLLM's buffer
                if scale != 1.0:
                    h *= scale
                out = h.to(y.dtype) @ b_all[slot, :size].to(y.dtype).T  # [n, size]
                if ys is None:
                    y[:, offset : offset + size] += out
                else:
                    ys[start:end] = out
            if ys is not None:
                y[:, offset : offset + size].index_add_(0, groups.perm, ys)
        offset += size


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

"""The whole multi-LoRA update of one linear layer in two GEMMs, for CPU.

vLLM's CPU punica wrapper computes a LoRA layer as shrink then expand, per
output slice (q, k, v of a packed qkv projection), each through a per-token
op. On a decode step that is dozens of tiny ops per layer, and on CPU the op
count, not the arithmetic, is the cost. Here a layer's adapters are
re-laid out once, after their weights change (`PackedLayer`), and each batch
is planned once (`BatchPlan`), so that a layer costs:

    dense   (many short runs of tokens, e.g. decode, one token per sequence):
        h = x @ A_sel.T          [T, U*k]   every used adapter's A, all live slices
        h *= mask                [T, U*k]   keeps each token's own adapter block
        y[:, slice i] += h_i @ B_sel,i      one addmm per live slice, its columns only
    gathered (short runs over many adapters, e.g. decode of 32 sequences, 32 adapters):
        h_t = x_t @ A_t.T        [T, 1, k]  one batched GEMM, each token its own factors
        y[t, slice i] += h_t[i] @ B_t,i     one batched GEMM per live slice
    runs    (few long runs, e.g. prefill of whole prompts):
        y[s:e, c0:c1] += (x[s:e] @ A[slot].T) @ B[slot]   per run of one adapter
    one adapter, at most ONE_ADAPTER_TOKENS tokens (one decode stream, a short prefill):
        the run path on the slot's own float32 factors, kept laid out for the two GEMMs
    fused (where the compiled op is built, fused.py): what the dense, gathered and
        one-adapter paths would serve, in one call per layer on the packed factors (B
        without its zeros), each token reading only its own adapter's

U: adapters used in the batch and live in this layer; k = live slices x rank.
The dense path spends U times the arithmetic of an exact grouping, which is
nothing next to the base GEMM while the batch is small, and saves every gather
and scatter. The gathered path does only the needed arithmetic, on per-token
float32 factors (A_t, B_t) gathered once per layer and batch composition: decode
steps repeat the same token -> slot indices until a sequence joins or leaves.
Both paths expand slice by slice into the live slices' columns only (slice-major:
a q/v adapter skips k_proj's zeros). Tokens with adapter index -1 have an all-zero
mask row (dense) or all-zero factors (gathered), or belong to no run: they are
untouched.

Numerics follow vLLM's shrink-then-expand: the shrink result is rounded to the
layer's dtype before the expand (vLLM: float32 buffer, then cast), and slices
or slots whose weights are all zero contribute exact zeros, so they are left
out. Costs memory: one re-laid-out copy of the layer's adapter weights; once the
gathered path has run, a second (A as [slots, d_in, k]) and the last batch's
per-token float32 factors (bounded by GATHER_TOKENS).

Pure torch, no vLLM import: `vllm_install.py` wires it into vLLM.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from . import fused as fused_op
from .grouped_ops import slot_weights

# Cost of one run's GEMM pair, in units of the dense path's cost per token and
# used adapter: the dense path wins while runs x RUN_COST > tokens x adapters.
# Measured by benchmarks/packed_lora_paths.py (SmolLM2-135M qkv shapes, rank 8,
# 2 cores): a GEMM pair ~40 us per run, dense ~0.06 us per token per adapter.
RUN_COST = 600
# Batches of at most this many tokens (one or a few decode streams) run their two
# GEMMs in float32 on float32 copies of a bf16/fp16 layer's factors: CPU bf16
# GEMMs this small are several times slower than float32 ones (one token, q/v
# pair on SmolLM2-135M's qkv shapes: ~31 us bf16, ~11 us float32).
SMALL_TOKENS = 4
# A batch the dense rule picks takes the gathered path instead when it has at most
# GATHER_TOKENS tokens and at most GATHER_SHARE tokens per used adapter. The dense
# path's cost grows with tokens x adapters; the gathered path's with tokens, but
# each token reads its own float32 factors, T x (d_in x k + rank x live columns) x 4
# bytes per layer (SmolLM2-135M q/v, rank 8: 61 KB per token, 2 MB per layer at
# T = 32) against the dense path's U x (the same count) x 2 bytes. Measured by
# benchmarks/small_batch_lora.py (results/small_batch_lora, run with GATHER_TOKENS
# = 64): dense / gathered time, median of 40 back-to-back pairs, 30 layers in turn
# as in a decode step (bf16, one thread, loaded machine): T=4: 1.16 (4 adapters);
# T=8: 1.06 (4), 1.61 (8); T=16: 0.68 (4), 0.97 (8), 1.10 (16); T=32: 0.54 (8),
# 0.94 (32); T=64: 0.36 (8), 0.91 (64). One layer called again and again (its
# factors stay in the core's cache) favours gathering (T=32, 32 adapters: 1.37;
# T=64, 64: 1.40), but a decode step does not keep them there: past 16 tokens the
# two paths tie at best, and the dense one costs no extra memory.
GATHER_TOKENS = 16
GATHER_SHARE = 1.5
# Batches of at most this many tokens that all use one adapter (one decode stream, a short
# prompt's prefill) run on that slot's own float32 factors (`_add_one_adapter`, six ops per
# layer). Against the run path's bf16 GEMMs, 30 q/v layers of SmolLM2-135M in turn, one
# thread, us per layer: T=1 28 vs 79, T=4 31 vs 79, T=16 59 vs 125, T=32 54 vs 78, T=48
# 103 vs 117, T=64 125 vs 111, T=128 235 vs 140 (benchmarks/small_batch_lora.py --adapters 1
# --layers 30, "runs f32" vs "runs"; results/small_batch_lora/one_adapter).
ONE_ADAPTER_TOKENS = 32
_HALF = (torch.bfloat16, torch.float16)


@dataclass(frozen=True)
class PackedLayer:
    """One LoRA layer's stacked adapter weights laid out for one GEMM per factor.

    a: [slots, k, d_in], the A rows of every live slice, slice after slice
        (k = live slices x rank);
    b: [slots, k, c1 - c0], the matching B^T rows, each at its slice's output
        columns, zeros elsewhere (e.g. under k_proj for a q/v adapter);
    cols: (c0, c1), the output columns of the first to the last live slice;
    live: per slot, whether it has non-zero weights in any slice;
    pieces: per live slice, (first column - c0, width); its rows in a and b are i*rank:(i+1)*rank;
    slices: per live slice, its index among the layer's output slices (0 = q of a qkv layer).
    """

    a: torch.Tensor
    b: torch.Tensor
    cols: tuple[int, int]
    live: tuple[bool, ...]
    pieces: tuple[tuple[int, int], ...]
    slices: tuple[int, ...]

    @classmethod
    def build(
        cls,
        a_stacks: tuple[torch.Tensor, ...],
        b_stacks: tuple[torch.Tensor, ...],
        output_slices: tuple[int, ...],
        dtype: torch.dtype,
    ) -> "PackedLayer | None":
        """None when no slot has weights for this layer (nothing to add).

        a_stacks[i]: [slots, (1,) r, d_in]; b_stacks[i]: [slots, (1,) size_w, r] with
        size_w >= output_slices[i] (only the first output_slices[i] rows are used).
        """
        offsets = [sum(output_slices[:i]) for i in range(len(output_slices))]
        pieces = []  # (offset, size, a [slots, r, d_in], b [slots, size, r], slot flags [slots])
        slices = []
        for i, (a_stack, b_stack, size, offset) in enumerate(zip(a_stacks, b_stacks, output_slices, offsets)):
            a, b = slot_weights(a_stack), slot_weights(b_stack)[:, :size]
            flags = (a.flatten(1) != 0).any(1) & (b.flatten(1) != 0).any(1)
            if bool(flags.any()):
                pieces.append((offset, size, a, b, flags))
                slices.append(i)
        if not pieces:
            return None
        c0, c1 = pieces[0][0], pieces[-1][0] + pieces[-1][1]
        num_slots, rank = pieces[0][2].shape[:2]
        packed_a = torch.cat([a for _, _, a, _, _ in pieces], dim=1).to(dtype).contiguous()
        packed_b = torch.zeros(num_slots, rank * len(pieces), c1 - c0, dtype=dtype)
        for i, (offset, size, _, b, _) in enumerate(pieces):
            packed_b[:, i * rank : (i + 1) * rank, offset - c0 : offset - c0 + size] = b.transpose(1, 2)
        live = torch.stack([flags for *_, flags in pieces]).any(0)
        pieces_cols = tuple((offset - c0, size) for offset, size, *_ in pieces)
        return cls(packed_a, packed_b, (c0, c1), tuple(live.tolist()), pieces_cols, tuple(slices))

    def refreshed(
        self,
        slots: tuple[int, ...],
        a_stacks: tuple[torch.Tensor, ...],
        b_stacks: tuple[torch.Tensor, ...],
        output_slices: tuple[int, ...],
    ) -> "PackedLayer | None":
        """This layer after `slots` were rewritten in the stacks: those slots' rows of a and b
        re-read in place (same bytes as `build` would lay out), the rest untouched.

        A new adapter in one slot then costs a few copies per layer instead of re-laying out
        every slot of every layer. None when a rewritten slot has weights in a slice no slot
        had when the layer was built (the layout itself changes: build it again). A slice that
        no slot uses any more stays in the layout with zero rows, which add exact zeros.
        """
        rank = self.a.shape[1] // len(self.pieces)
        live = list(self.live)
        for slot in slots:
            has_any = False
            for i, (a_stack, b_stack, size) in enumerate(zip(a_stacks, b_stacks, output_slices)):
                a = slot_weights(a_stack)[slot]  # [r, d_in]
                b = slot_weights(b_stack)[slot, :size]  # [size, r]
                has = bool(a.any()) and bool(b.any())
                if i not in self.slices:
                    if has:
                        return None
                    continue
                piece = self.slices.index(i)
                rows = slice(piece * rank, (piece + 1) * rank)
                col = self.pieces[piece][0]
                self.a[slot, rows] = a
                self.b[slot, rows] = 0
                self.b[slot, rows, col : col + size] = b.T
                has_any = has_any or has
            live[slot] = has_any
        return dataclasses.replace(self, live=tuple(live))

    def select(self, slots: tuple[int, ...]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """The given slots' blocks, slice-major: A_sel [P*U*rank, d_in] (slice after slice, each
        slot after slot) and, per live slice, B_sel [U*rank, width] (its own columns only)."""
        index = torch.tensor(slots)
        num, (_, k, d_in), pieces = len(slots), self.a.shape, len(self.pieces)
        rank = k // pieces
        a = self.a.index_select(0, index).view(num, pieces, rank, d_in).transpose(0, 1)  # [P, U, rank, d_in]
        b = self.b.index_select(0, index)  # [U, k, c1 - c0]
        return a.reshape(pieces * num * rank, d_in), tuple(
            b[:, i * rank : (i + 1) * rank, col : col + width].reshape(num * rank, width)
            for i, (col, width) in enumerate(self.pieces)
        )

    def columns(self) -> torch.Tensor:
        """a as [slots, d_in, k], the layout the gathered path's batched GEMM reads fastest."""
        return self.a.transpose(1, 2).contiguous()

    def gather(
        self, indices: torch.Tensor, columns: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Per-token float32 factors: A_t [T, d_in, k] and, per live slice, B_t [T, rank, width].

        columns: `self.columns()` (kept by the cache: gathering from it is one copy, where
        transposing the gathered rows costs several times more). Tokens without an adapter
        (-1) or whose slot has no weights here get A_t = 0, so their update is exactly zero.
        """
        index = indices.clamp(min=0)
        has = (indices >= 0) & torch.tensor(self.live)[index]  # [T]
        a_t = columns.index_select(0, index).float()  # [T, d_in, k]
        if not bool(has.all()):
            a_t[~has] = 0.0
        b = self.b.index_select(0, index)  # [T, k, c1 - c0]
        rank = b.shape[1] // len(self.pieces)
        b_t = tuple(
            b[:, i * rank : (i + 1) * rank, col : col + width].float().contiguous()
            for i, (col, width) in enumerate(self.pieces)
        )
        return a_t, b_t


@dataclass(frozen=True)
class BatchPlan:
    """How one batch's tokens map to adapters; built once per step, used by every layer.

    indices: [T] adapter slot per token, -1 for none.
    runs: (slot, start, end) maximal runs of one adapter in token order, -1 runs left out.
    slots: the distinct slots in use, ascending.
    dense: whether layers take one pass over all tokens rather than one GEMM pair per run;
    gathered: with `dense`, whether that pass uses per-token factors rather than masked GEMMs.
    key: the indices as a tuple when `gathered` (the per-token factors are cached under it);
    fused: the compiled op (fused.py) when it is built and on, else None: looked up once per batch.
    """

    indices: torch.Tensor
    runs: tuple[tuple[int, int, int], ...]
    slots: tuple[int, ...]
    dense: bool
    gathered: bool = False
    key: tuple[int, ...] = ()
    fused: object = field(default=None, compare=False, repr=False)
    _masks: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_indices(cls, indices: torch.Tensor) -> "BatchPlan":
        n = indices.shape[0]
        if n == 0:
            return cls(indices, (), (), False)
        op = fused_op.op()
        if op is not None:
            indices = indices.to(torch.long).contiguous()
        starts = torch.ones(n, dtype=torch.bool)
        starts[1:] = indices[1:] != indices[:-1]
        bounds = starts.nonzero().squeeze(1).tolist() + [n]
        values = indices[bounds[:-1]].tolist()
        runs = tuple((slot, s, e) for slot, s, e in zip(values, bounds[:-1], bounds[1:]) if slot >= 0)
        slots = tuple(sorted({slot for slot, _, _ in runs}))
        dense = len(runs) > 1 and len(runs) * RUN_COST > n * len(slots)
        gathered = dense and n <= GATHER_TOKENS and n <= GATHER_SHARE * len(slots)
        return cls(indices, runs, slots, dense, gathered, tuple(indices.tolist()) if gathered else (), op)

    def mask(
        self, slots: tuple[int, ...], block: int, scale: float, dtype: torch.dtype, copies: int = 1
    ) -> torch.Tensor:
        """[T, copies * len(slots) * block]: `scale` where the token's adapter is the block's slot, else 0
        (`copies` times side by side: one per live slice of a slice-major selection)."""
        key = (slots, block, scale, dtype, copies)
        cached = self._masks.get(key)
        if cached is None:
            hit = self.indices.unsqueeze(1) == torch.tensor(slots).unsqueeze(0)  # [T, U]
            cached = self._masks[key] = (hit.to(dtype) * scale).repeat_interleave(block, dim=1).repeat(1, copies)
        return cached


@dataclass(frozen=True)
class FusedFactors:
    """One layer's arguments to the compiled op (fused.py), kept until its weights change.

    a: [slots, k, d_in], the packed layer's own A (slice after slice; re-read in place with it);
    b: [slots, sum over live slices of rank x width], each slice's [rank, width] B block;
    both in the layer's dtype, which the op widens to float32 exactly as it reads them;
    cols, widths, ranks: per live slice, its first output column in y, its width, its rank;
    live: per slot, whether it has weights in this layer.
    """

    a: torch.Tensor
    b: torch.Tensor
    cols: list[int]
    widths: list[int]
    ranks: list[int]
    live: tuple[bool, ...]

    @classmethod
    def of(cls, layer: PackedLayer, a: torch.Tensor, b: torch.Tensor) -> "FusedFactors":
        rank = layer.a.shape[1] // len(layer.pieces)
        c0 = layer.cols[0]
        return cls(a, b, [c0 + col for col, _ in layer.pieces], [width for _, width in layer.pieces],
                   [rank] * len(layer.pieces), layer.live)


class PackedCache:
    """Every layer's `PackedLayer` and its last slot selection, until the weights change.

    Keyed by where the layer's stacked weights live (vLLM allocates them once
    per layer; the entry keeps them alive, so the address cannot be reused).
    Any write to slot weights must be reported: `slots_written(slots)` when the
    written slots are known (each layer then re-reads only those slots, the next
    time it runs), `clear()` otherwise.
    """

    def __init__(self) -> None:
        # key -> (stacks, layer, version it was last brought up to date at)
        self._layers: dict[tuple[int, int, int], tuple[tuple, PackedLayer | None, int]] = {}
        self._version = 0  # bumped by every reported write
        self._written: dict[int, int] = {}  # slot -> version of its last write
        self._selected: dict[int, tuple[tuple[int, ...], torch.Tensor, tuple[torch.Tensor, ...]]] = {}
        self._nonzero: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # id(weights) -> (weights, per-slot flags)
        self._float: dict[int, tuple[PackedLayer, PackedLayer]] = {}  # id(layer) -> (layer, float32 copy)
        # id(layer) -> (layer, plan key, A_t, B_t per slice): the last batch composition only
        self._gathered: dict[int, tuple[PackedLayer, tuple[int, ...], torch.Tensor, tuple[torch.Tensor, ...]]] = {}
        self._columns: dict[int, tuple[PackedLayer, torch.Tensor]] = {}  # id(layer) -> (layer, layer.columns())
        # id(layer) -> (layer, {slot: (A^T [d_in, k], B [k, c1 - c0]) float32}): one-adapter small batches
        self._slots: dict[int, tuple[PackedLayer, dict[int, tuple[torch.Tensor, torch.Tensor]]]] = {}
        # id(layer) -> (layer, its FusedFactors): the fused op
        self._fused: dict[int, tuple[PackedLayer, FusedFactors]] = {}
        # layer key -> (version, FusedFactors or None): the fused op's per-layer lookup in one step, no
        # staleness walk (a decode step makes it once per layer; cold, each Python call costs microseconds)
        self._fused_by_key: dict[tuple[int, int, int], tuple[int, FusedFactors | None]] = {}

    def clear(self) -> None:
        self._layers.clear()
        self._written.clear()
        self._selected.clear()
        self._nonzero.clear()
        self._float.clear()
        self._gathered.clear()
        self._columns.clear()
        self._slots.clear()
        self._fused.clear()
        self._fused_by_key.clear()

    def slots_written(self, slots) -> None:
        """`slots` of every layer's stacks were rewritten (an adapter moved into them)."""
        self._version += 1
        for slot in slots:
            self._written[slot] = self._version
        for weights, flags in self._nonzero.values():
            for slot in slots:
                flags[slot] = bool(slot_weights(weights)[slot].any())

    def _forget(self, layer: PackedLayer | None) -> None:
        """Drop what was derived from `layer` (it has been replaced)."""
        for derived in (self._selected, self._float, self._gathered, self._columns, self._slots, self._fused):
            derived.pop(id(layer), None)

    def fused_factors(self, layer: PackedLayer) -> FusedFactors:
        """Every slot's factors as the fused op reads them (kept until the layer changes; a
        refreshed layer re-reads only its written slots, see `layer`)."""
        hit = self._fused.get(id(layer))
        if hit is None:
            factors = FusedFactors.of(layer, layer.a, _fused_b(layer, slice(None)))
            hit = self._fused[id(layer)] = (layer, factors)
        return hit[1]

    def fused_layer(self, a_stacks, b_stacks, output_slices, dtype) -> FusedFactors | None:
        """`fused_factors(layer(...))` in one lookup while no slot has been written since (None: no
        adapter has weights in this layer)."""
        key = (a_stacks[0].data_ptr(), b_stacks[0].data_ptr(), len(a_stacks))
        hit = self._fused_by_key.get(key)
        if hit is None or hit[0] != self._version:
            layer = self.layer(a_stacks, b_stacks, output_slices, dtype)
            hit = self._fused_by_key[key] = (self._version, None if layer is None else self.fused_factors(layer))
        return hit[1]

    def as_float(self, layer: PackedLayer) -> PackedLayer:
        """`layer` with float32 factors, for the small-batch path (kept until the layer changes)."""
        hit = self._float.get(id(layer))
        if hit is None:
            hit = self._float[id(layer)] = (layer, dataclasses.replace(layer, a=layer.a.float(), b=layer.b.float()))
        return hit[1]

    def slot_factors(self, layer: PackedLayer, slot: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One slot's float32 factors laid out for `x @ A^T @ B`: A^T [d_in, k] and B [k, c1 - c0]
        (kept until the layer changes)."""
        hit = self._slots.get(id(layer))
        if hit is None:
            hit = self._slots[id(layer)] = (layer, {})
        factors = hit[1].get(slot)
        if factors is None:
            factors = hit[1][slot] = (layer.a[slot].T.float().contiguous(), layer.b[slot].float().contiguous())
        return factors

    def layer(self, a_stacks, b_stacks, output_slices, dtype) -> PackedLayer | None:
        key = (a_stacks[0].data_ptr(), b_stacks[0].data_ptr(), len(a_stacks))
        hit = self._layers.get(key)
        if hit is not None and hit[2] < self._version:  # slots were written since it was packed
            stale = hit[1]
            slots = tuple(slot for slot, version in self._written.items() if version > hit[2])
            if stale is None:  # no slot had weights here: build only if a written one has some now
                gained = any(_slot_has_weights(a_stacks, b_stacks, output_slices, slot) for slot in slots)
                layer = PackedLayer.build(a_stacks, b_stacks, output_slices, dtype) if gained else None
            else:
                layer = stale.refreshed(slots, a_stacks, b_stacks, output_slices)
                if layer is None:  # a written slot has weights in a slice no slot had: a new layout
                    layer = PackedLayer.build(a_stacks, b_stacks, output_slices, dtype)
                else:
                    self._refresh_fused(stale, layer, slots)
            self._forget(stale)
            hit = self._layers[key] = (hit[0], layer, self._version)
        elif hit is None:
            layer = PackedLayer.build(a_stacks, b_stacks, output_slices, dtype)
            hit = self._layers[key] = ((a_stacks, b_stacks), layer, self._version)
        return hit[1]

    def _refresh_fused(self, stale: PackedLayer, layer: PackedLayer, slots: tuple[int, ...]) -> None:
        """Keep `stale`'s fused factors for its refreshed successor: re-read only `slots` of B
        (A is the layer's own, re-read in place already)."""
        hit = self._fused.get(id(stale))
        if hit is None:
            return
        factors = hit[1]
        index = torch.tensor(slots, dtype=torch.long)
        factors.b[index] = _fused_b(layer, index)
        self._fused[id(layer)] = (layer, FusedFactors.of(layer, layer.a, factors.b))

    def selected(self, layer: PackedLayer, slots: tuple[int, ...]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        hit = self._selected.get(id(layer))
        if hit is None or hit[0] != slots:
            hit = self._selected[id(layer)] = (slots, *layer.select(slots))
        return hit[1], hit[2]

    def gathered(self, layer: PackedLayer, plan: "BatchPlan") -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """`layer.gather(plan.indices, ...)`, kept until the plan's indices or the layer change."""
        hit = self._gathered.get(id(layer))
        if hit is None or hit[1] != plan.key:
            columns = self._columns.get(id(layer))
            if columns is None:
                columns = self._columns[id(layer)] = (layer, layer.columns())
            hit = self._gathered[id(layer)] = (layer, plan.key, *layer.gather(plan.indices, columns[1]))
        return hit[2], hit[3]

    def nonzero(self, weights: torch.Tensor) -> bool:
        """Whether any slot has a non-zero entry in `weights` (e.g. vLLM's lm_head LoRA stack)."""
        hit = self._nonzero.get(id(weights))
        if hit is None:
            hit = self._nonzero[id(weights)] = (weights, slot_weights(weights).flatten(1).any(1))
        return bool(hit[1].any())


def _fused_b(layer: PackedLayer, slots) -> torch.Tensor:
    """The B blocks of `slots` (an index or slice over slots) as the fused op reads them:
    [n, sum over live slices of rank x width] in the layer's dtype, slice after slice, each
    [rank, width] (the packed b's zeros between slices left out)."""
    b = layer.b[slots]  # [n, k, c1 - c0]
    rank = b.shape[1] // len(layer.pieces)
    return torch.cat([
        b[:, i * rank : (i + 1) * rank, col : col + width].reshape(b.shape[0], -1)
        for i, (col, width) in enumerate(layer.pieces)
    ], dim=1).contiguous()


def _slot_has_weights(a_stacks, b_stacks, output_slices, slot: int) -> bool:
    """Whether `slot` has non-zero A and B in some slice (what `PackedLayer.build` packs)."""
    return any(
        bool(slot_weights(a)[slot].any()) and bool(slot_weights(b)[slot, :size].any())
        for a, b, size in zip(a_stacks, b_stacks, output_slices)
    )


def lora_linear(
    x: torch.Tensor,
    y: torch.Tensor,
    a_stacks: tuple[torch.Tensor, ...],
    b_stacks: tuple[torch.Tensor, ...],
    output_slices: tuple[int, ...],
    scale: float,
    plan: BatchPlan,
    cache: PackedCache,
) -> bool:
    """y[t, slice i] += scale * (x[t] @ A_i[slot(t)].T) @ B_i[slot(t)].T for every token with an adapter.

    x: [..., d_in]; y: [..., sum(output_slices)], updated in place; the stacks as vLLM keeps them.
    Returns False, y untouched, when the plan does not cover x's tokens: the caller
    (vllm_install.py) then hands the call to vLLM's own op.

    Runs once per LoRA layer and step, between layers whose weights push everything out of the
    CPU's caches, so every Python call here costs microseconds: a step without adapters returns
    after the shape check, and the compiled op's batches take one lookup (`fused_layer`).
    """
    x2 = x if x.dim() == 2 else x.view(-1, x.shape[-1])  # [T, d_in]
    y2 = y if y.dim() == 2 else y.view(-1, y.shape[-1])  # [T, d_out]
    if plan.indices.shape[0] != x2.shape[0] or y2.shape[0] != x2.shape[0]:
        return False
    if not plan.runs:  # no token has an adapter: nothing to add
        return True
    if plan.fused is not None and y2.stride(1) == 1 and _fused_serves(plan):
        factors = cache.fused_layer(a_stacks, b_stacks, output_slices, y.dtype)
        if factors is not None:  # None: no adapter has weights here
            _add_fused(x2, y2, factors, plan, scale)
        return True
    layer = cache.layer(a_stacks, b_stacks, output_slices, y.dtype)
    if layer is not None:  # None: no adapter has weights here (e.g. o_proj for q/v adapters)
        apply_layer(x2, y2, layer, plan, scale, cache)
    return True


def apply_layer(
    x: torch.Tensor, y: torch.Tensor, layer: PackedLayer, plan: BatchPlan, scale: float, cache: PackedCache
) -> None:
    """`lora_linear`'s torch paths, the layer already packed (x: [T, d_in], y: [T, d_out]), for the
    batches the compiled op does not take (`lora_linear` hands those to it first)."""
    slot = one_adapter_slot(plan, y.dtype)
    if slot is not None:
        if layer.live[slot]:
            _add_one_adapter(x, y, layer, slot, scale, cache)
        return
    slots = tuple(s for s in plan.slots if layer.live[s])
    if not slots:
        return
    c0, c1 = layer.cols
    out = y[:, c0:c1]
    if plan.dense and plan.gathered:
        _add_gathered(x, out, layer, plan, scale, cache)
        return
    if x.shape[0] <= SMALL_TOKENS and y.dtype in (torch.bfloat16, torch.float16):
        layer, x = cache.as_float(layer), x.float()  # small batch: float32 GEMMs (see SMALL_TOKENS)
    elif x.dtype != y.dtype:
        x = x.to(y.dtype)
    if plan.dense:
        a_sel, b_sel = cache.selected(layer, slots)
        pieces = len(layer.pieces)
        rank = layer.a.shape[1] // pieces
        h = x @ a_sel.T  # [T, P*U*rank], slice-major
        h *= plan.mask(slots, rank, scale, h.dtype, copies=pieces)
        block = len(slots) * rank
        for i, ((col, width), b) in enumerate(zip(layer.pieces, b_sel)):
            _add_expand(out[:, col : col + width], h[:, i * block : (i + 1) * block], b)  # [T, width]
        return
    for slot, start, end in plan.runs:
        if layer.live[slot]:
            h = x[start:end] @ layer.a[slot].T  # [n, k]
            if scale != 1.0:
                h *= scale
            _add_expand(out[start:end], h, layer.b[slot])


def _fused_serves(plan: BatchPlan) -> bool:
    """Whether the fused op takes this batch: every batch the dense rule picks (many short runs:
    each token reads only its own factors), and one adapter's batch of at most
    ONE_ADAPTER_TOKENS tokens. Long runs keep their GEMMs (one run of 64 tokens and more is
    faster as two GEMMs: benchmarks/small_batch_lora.py)."""
    if plan.dense:
        return True
    runs = plan.runs
    return len(runs) == 1 and runs[0][2] - runs[0][1] == plan.indices.shape[0] <= ONE_ADAPTER_TOKENS


def _add_fused(x: torch.Tensor, y: torch.Tensor, factors: FusedFactors, plan: BatchPlan, scale: float) -> None:
    """y[t, slice] += scale * (x[t] @ A_t.T) @ B_t, every token through its own slot, in one call of
    the compiled op: shrink in float32 rounded to y's dtype, expand in float32, each sum rounded
    once (the numerics of the gathered and one-adapter paths)."""
    if len(plan.runs) == 1 and not factors.live[plan.runs[0][0]]:
        return  # one adapter with no weights here: nothing to add
    if x.dtype != y.dtype:
        x = x.to(y.dtype)
    if x.stride(1) != 1:
        x = x.contiguous()
    plan.fused(y, x, factors.a, factors.b, plan.indices, factors.cols, factors.widths, factors.ranks, scale)


def one_adapter_slot(plan: BatchPlan, dtype: torch.dtype) -> int | None:
    """The slot when `_add_one_adapter` serves this batch: every token through one adapter, at
    most ONE_ADAPTER_TOKENS (or SMALL_TOKENS) tokens, a bf16/fp16 layer; else None."""
    runs, n = plan.runs, plan.indices.shape[0]
    if plan.dense or len(runs) != 1 or runs[0][2] - runs[0][1] != n:
        return None
    return runs[0][0] if n <= max(SMALL_TOKENS, ONE_ADAPTER_TOKENS) and dtype in _HALF else None


def _add_one_adapter(
    x: torch.Tensor, y: torch.Tensor, layer: PackedLayer, slot: int, scale: float, cache: PackedCache
) -> None:
    """y[:, c0:c1] += scale * (x @ A.T) @ B for a batch of at most ONE_ADAPTER_TOKENS tokens
    that all use `slot` (one decode stream, a short prompt's prefill).

    The slot's float32 factors are kept laid out for the two GEMMs, so the layer costs
    six ops: at this size each op's dispatch, not its arithmetic, is most of the cost,
    and float32 GEMMs this skinny are faster than bf16 ones (see ONE_ADAPTER_TOKENS).
    Numerics as the run path's small-batch branch: shrink in float32, rounded to the
    layer's dtype, expand in float32, the sum rounded once.
    """
    a_t, b = cache.slot_factors(layer, slot)  # [d_in, k], [k, c1 - c0]
    c0, c1 = layer.cols
    out = y if c0 == 0 and c1 == y.shape[1] else y[:, c0:c1]
    h = torch.mm(x.float(), a_t)  # [T, k]
    if scale != 1.0:
        h *= scale
    out.add_(torch.mm(h.to(y.dtype).float(), b))


def _add_expand(out: torch.Tensor, h: torch.Tensor, b: torch.Tensor) -> None:
    """out += h @ b. With float32 factors on a bf16/fp16 layer (small batches), h is rounded
    to the layer's dtype first, as on the other paths, and the sum once, as `addmm_` rounds it."""
    if h.dtype == out.dtype:
        out.addmm_(h, b)
    else:
        out.add_(h.to(out.dtype).to(h.dtype) @ b)


def _add_gathered(
    x: torch.Tensor, out: torch.Tensor, layer: PackedLayer, plan: BatchPlan, scale: float, cache: PackedCache
) -> None:
    """out[t] += scale * (x[t] @ A_t.T) @ B_t with each token's own float32 factors (the gathered path).

    The shrink is rounded to the layer's dtype before the expand, as vLLM does, and
    each slice's sum once (float32 expand, then one rounding in `add_`)."""
    a_t, b_t = cache.gathered(layer, plan)
    h = torch.bmm(x.float().unsqueeze(1), a_t)  # [T, 1, k]
    if scale != 1.0:
        h *= scale
    if out.dtype != h.dtype:
        h = h.to(out.dtype).float()
    rank = h.shape[2] // len(layer.pieces)
    for i, ((col, width), b) in enumerate(zip(layer.pieces, b_t)):
        out[:, col : col + width].add_(torch.bmm(h[:, :, i * rank : (i + 1) * rank], b).squeeze(1))  # [T, width]

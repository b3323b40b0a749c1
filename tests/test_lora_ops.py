"""Grouped CPU LoRA ops == vLLM's torch ops, on every token that has an adapter.

Tolerances: float32 rtol/atol 1e-5; bfloat16 / float16 outputs 2e-2 (the sum
order differs: one GEMM per adapter vs a per-token einsum). Tokens with index
-1 must be left exactly as they were (vLLM's ops run them through the last slot).
Every test runs twice: on the pure-torch paths and with the compiled op
(`t2l_vllm/cpu_lora/fused.py`) taking the batches it serves.
"""

import dataclasses
import math

import pytest
import torch
from vllm.lora.ops import torch_ops as vllm_ops

from t2l_vllm.cpu_lora import fused as fused_op
from t2l_vllm.cpu_lora import grouped_ops as lora_ops
from t2l_vllm.cpu_lora import packed as packed_lora

TOL = {torch.float32: 1e-5, torch.bfloat16: 2e-2, torch.float16: 2e-2}


@pytest.fixture(autouse=True, params=["torch", "fused"])
def lora_path(request, monkeypatch):
    """T2L_VLLM_FUSED off, then on. The compiled op must be there: scripts/install.sh builds it."""
    monkeypatch.setenv("T2L_VLLM_FUSED", "1" if request.param == "fused" else "0")
    if request.param == "fused":
        assert fused_op.op() is not None, "compiled LoRA op not built: run .venv/bin/python -m t2l_vllm.cpu_lora.fused"
    return request.param


def layout(gen, num_tokens, num_slots, with_base, kind):
    """Per-token adapter indices: 'one' adapter, 'mixed' random, or 'segments' (contiguous runs)."""
    lo = -1 if with_base else 0
    if kind == "one":
        return torch.full((num_tokens,), int(torch.randint(0, num_slots, (1,), generator=gen)))
    if kind == "mixed":
        return torch.randint(lo, num_slots, (num_tokens,), generator=gen)
    lens = torch.randint(1, 6, (num_tokens,), generator=gen)
    seg = torch.randint(lo, num_slots, (num_tokens,), generator=gen)
    return torch.repeat_interleave(seg, lens)[:num_tokens]


def segments(token_idx):
    """Per-token indices -> (seq_start, seq_len, per-seq index) like vLLM's prefill metadata."""
    change = torch.ones(len(token_idx), dtype=torch.bool)
    change[1:] = token_idx[1:] != token_idx[:-1]
    starts = change.nonzero().squeeze(1)
    lens = torch.diff(torch.cat([starts, torch.tensor([len(token_idx)])]))
    return starts, lens, token_idx[starts]


def check(ours_out, ref_out, before, idx, dtype):
    has = idx >= 0
    tol = TOL[dtype]
    torch.testing.assert_close(ours_out[has], ref_out[has], rtol=tol, atol=tol)
    assert torch.equal(ours_out[~has], before[~has]), "tokens without an adapter must be untouched"


CASES = [
    (dtype, n_tok, slots, rank, kind, base, four_d)
    for dtype in (torch.float32, torch.bfloat16)
    for n_tok, slots, rank in ((1, 1, 8), (7, 3, 8), (64, 8, 16), (33, 32, 8))
    for kind in ("one", "mixed", "segments")
    for base in (False, True)
    for four_d in (True, False)
    if not (kind == "one" and base)
]


@pytest.mark.parametrize("dtype, n_tok, slots, rank, kind, base, four_d", CASES)
def test_shrink_and_expand_match_vllm(dtype, n_tok, slots, rank, kind, base, four_d):
    gen = torch.Generator().manual_seed(n_tok * 131 + slots * 7 + rank)
    d_in, d_out = 48, 40
    idx = layout(gen, n_tok, slots, base, kind)
    x = torch.randn(n_tok, d_in, generator=gen).to(dtype)
    a = torch.randn(slots, rank, d_in, generator=gen).to(dtype)
    b = torch.randn(slots, d_out, rank, generator=gen).to(dtype)
    if four_d:
        a, b = a.unsqueeze(1), b.unsqueeze(1)

    # shrink into a float32 buffer (vLLM's default), zero like the punica wrapper makes it
    ours_buf, ref_buf = torch.zeros(n_tok, rank), torch.zeros(n_tok, rank)
    lora_ops.bgmv_shrink(x, a, ours_buf, idx, 0.5)
    vllm_ops.bgmv_shrink(x, a, ref_buf, idx, 0.5)
    check(ours_buf, ref_buf, torch.zeros(n_tok, rank), idx, torch.float32)

    starts, lens, seg_idx = segments(idx)
    sg_buf = torch.zeros(n_tok, rank)
    lora_ops.sgmv_shrink(x, a, sg_buf, starts, lens, seg_idx, len(lens), int(lens.max()), n_tok, 0.5)
    assert torch.equal(sg_buf, ours_buf)

    # expand, adding onto an output that already holds the base layer's result
    y0 = torch.randn(n_tok, d_out + 3, generator=gen).to(dtype)  # wider than the adapter: model padding
    for add in (True, False):
        ours_y, ref_y = y0.clone(), y0.clone()
        lora_ops.bgmv_expand(ref_buf, b, ours_y, idx, add_inputs=add)
        vllm_ops.bgmv_expand(ref_buf, b, ref_y, idx, add_inputs=add)
        check(ours_y, ref_y, y0, idx, dtype)
        sg_y = y0.clone()
        lora_ops.sgmv_expand(ref_buf, b, sg_y, starts, lens, seg_idx, len(lens), int(lens.max()), n_tok, add_inputs=add)
        assert torch.equal(sg_y, ours_y)

    # expand into one slice of a packed projection (qkv / gate_up)
    offset = 5
    for add in (True, False):
        ours_y, ref_y = y0.clone(), y0.clone()
        width = d_out - 10
        b_slice = b[..., :width, :]
        lora_ops.bgmv_expand_slice(ref_buf, b_slice, ours_y, idx, offset, width, add_inputs=add)
        vllm_ops.bgmv_expand_slice(ref_buf, b_slice, ref_y, idx, offset, width, add_inputs=add)
        check(ours_y, ref_y, y0, idx, dtype)
        # columns outside the slice are never touched
        outside = torch.ones(d_out + 3, dtype=torch.bool)
        outside[offset : offset + width] = False
        assert torch.equal(ours_y[:, outside], y0[:, outside])
        sg_y = y0.clone()
        lora_ops.sgmv_expand_slice(
            ref_buf, b_slice, sg_y, starts, lens, seg_idx, len(lens), int(lens.max()), n_tok, offset, width, add_inputs=add
        )
        assert torch.equal(sg_y, ours_y)


def test_no_adapter_at_all_is_a_no_op():
    x, a = torch.randn(5, 16), torch.randn(2, 1, 8, 16)
    buf = torch.zeros(5, 8)
    lora_ops.bgmv_shrink(x, a, buf, torch.full((5,), -1), 1.0)
    assert torch.count_nonzero(buf) == 0


def test_vllm_ops_send_base_tokens_through_the_last_slot():
    """Documents the vLLM bug these ops fix: index -1 picks weights[-1]."""
    x, a = torch.ones(2, 4), torch.stack([torch.zeros(8, 4), torch.ones(8, 4)])
    buf = torch.zeros(2, 8)
    vllm_ops.bgmv_shrink(x, a, buf, torch.tensor([0, -1]), 1.0)
    assert torch.count_nonzero(buf[1]) == 8
    buf.zero_()
    lora_ops.bgmv_shrink(x, a, buf, torch.tensor([0, -1]), 1.0)
    assert torch.count_nonzero(buf) == 0


def test_installer_patches_and_respects_switch(monkeypatch):
    from vllm.lora.punica_wrapper import punica_cpu

    from t2l_vllm.cpu_lora import vllm_install as vllm_cpu_lora

    from vllm.lora.model_manager import LoRAModelManager
    from vllm.platforms.cpu import CpuPlatform

    if getattr(punica_cpu, "_t2l_installed", False):
        pytest.skip("already installed in this process by the general plugin")
    saved = {n: getattr(punica_cpu, n) for n in lora_ops.OPS}
    wrapper = punica_cpu.PunicaWrapperCPU
    methods = ("update_metadata", "add_lora_linear", "add_lora_logits", "_t2l_plan", "_t2l_original_linear")
    saved_methods = {n: wrapper.__dict__.get(n) for n in methods}
    saved_activate = LoRAModelManager.__dict__["activate_adapter"]
    saved_platform = CpuPlatform.__dict__["check_and_update_config"]

    def restore_methods():
        for n, f in saved_methods.items():
            if f is not None:
                setattr(wrapper, n, f)
            elif n in wrapper.__dict__:
                delattr(wrapper, n)  # it was inherited: drop our override

    try:
        monkeypatch.setenv("T2L_VLLM_LORA_OPS", "vllm")
        assert vllm_cpu_lora.install() is False
        assert punica_cpu.bgmv_shrink is saved["bgmv_shrink"]
        monkeypatch.setenv("T2L_VLLM_LORA_OPS", "t2l")
        assert vllm_cpu_lora.install() is True
        assert punica_cpu.bgmv_shrink is not saved["bgmv_shrink"]
        assert wrapper.__dict__.get("add_lora_linear") is not saved_methods["add_lora_linear"]
        assert CpuPlatform.__dict__["check_and_update_config"] is not saved_platform
        CpuPlatform.check_and_update_config = saved_platform
        monkeypatch.setattr("t2l_vllm.cpu_lora.vllm_install._vllm_version", lambda: "0.99.0")
        punica_cpu._t2l_installed = False
        for n, f in saved.items():
            setattr(punica_cpu, n, f)
        restore_methods()
        assert vllm_cpu_lora.install() is False
        assert punica_cpu.bgmv_shrink is saved["bgmv_shrink"]
        assert wrapper.__dict__.get("add_lora_linear") is saved_methods["add_lora_linear"]
        assert CpuPlatform.__dict__["check_and_update_config"] is saved_platform
    finally:
        for n, f in saved.items():
            setattr(punica_cpu, n, f)
        restore_methods()
        LoRAModelManager.activate_adapter = saved_activate
        CpuPlatform.check_and_update_config = saved_platform
        punica_cpu._t2l_installed = False


def packed_case(dtype, kind, seed=7, n_tok=40, slots=6):
    """A packed qkv layer (rank 8, slots >= 6) and per-token indices of the given layout."""
    gen = torch.Generator().manual_seed(seed)
    rank, d_in = 8, 32
    output_slices = (24, 8, 8)
    if kind == "skewed":  # one long run and a few one-token runs
        idx = torch.cat([torch.full((n_tok - 6,), 2), torch.tensor([0, 1, -1, 3, 4, 5])])
    elif kind == "round-robin":  # decode-like: every token its own run, some without adapter
        idx = torch.tensor([(i % (slots + 1)) - 1 for i in range(n_tok)])
    else:
        idx = layout(gen, n_tok, slots, True, kind)
    x = torch.randn(n_tok, d_in, generator=gen).to(dtype)
    a_stacks = tuple(torch.randn(slots, 1, rank, d_in, generator=gen).to(dtype) for _ in output_slices)
    b_stacks = tuple(torch.randn(slots, 1, size, rank, generator=gen).to(dtype) for size in output_slices)
    a_stacks[1][1].zero_()  # slot 1 has no weights for the middle slice (an untargeted module)
    b_stacks[1][1].zero_()
    a_stacks[0][4].zero_()  # slot 4 has no weights for the first slice
    b_stacks[2][5].zero_()  # slot 5: A but no B for the last slice
    y0 = torch.randn(n_tok, sum(output_slices), generator=gen).to(dtype)
    return idx, x, a_stacks, b_stacks, output_slices, y0


def vllm_linear(idx, x, a_stacks, b_stacks, output_slices, y0, scale):
    """vLLM's CPU add_lora_linear: float32 shrink buffer per slice, then expand-slice."""
    ref, offset = y0.clone(), 0
    for a, b, size in zip(a_stacks, b_stacks, output_slices):
        buf = torch.zeros(len(idx), a.shape[-2])
        vllm_ops.bgmv_shrink(x, a, buf, idx, scale)
        vllm_ops.bgmv_expand_slice(buf, b, ref, idx, offset, size, add_inputs=True)
        offset += size
    return ref


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind", ["one", "round-robin", "mixed", "segments", "skewed"])
@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("scale", [1.0, 0.25])
@pytest.mark.parametrize("qv", [False, True])
def test_packed_lora_linear_matches_vllm_shrink_then_expand(dtype, kind, dense, scale, qv):
    """Both per-layer paths (masked dense GEMM, GEMM pair per run) == vLLM's add_lora_linear.
    qv: no slot targets the middle slice (k_proj), so the slice-major expand skips its columns."""
    idx, x, a_stacks, b_stacks, output_slices, y0 = packed_case(dtype, kind)
    if qv:
        a_stacks[1].zero_()
        b_stacks[1].zero_()
    ref = vllm_linear(idx, x, a_stacks, b_stacks, output_slices, y0, scale)
    plan = dataclasses.replace(packed_lora.BatchPlan.from_indices(idx), dense=dense, gathered=False)
    ours = y0.clone()
    packed_lora.lora_linear(x, ours, a_stacks, b_stacks, output_slices, scale, plan, packed_lora.PackedCache())
    check(ours, ref, y0, idx, dtype)


def test_batch_plan_picks_dense_for_short_runs_and_runs_for_long_ones():
    decode = packed_lora.BatchPlan.from_indices(torch.tensor([0, 1, 2, 3, -1, 0, 1, 2]))
    assert decode.dense and decode.slots == (0, 1, 2, 3)
    assert decode.runs[:2] == ((0, 0, 1), (1, 1, 2)) and all(slot >= 0 for slot, _, _ in decode.runs)
    run = packed_lora.RUN_COST  # two adapters, each one run this long: the GEMM pairs win
    prefill = packed_lora.BatchPlan.from_indices(torch.tensor([3] * run + [-1] * 5 + [1] * run))
    assert not prefill.dense
    assert prefill.runs == ((3, 0, run), (1, run + 5, 2 * run + 5)) and prefill.slots == (1, 3)
    assert packed_lora.BatchPlan.from_indices(torch.full((4,), -1)).slots == ()
    mask = decode.mask((1, 2), 3, 0.5, torch.float32)
    assert mask.shape == (8, 6)
    assert torch.equal(mask[1], torch.tensor([0.5] * 3 + [0.0] * 3)) and torch.equal(mask[4], torch.zeros(6))


def test_packed_layer_drops_dead_slices_and_slots():
    idx, x, a_stacks, b_stacks, output_slices, y0 = packed_case(torch.float32, "mixed")
    for stack in (a_stacks[0], b_stacks[0], a_stacks[2], b_stacks[2]):
        stack.zero_()  # only the middle slice (columns 24..32) is targeted
    for stack in (a_stacks[1], b_stacks[1]):
        stack[3].zero_()  # slot 3 has no weights at all
    layer = packed_lora.PackedLayer.build(a_stacks, b_stacks, output_slices, torch.float32)
    assert layer.cols == (24, 32) and layer.a.shape == (6, 8, 32) and layer.b.shape == (6, 8, 8)
    assert layer.live == (True, False, True, False, True, True)  # slot 1's middle slice was zeroed in packed_case
    a_stacks[1].zero_()  # the middle slice loses its A too: no slot has weights left
    assert packed_lora.PackedLayer.build(a_stacks, b_stacks, output_slices, torch.float32) is None


def test_packed_cache_serves_stale_weights_until_told():
    """The installer reports every slot write; this pins why it must."""
    idx, x, a_stacks, b_stacks, output_slices, y0 = packed_case(torch.float32, "round-robin")
    plan, cache = packed_lora.BatchPlan.from_indices(idx), packed_lora.PackedCache()
    first = y0.clone()
    packed_lora.lora_linear(x, first, a_stacks, b_stacks, output_slices, 1.0, plan, cache)
    b_stacks[0].mul_(2)
    again = y0.clone()
    packed_lora.lora_linear(x, again, a_stacks, b_stacks, output_slices, 1.0, plan, cache)
    assert torch.equal(again, first)
    cache.clear()
    again = y0.clone()
    packed_lora.lora_linear(x, again, a_stacks, b_stacks, output_slices, 1.0, plan, cache)
    check(again, vllm_linear(idx, x, a_stacks, b_stacks, output_slices, y0, 1.0), y0, idx, torch.float32)


def assert_same_layer(got, built):
    assert got.live == built.live and got.pieces == built.pieces and got.slices == built.slices
    assert got.cols == built.cols and torch.equal(got.a, built.a) and torch.equal(got.b, built.b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_written_slot_is_reread_alone_and_matches_a_rebuild(dtype):
    """`slots_written`: the layer re-reads only that slot, in place, to the bytes a full rebuild lays
    out (new weights, a slot emptied, a slot gaining weights), on every path, including copies
    derived from the layer (float32 small-batch factors, selections, gathered factors)."""
    idx, x, a_stacks, b_stacks, output_slices, y0 = packed_case(dtype, "round-robin")
    for stack in (a_stacks[1], b_stacks[1]):
        stack.zero_()  # q/v adapters: no slot has k_proj weights
    cache, gen = packed_lora.PackedCache(), torch.Generator().manual_seed(3)
    plans = {
        "runs": dataclasses.replace(packed_lora.BatchPlan.from_indices(idx), dense=False, gathered=False),
        "dense": dataclasses.replace(packed_lora.BatchPlan.from_indices(idx), dense=True, gathered=False),
        "gathered": gathered_plan(idx),
        "small": packed_lora.BatchPlan.from_indices(idx[:2]),
    }

    def run_all():
        for name, plan in plans.items():
            n = plan.indices.shape[0]
            ours = y0[:n].clone()
            assert packed_lora.lora_linear(x[:n], ours, a_stacks, b_stacks, output_slices, 0.5, plan, cache)
            check(ours, vllm_linear(idx[:n], x[:n], a_stacks, b_stacks, output_slices, y0[:n], 0.5), y0[:n],
                  idx[:n], dtype)

    run_all()
    before = cache.layer(a_stacks, b_stacks, output_slices, dtype)
    assert before.slices == (0, 2)
    for slot, new_a, new_b in ((2, True, True), (0, False, False), (4, True, True)):
        for i in (0, 2):
            a_stacks[i][slot] = torch.randn(a_stacks[i][slot].shape, generator=gen).to(dtype) if new_a else 0
            b_stacks[i][slot] = torch.randn(b_stacks[i][slot].shape, generator=gen).to(dtype) if new_b else 0
        fused_before = dict(cache._fused)
        cache.slots_written([slot])
        layer = cache.layer(a_stacks, b_stacks, output_slices, dtype)
        assert layer.a is before.a, "re-read in place, not rebuilt"
        built = packed_lora.PackedLayer.build(a_stacks, b_stacks, output_slices, dtype)
        assert_same_layer(layer, built)
        assert layer.live[slot] == new_a
        if fused_before:  # the compiled op's B blocks: the written slot re-read in place too; A is the layer's
            factors = cache.fused_factors(layer)
            assert factors.a is layer.a
            assert any(factors.b is old[1].b for old in fused_before.values()), "fused factors re-read, not rebuilt"
            fresh = packed_lora.PackedCache().fused_factors(built)
            assert torch.equal(factors.a, fresh.a) and torch.equal(factors.b, fresh.b)
            assert factors == dataclasses.replace(fresh, a=factors.a, b=factors.b)  # columns and live slots too
        run_all()


def test_a_written_slot_with_a_new_slice_rebuilds_the_layer():
    """A slot gaining weights in a slice no slot had (k_proj here) changes the layout: rebuilt."""
    idx, x, a_stacks, b_stacks, output_slices, y0 = packed_case(torch.float32, "round-robin")
    for stack in (a_stacks[1], b_stacks[1]):
        stack.zero_()
    cache = packed_lora.PackedCache()
    before = cache.layer(a_stacks, b_stacks, output_slices, torch.float32)
    assert before.slices == (0, 2)
    a_stacks[1][3] = 1.0
    b_stacks[1][3] = 0.5
    cache.slots_written([3])
    layer = cache.layer(a_stacks, b_stacks, output_slices, torch.float32)
    assert layer.slices == (0, 1, 2) and layer.a is not before.a
    assert_same_layer(layer, packed_lora.PackedLayer.build(a_stacks, b_stacks, output_slices, torch.float32))
    ours = y0.clone()
    plan = packed_lora.BatchPlan.from_indices(idx)
    packed_lora.lora_linear(x, ours, a_stacks, b_stacks, output_slices, 1.0, plan, cache)
    check(ours, vllm_linear(idx, x, a_stacks, b_stacks, output_slices, y0, 1.0), y0, idx, torch.float32)


def test_a_layer_without_weights_stays_empty_until_a_slot_gets_some():
    _, _, a_stacks, b_stacks, output_slices, _ = packed_case(torch.float32, "one")
    for stack in a_stacks + b_stacks:
        stack.zero_()
    cache = packed_lora.PackedCache()
    assert cache.layer(a_stacks, b_stacks, output_slices, torch.float32) is None
    cache.slots_written([0])  # written with zeros: still nothing to add
    assert cache.layer(a_stacks, b_stacks, output_slices, torch.float32) is None
    a_stacks[2][1], b_stacks[2][1] = 1.0, 2.0
    cache.slots_written([1])
    layer = cache.layer(a_stacks, b_stacks, output_slices, torch.float32)
    assert layer is not None and layer.slices == (2,) and layer.live == (False, True, False, False, False, False)


def test_a_batch_without_adapters_is_untouched_and_packs_nothing():
    """Every token -1 (a step with no adapter request): y stays as it is, and no layer is packed
    or looked up (the early return that keeps a LoRA engine's plain steps cheap)."""
    idx, x, a_stacks, b_stacks, output_slices, y0 = packed_case(torch.bfloat16, "round-robin")
    plan, cache, ours = packed_lora.BatchPlan.from_indices(torch.full_like(idx, -1)), packed_lora.PackedCache(), y0.clone()
    assert packed_lora.lora_linear(x, ours, a_stacks, b_stacks, output_slices, 0.5, plan, cache)
    assert torch.equal(ours, y0)
    assert not cache._layers and not cache._fused_by_key
    short = packed_lora.BatchPlan.from_indices(torch.full((3,), -1))  # a plan for other tokens: not ours to take
    assert not packed_lora.lora_linear(x, ours, a_stacks, b_stacks, output_slices, 0.5, short, cache)


def test_nonzero_follows_written_slots():
    """The LM-head check: per-slot flags, updated for the slots written."""
    weights = torch.zeros(4, 1, 16, 8)
    cache = packed_lora.PackedCache()
    assert not cache.nonzero(weights)
    weights[2, 0, 3, 1] = 1.0
    cache.slots_written([2])
    assert cache.nonzero(weights)
    weights[2].zero_()
    cache.slots_written([2])
    assert not cache.nonzero(weights)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("n_tok", [1, 2, packed_lora.SMALL_TOKENS, packed_lora.SMALL_TOKENS + 1])
@pytest.mark.parametrize("dense", [False, True])
def test_small_batches_match_vllm_shrink_then_expand(dtype, n_tok, dense, lora_path):
    """The small-batch path (float32 factors for bf16/fp16 layers, up to SMALL_TOKENS tokens) == vLLM's ops."""
    idx, x, a_stacks, b_stacks, output_slices, y0 = packed_case(dtype, "round-robin")
    idx, x, y0 = idx[:n_tok].clone(), x[:n_tok].clone(), y0[:n_tok].clone()
    idx[0] = 2  # at least one token with a live adapter
    ref = vllm_linear(idx, x, a_stacks, b_stacks, output_slices, y0, 0.5)
    plan = dataclasses.replace(packed_lora.BatchPlan.from_indices(idx), dense=dense, gathered=False)
    cache = packed_lora.PackedCache()
    ours = y0.clone()
    assert packed_lora.lora_linear(x, ours, a_stacks, b_stacks, output_slices, 0.5, plan, cache)
    check(ours, ref, y0, idx, dtype)
    assert ours.dtype == dtype
    small = n_tok <= packed_lora.SMALL_TOKENS and dtype != torch.float32
    fused = lora_path == "fused" and packed_lora._fused_serves(plan)
    # the float32 copies exist exactly when a small-batch path ran (one adapter: that slot's only)
    assert bool(cache._float or cache._slots) == (small and not fused)
    assert bool(cache._fused) == fused


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("n_tok", [1, 2, packed_lora.SMALL_TOKENS, packed_lora.ONE_ADAPTER_TOKENS])
@pytest.mark.parametrize("slot", [0, 1, 3, 4, 5])
@pytest.mark.parametrize("qv", [False, True])
def test_one_adapter_small_batches_match_vllm(dtype, n_tok, slot, qv, lora_path):
    """Every token through one adapter (one decode stream): the per-slot float32 factors == vLLM's
    ops, for slots without weights in some slice (1, 4), A without B (5), and q/v-only layers."""
    idx, x, a_stacks, b_stacks, output_slices, y0 = packed_case(dtype, "one", n_tok=n_tok)
    if qv:
        a_stacks[1].zero_()
        b_stacks[1].zero_()
    idx = torch.full((n_tok,), slot)
    plan, cache, ours = packed_lora.BatchPlan.from_indices(idx), packed_lora.PackedCache(), y0.clone()
    assert packed_lora.lora_linear(x, ours, a_stacks, b_stacks, output_slices, 0.5, plan, cache)
    check(ours, vllm_linear(idx, x, a_stacks, b_stacks, output_slices, y0, 0.5), y0, idx, dtype)
    if lora_path == "fused":
        assert not cache._slots and not cache._float
    else:
        assert list(cache._slots.values())[0][1].keys() == {slot} and not cache._float


def test_one_adapter_path_stops_at_its_token_limit():
    n_tok = packed_lora.ONE_ADAPTER_TOKENS + 1
    idx, x, a_stacks, b_stacks, output_slices, y0 = packed_case(torch.bfloat16, "one", n_tok=n_tok)
    idx = torch.full((n_tok,), 3)
    plan, cache, ours = packed_lora.BatchPlan.from_indices(idx), packed_lora.PackedCache(), y0.clone()
    assert packed_lora.lora_linear(x, ours, a_stacks, b_stacks, output_slices, 1.0, plan, cache)
    check(ours, vllm_linear(idx, x, a_stacks, b_stacks, output_slices, y0, 1.0), y0, idx, torch.bfloat16)
    assert not cache._slots and not cache._float  # the run path on bf16 factors


def test_one_adapter_path_skips_a_slot_without_weights():
    idx, x, a_stacks, b_stacks, output_slices, y0 = packed_case(torch.bfloat16, "one", n_tok=2)
    for stack in a_stacks:
        stack[2].zero_()
    plan, cache, ours = packed_lora.BatchPlan.from_indices(torch.tensor([2, 2])), packed_lora.PackedCache(), y0.clone()
    assert packed_lora.lora_linear(x, ours, a_stacks, b_stacks, output_slices, 1.0, plan, cache)
    assert torch.equal(ours, y0) and not cache._slots


def gathered_plan(idx):
    """The plan for `idx`, forced onto the gathered path (per-token factors)."""
    plan = packed_lora.BatchPlan.from_indices(idx)
    return dataclasses.replace(plan, dense=True, gathered=True, key=tuple(idx.tolist()))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("n_tok", [1, 2, 5, 16, 33, 64])
@pytest.mark.parametrize("slots", [6, 32])
@pytest.mark.parametrize("kind", ["one", "round-robin", "mixed", "skewed"])
@pytest.mark.parametrize("scale", [1.0, 0.25])
@pytest.mark.parametrize("qv", [False, True])
def test_gathered_path_matches_vllm_shrink_then_expand(dtype, n_tok, slots, kind, scale, qv, lora_path):
    """Per-token float32 factors == vLLM's add_lora_linear: -1 tokens, dead slices and slots included.
    qv: no slot targets the middle slice (k_proj)."""
    if kind == "skewed" and n_tok < 6:
        pytest.skip("the skewed layout needs 6 tokens")
    case = packed_case(dtype, kind, seed=n_tok + slots, n_tok=n_tok, slots=slots)
    idx, x, a_stacks, b_stacks, output_slices, y0 = case
    if qv:
        a_stacks[1].zero_()
        b_stacks[1].zero_()
    ref = vllm_linear(idx, x, a_stacks, b_stacks, output_slices, y0, scale)
    cache, ours = packed_lora.PackedCache(), y0.clone()
    assert packed_lora.lora_linear(x, ours, a_stacks, b_stacks, output_slices, scale, gathered_plan(idx), cache)
    check(ours, ref, y0, idx, dtype)
    gathered = lora_path == "torch" and bool((idx >= 0).any())  # the compiled op takes these batches
    assert ours.dtype == dtype and len(cache._gathered) == int(gathered)


def test_gathered_factors_skip_dead_slices_and_follow_the_plan():
    """B_t holds only live slices' columns; the factors are reused while the indices repeat, and
    rebuilt when they change or after `clear()`; one entry per layer."""
    idx, x, a_stacks, b_stacks, output_slices, y0 = packed_case(torch.bfloat16, "round-robin", slots=6)
    for stack in (a_stacks[1], b_stacks[1]):
        stack.zero_()  # k_proj untargeted, as in a q/v adapter
    cache = packed_lora.PackedCache()
    layer = cache.layer(a_stacks, b_stacks, output_slices, torch.bfloat16)
    assert layer.cols == (0, 40) and layer.pieces == ((0, 24), (32, 8))
    plan = gathered_plan(idx)
    a_t, b_t = cache.gathered(layer, plan)
    assert a_t.shape == (40, 32, 16) and [b.shape for b in b_t] == [(40, 8, 24), (40, 8, 8)]
    assert a_t.dtype == torch.float32 and torch.count_nonzero(a_t[idx < 0]) == 0
    same = gathered_plan(idx.clone())  # the next decode step: a new plan, the same composition
    assert cache.gathered(layer, same)[0] is a_t
    changed = idx.clone()
    changed[0] = 3
    a_new = cache.gathered(layer, gathered_plan(changed))[0]
    assert a_new is not a_t and len(cache._gathered) == 1
    cache.clear()
    assert not cache._gathered


def test_batch_plan_gathers_for_many_adapters_in_short_runs():
    tokens, share = packed_lora.GATHER_TOKENS, packed_lora.GATHER_SHARE
    many = math.ceil(tokens / share)  # the fewest adapters for which `tokens` tokens are gathered
    idx = torch.arange(tokens) % many
    decode = packed_lora.BatchPlan.from_indices(idx)
    assert decode.dense and decode.gathered and decode.key == tuple(idx.tolist())
    few = packed_lora.BatchPlan.from_indices(torch.arange(tokens) % (many - 1))
    assert few.dense and not few.gathered and few.key == ()
    big = packed_lora.BatchPlan.from_indices(torch.arange(tokens + 1))  # one adapter per token, one token too many
    assert big.dense and not big.gathered
    prefill = packed_lora.BatchPlan.from_indices(torch.arange(many).repeat_interleave(packed_lora.RUN_COST))
    assert not prefill.dense and not prefill.gathered


def test_fused_op_refuses_what_it_cannot_compute(lora_path):
    """Bad shapes are a RuntimeError from the op's checks, never a read past a buffer."""
    if lora_path != "fused":
        pytest.skip("the compiled op itself")
    op = fused_op.op()
    y, x = torch.zeros(2, 8), torch.zeros(2, 4)
    a, b = torch.zeros(3, 2, 4), torch.zeros(3, 2 * 8)
    op(y, x, a, b, torch.tensor([0, -1]), [0], [8], [2], 1.0)  # well formed: runs
    with pytest.raises(RuntimeError, match="slot out of range"):
        op(y, x, a, b, torch.tensor([0, 3]), [0], [8], [2], 1.0)
    with pytest.raises(RuntimeError, match="slice outside y"):
        op(y, x, a, b, torch.tensor([0, 0]), [4], [8], [2], 1.0)
    with pytest.raises(RuntimeError, match="do not match"):
        op(y, x, a, b, torch.tensor([0, 0]), [0], [8], [3], 1.0)
    with pytest.raises(RuntimeError, match="in x.s dtype"):
        op(y, x, a.double(), b, torch.tensor([0, 0]), [0], [8], [2], 1.0)

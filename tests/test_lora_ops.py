"""Grouped CPU LoRA ops == vLLM's torch ops, on every token that has an adapter.

Tolerances: float32 rtol/atol 1e-5; bfloat16 / float16 outputs 2e-2 (the sum
order differs: one GEMM per adapter vs a per-token einsum). Tokens with index
-1 must be left exactly as they were (vLLM's ops run them through the last slot).
"""

import pytest
import torch
from vllm.lora.ops import torch_ops as vllm_ops

from t2l_vllm import lora_ops

TOL = {torch.float32: 1e-5, torch.bfloat16: 2e-2, torch.float16: 2e-2}


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

    from t2l_vllm import vllm_cpu_lora

    from vllm.lora.model_manager import LoRAModelManager

    if getattr(punica_cpu, "_t2l_installed", False):
        pytest.skip("already installed in this process by the general plugin")
    saved = {n: getattr(punica_cpu, n) for n in lora_ops.OPS}
    wrapper = punica_cpu.PunicaWrapperCPU
    methods = ("update_metadata", "_shrink_prefill", "_shrink_decode", "_expand_slice_prefill", "_expand_slice_decode")
    saved_methods = {n: wrapper.__dict__.get(n) for n in methods}
    saved_activate = LoRAModelManager.__dict__["activate_adapter"]

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
        assert wrapper.__dict__.get("_shrink_decode") is not saved_methods["_shrink_decode"]
        monkeypatch.setattr("t2l_vllm.vllm_cpu_lora._vllm_version", lambda: "0.99.0")
        punica_cpu._t2l_installed = False
        for n, f in saved.items():
            setattr(punica_cpu, n, f)
        restore_methods()
        assert vllm_cpu_lora.install() is False
        assert punica_cpu.bgmv_shrink is saved["bgmv_shrink"]
        assert wrapper.__dict__.get("_shrink_decode") is saved_methods["_shrink_decode"]
    finally:
        for n, f in saved.items():
            setattr(punica_cpu, n, f)
        restore_methods()
        LoRAModelManager.activate_adapter = saved_activate
        punica_cpu._t2l_installed = False


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind", ["one", "balanced", "mixed", "segments", "skewed"])
@pytest.mark.parametrize("use_live", [False, True])
def test_lora_linear_matches_vllm_shrink_then_expand(dtype, kind, use_live):
    """The fused per-layer path == vLLM's add_lora_linear (fp32 shrink buffer, then expand per slice)."""
    gen = torch.Generator().manual_seed(7)
    n_tok, slots, rank, d_in = 40, 6, 8, 32
    output_slices = (24, 8, 8)  # a packed qkv projection
    if kind == "skewed":  # one big group and a few tiny ones: the per-group loop path
        idx = torch.cat([torch.full((34,), 2), torch.tensor([0, 1, -1, 3, 4, 5])])
    elif kind == "balanced":  # round-robin over slots, some tokens without adapter: the batched-GEMM path
        idx = torch.tensor([(i % (slots + 1)) - 1 for i in range(n_tok)])
    else:
        idx = layout(gen, n_tok, slots, True, kind)
    x = torch.randn(n_tok, d_in, generator=gen).to(dtype)
    a_stacks = tuple(torch.randn(slots, 1, rank, d_in, generator=gen).to(dtype) for _ in output_slices)
    b_stacks = tuple(torch.randn(slots, 1, size, rank, generator=gen).to(dtype) for size in output_slices)
    # slot 1 carries no weights for the middle slice (an untargeted module)
    a_stacks[1][1].zero_()
    b_stacks[1][1].zero_()
    y0 = torch.randn(n_tok, sum(output_slices), generator=gen).to(dtype)

    ref = y0.clone()
    offset = 0
    for a, b, size in zip(a_stacks, b_stacks, output_slices):
        buf = torch.zeros(n_tok, rank)
        vllm_ops.bgmv_shrink(x, a, buf, idx, 0.25)
        vllm_ops.bgmv_expand_slice(buf, b, ref, idx, offset, size, add_inputs=True)
        offset += size

    def live(stack):
        flags = (lora_ops.slot_weights(stack).flatten(1) != 0).any(1).tolist()
        return lambda slot: flags[slot]

    ours = y0.clone()
    groups = lora_ops.TokenGroups.from_indices(idx)
    if kind == "skewed":
        assert groups.padded is None
    elif kind == "balanced":
        assert groups.padded is not None
    lora_ops.lora_linear(x, ours, a_stacks, b_stacks, output_slices, 0.25, groups, live=live if use_live else None)
    check(ours, ref, y0, idx, dtype)

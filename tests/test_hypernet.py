import math

import pytest
import torch

from t2l_vllm.config import EncoderConfig, HypernetConfig
from t2l_vllm.hypernet import HyperLoRA
from t2l_vllm.target_spec import ATTENTION_MODULES, DEFAULT_TARGET_MODULES, MLP_MODULES, target_spec_from_config
from t2l_vllm.hypernet import randomise_heads
from tests.test_target_spec import SMOLLM2

TARGET_SETS = [DEFAULT_TARGET_MODULES, ATTENTION_MODULES, MLP_MODULES, ATTENTION_MODULES + MLP_MODULES]


def make_config(variant="L", modules=DEFAULT_TARGET_MODULES, rank=8, **kw):
    return HypernetConfig(
        target=target_spec_from_config(SMOLLM2, modules),
        encoder=EncoderConfig(dim=48),
        variant=variant,
        rank=rank,
        latent_dim=32,
        head_in_dim=64,
        **kw,
    )


@pytest.mark.parametrize("variant", ["L", "M", "S"])
@pytest.mark.parametrize("modules", TARGET_SETS, ids=lambda m: "+".join(m))
def test_shapes(variant, modules):
    cfg = make_config(variant, modules)
    net = HyperLoRA.initialise(cfg)
    out = net(torch.randn(3, 48))
    assert set(out.factors) == set(modules)
    for m in cfg.target.modules:
        a, b = out.factors[m.name]
        assert a.shape == (3, 30, 8, m.in_features)
        assert b.shape == (3, 30, m.out_features, 8)


@pytest.mark.parametrize("variant", ["L", "M", "S"])
def test_untrained_network_emits_standard_lora_init(variant):
    net = HyperLoRA.initialise(make_config(variant, ATTENTION_MODULES))
    out = net(torch.randn(4, 48))
    for name, (a, b) in out.factors.items():
        assert torch.count_nonzero(b) == 0, "B must be zero: the adapter is a no-op"
        bound = 1 / math.sqrt(a.shape[-1])
        assert a.abs().max() <= bound and a.abs().max() > 0.5 * bound
        # Head weights are zero, so A is the same PEFT init for every description.
        assert torch.equal(a[0], a[3])


@pytest.mark.parametrize("variant", ["L", "M", "S"])
def test_descriptions_change_the_adapter(variant):
    net = randomise_heads(HyperLoRA.initialise(make_config(variant)))
    out = net(torch.randn(2, 48))
    a, b = out.factors["q_proj"]
    assert not torch.allclose(b[0], b[1])
    assert not torch.allclose(a[0], a[1])
    # Different layers get different weights (layer embedding reaches the head).
    assert not torch.allclose(b[0, 0], b[0, 1])


@pytest.mark.parametrize("variant", ["L", "M", "S"])
def test_batched_forward_matches_single(variant):
    net = randomise_heads(HyperLoRA.initialise(make_config(variant, ATTENTION_MODULES))).eval()
    emb = torch.randn(5, 48)
    with torch.no_grad():
        batch = net(emb)
        assert all(torch.equal(batch.factors[m][1], net(emb).factors[m][1]) for m in batch.factors)
        for i in range(5):
            alone = net(emb[i : i + 1])
            for m, (a, b) in batch.factors.items():
                torch.testing.assert_close(a[i], alone.factors[m][0][0], rtol=1e-5, atol=1e-6)
                torch.testing.assert_close(b[i], alone.factors[m][1][0], rtol=1e-5, atol=1e-6)


def test_same_seed_same_weights_and_variant_sizes():
    a = HyperLoRA.initialise(make_config("L"), seed=3)
    b = HyperLoRA.initialise(make_config("L"), seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    sizes = {v: sum(p.numel() for p in HyperLoRA.initialise(make_config(v)).parameters()) for v in "LMS"}
    assert sizes["L"] > sizes["M"] > sizes["S"]


def test_scaling():
    assert make_config(rank=8, alpha=16, use_rslora=True).scaling == pytest.approx(16 / math.sqrt(8))
    assert make_config(rank=8, alpha=16, use_rslora=False).scaling == 2.0


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"variant": "XL"}, "variant 'XL' unknown"),
        ({"rank": 7}, "rank 7 is not one vLLM serves"),
        ({"alpha": 0}, "alpha must be > 0"),
        ({"dropout": 1.0}, "dropout must be in"),
    ],
)
def test_bad_config(kw, match):
    with pytest.raises(ValueError, match=match):
        make_config(**kw)


def test_wrong_embedding_width():
    net = HyperLoRA.initialise(make_config())
    with pytest.raises(ValueError, match=r"expected embeddings of shape \[batch, 48\]"):
        net(torch.randn(2, 47))

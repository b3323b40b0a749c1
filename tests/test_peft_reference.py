"""The emitted folder, loaded by PEFT, computes exactly W x + s * B (A x)."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from t2l_vllm.target_spec import ATTENTION_MODULES, MLP_MODULES


def manual_lora_logits(base_dir, factors, scaling, input_ids):
    """Logits of the base model with s * B(A x) added by forward hooks, from raw hypernet output."""
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    handles = []
    for module, (a, b) in factors.factors.items():
        for layer in range(a.shape[1]):
            parent = "mlp" if module in MLP_MODULES else "self_attn"
            linear = model.get_submodule(f"model.layers.{layer}.{parent}.{module}")
            A, B = a[0, layer], b[0, layer]  # [r, d_in], [d_out, r]

            def hook(mod, inputs, out, A=A, B=B):
                (x,) = inputs  # [batch, seq, d_in]
                return out + scaling * ((x @ A.T) @ B.T)

            handles.append(linear.register_forward_hook(hook))
    with torch.no_grad():
        logits = model(input_ids).logits
    for h in handles:
        h.remove()
    return logits


@pytest.mark.parametrize("variant, modules", [("L", ("q_proj", "v_proj")), ("M", ATTENTION_MODULES + MLP_MODULES), ("S", ("k_proj", "down_proj"))])
@pytest.mark.parametrize("use_rslora", [True, False])
def test_peft_folder_equals_manual_lora(tmp_path, tiny_base_dir, tiny_hypernet_config, variant, modules, use_rslora):
    from dataclasses import replace

    from peft import PeftModel

    from t2l_vllm.checkpoint import save_hypernet
    from t2l_vllm.generator import AdapterGenerator
    from t2l_vllm.hypernet import HyperLoRA
    from t2l_vllm.target_spec import target_spec_from_dir
    from t2l_vllm.hypernet import randomise_heads

    cfg = replace(
        tiny_hypernet_config,
        target=target_spec_from_dir(tiny_base_dir, modules),
        variant=variant,
        use_rslora=use_rslora,
        alpha=32.0,
    )
    net = randomise_heads(HyperLoRA.initialise(cfg, seed=2), std=0.1)
    gen = AdapterGenerator.from_pretrained(save_hypernet(net, tmp_path / "hn"), tiny_base_dir, dtype="float32")
    desc = "Extract the year from the sentence."
    folder = gen.write(gen.generate([desc])[0], tmp_path / "adapters")

    emb = gen.encoder.encode([desc])
    with torch.no_grad():
        factors = gen.hypernet(emb)
    input_ids = torch.tensor([[1, 17, 42, 99, 7, 250, 31]])
    expected = manual_lora_logits(tiny_base_dir, factors, cfg.scaling, input_ids)

    base = AutoModelForCausalLM.from_pretrained(tiny_base_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        base_logits = base(input_ids).logits
    peft_model = PeftModel.from_pretrained(base, str(folder)).eval()
    with torch.no_grad():
        got = peft_model(input_ids).logits
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    # The adapter must matter, or the comparison above proves nothing.
    assert (got - base_logits).abs().max() > 1e-2

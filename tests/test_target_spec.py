import pytest

from t2l_vllm.target_spec import (
    ATTENTION_MODULES,
    MLP_MODULES,
    base_fingerprint,
    target_spec_from_config,
    target_spec_from_dir,
)

SMOLLM2 = {
    "model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
    "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64, "vocab_size": 49152,
}
MISTRAL_7B = {
    "model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32000,
}
QWEN2_05B = {
    "model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
    "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
}
GEMMA_2B = {
    "model_type": "gemma", "hidden_size": 2048, "intermediate_size": 16384, "num_hidden_layers": 18,
    "num_attention_heads": 8, "num_key_value_heads": 1, "head_dim": 256, "vocab_size": 256000,
}


def shapes(cfg, modules):
    spec = target_spec_from_config(cfg, modules)
    return {m.name: (m.in_features, m.out_features) for m in spec.modules}


def test_smollm2_all_projections():
    assert shapes(SMOLLM2, ATTENTION_MODULES + MLP_MODULES) == {
        "q_proj": (576, 576), "k_proj": (576, 192), "v_proj": (576, 192), "o_proj": (576, 576),
        "gate_proj": (576, 1536), "up_proj": (576, 1536), "down_proj": (1536, 576),
    }


@pytest.mark.parametrize(
    "cfg, expected",
    [
        (MISTRAL_7B, {"q_proj": (4096, 4096), "v_proj": (4096, 1024), "down_proj": (14336, 4096)}),
        (QWEN2_05B, {"q_proj": (896, 896), "v_proj": (896, 128), "down_proj": (4864, 896)}),
        # Gemma: heads * head_dim (2048) happens to equal hidden, kv = 1 * 256.
        (GEMMA_2B, {"q_proj": (2048, 2048), "v_proj": (2048, 256), "down_proj": (16384, 2048)}),
    ],
)
def test_families(cfg, expected):
    assert shapes(cfg, ("q_proj", "v_proj", "down_proj")) == expected


def test_from_dir_matches_saved_model(tiny_base_dir):
    from transformers import AutoModelForCausalLM

    spec = target_spec_from_dir(tiny_base_dir, ATTENTION_MODULES + MLP_MODULES)
    model = AutoModelForCausalLM.from_pretrained(tiny_base_dir)
    for layer in range(spec.num_layers):
        for m in spec.modules:
            linear = model.get_submodule(f"model.layers.{layer}.{m.parent}.{m.name}")
            assert (linear.in_features, linear.out_features) == (m.in_features, m.out_features)


def test_peft_keys():
    spec = target_spec_from_config(SMOLLM2, ("q_proj", "down_proj"))
    assert spec.peft_key(3, "q_proj", "A") == "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight"
    assert spec.peft_key(0, "down_proj", "B") == "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"


def test_round_trip_dict():
    spec = target_spec_from_config(SMOLLM2, ATTENTION_MODULES)
    assert type(spec).from_dict(spec.to_dict()) == spec


def test_fingerprint_tracks_shape_fields():
    assert base_fingerprint(SMOLLM2) == base_fingerprint(dict(SMOLLM2, rope_theta=1.0))
    assert base_fingerprint(SMOLLM2) != base_fingerprint(dict(SMOLLM2, num_hidden_layers=29))


@pytest.mark.parametrize(
    "cfg, modules, match",
    [
        (SMOLLM2, ("q_proj", "lm_head"), "unknown target module 'lm_head'"),
        (SMOLLM2, (), "target_modules is empty"),
        (SMOLLM2, ("q_proj", "q_proj"), "duplicate target modules"),
        (dict(SMOLLM2, model_type="gpt2"), ("q_proj",), "unsupported base model type 'gpt2'"),
        ({k: v for k, v in SMOLLM2.items() if k != "intermediate_size"}, ("up_proj",), "intermediate_size"),
    ],
)
def test_bad_specs(cfg, modules, match):
    with pytest.raises(ValueError, match=match):
        target_spec_from_config(cfg, modules)


def test_missing_config(tmp_path):
    with pytest.raises(ValueError, match="has no config.json"):
        target_spec_from_dir(tmp_path)

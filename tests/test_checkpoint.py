import json

import pytest
import torch

from t2l_vllm.checkpoint import (
    check_base_compatible,
    hypernet_digest,
    load_hypernet,
    read_hypernet_config,
    save_hypernet,
)
from t2l_vllm.hypernet import HyperLoRA
from t2l_vllm.target_spec import read_base_config
from t2l_vllm.hypernet import randomise_heads
from tests.test_target_spec import SMOLLM2


def test_round_trip(tmp_path, tiny_hypernet_config):
    net = randomise_heads(HyperLoRA.initialise(tiny_hypernet_config, seed=5))
    path = save_hypernet(net, tmp_path / "ckpt", metadata={"note": "unit test"})
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_hypernet(path)
    assert loaded.config == tiny_hypernet_config
    assert not loaded.training
    assert hypernet_digest(loaded) == hypernet_digest(net)
    assert read_hypernet_config(path)[1] == {"note": "unit test"}
    # Overwriting in place keeps a valid checkpoint with the new weights.
    other = randomise_heads(HyperLoRA.initialise(tiny_hypernet_config, seed=6), seed=1)
    save_hypernet(other, path)
    assert hypernet_digest(load_hypernet(path)) == hypernet_digest(other) != hypernet_digest(net)


def test_digest_changes_with_any_weight(tiny_hypernet_config):
    net = HyperLoRA.initialise(tiny_hypernet_config)
    before = hypernet_digest(net)
    with torch.no_grad():
        net.layer_emb.weight[0, 0] += 1e-3
    assert hypernet_digest(net) != before


def test_bf16_checkpoint_loads_as_float32(tmp_path, tiny_hypernet_config):
    path = save_hypernet(HyperLoRA.initialise(tiny_hypernet_config), tmp_path / "c", dtype=torch.bfloat16)
    assert all(p.dtype == torch.float32 for p in load_hypernet(path).parameters())


def test_corrupt_weights(tmp_path, tiny_hypernet_dir):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((tiny_hypernet_dir / "config.json").read_text())
    data = (tiny_hypernet_dir / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt checkpoint weights"):
        load_hypernet(bad)


def test_corrupt_config(tmp_path, tiny_hypernet_dir):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt checkpoint config"):
        load_hypernet(bad)
    cfg = json.loads((tiny_hypernet_dir / "config.json").read_text())
    cfg["format_version"] = 99
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="format version 99 is not supported"):
        load_hypernet(bad)


def test_weights_not_matching_config(tmp_path, tiny_hypernet_dir, tiny_hypernet_config):
    from dataclasses import replace

    bad = tmp_path / "bad"
    save_hypernet(HyperLoRA.initialise(replace(tiny_hypernet_config, latent_dim=16)), bad)
    (bad / "config.json").write_text((tiny_hypernet_dir / "config.json").read_text())
    with pytest.raises(ValueError, match="has shape"):
        load_hypernet(bad)


def test_missing_files(tmp_path):
    with pytest.raises(ValueError, match="not a hypernetwork checkpoint"):
        load_hypernet(tmp_path)


def test_base_mismatch(tiny_hypernet_dir, tiny_base_dir):
    config, _ = read_hypernet_config(tiny_hypernet_dir)
    check_base_compatible(config, read_base_config(tiny_base_dir))  # the right base: no error
    with pytest.raises(ValueError, match="hypernetwork was made for a llama base .* 30 layers"):
        check_base_compatible(config, SMOLLM2)


def test_generator_refuses_other_base(tmp_path, tiny_hypernet_dir):
    from t2l_vllm.generator import AdapterGenerator

    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps(SMOLLM2))
    with pytest.raises(ValueError, match="Use a checkpoint trained for this base model"):
        AdapterGenerator.from_pretrained(tiny_hypernet_dir, other)

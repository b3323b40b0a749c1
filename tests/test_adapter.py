import json

import pytest
import torch

from t2l_vllm.adapter import (
    HostCopier,
    adapter_id,
    normalize_description,
    validate_adapter_id,
)
from t2l_vllm.cuda_graphs import ShapeGraphs


def test_normalisation():
    assert normalize_description("  Classify\tthe   tweet\n") == "Classify the tweet"
    # NFC: a composed and a decomposed "é" are the same description.
    assert normalize_description("caf\u00e9") == normalize_description("cafe\u0301")


@pytest.mark.parametrize(
    "bad, match",
    [
        ("", "empty or whitespace only"),
        (" \n\t ", "empty or whitespace only"),
        (None, "must be a string, got NoneType"),
        (42, "must be a string, got int"),
        (["a"], "must be a string, got list"),
        ("x" * 4001, "4001 characters long; the limit is 4000"),
    ],
)
def test_bad_descriptions(bad, match):
    with pytest.raises(ValueError, match=match):
        normalize_description(bad)


def test_ids():
    a = adapter_id("Classify tweets", "digest-1")
    assert validate_adapter_id(a) == a
    assert a == adapter_id("Classify tweets", "digest-1")
    assert a != adapter_id("Classify tweets", "digest-2")
    assert a != adapter_id("Classify tweet", "digest-1")
    assert "Classify" not in a


@pytest.mark.parametrize("bad", ["t2l-../../etc", "t2l-" + "A" * 32, "t2l-" + "a" * 31, "lora-" + "a" * 32, None])
def test_invalid_ids(bad):
    with pytest.raises(ValueError, match="invalid adapter id"):
        validate_adapter_id(bad)


def test_generate_and_write(tmp_path, tiny_generator, tiny_hypernet_config):
    desc = ["Classify the sentiment of a tweet.", "Translate the word into French."]
    adapters = tiny_generator.generate(desc)
    assert [a.adapter_id for a in adapters] == [tiny_generator.adapter_id(d) for d in desc]
    assert adapters[0].adapter_id != adapters[1].adapter_id
    t = adapters[0].timings
    assert t.encode_ms > 0 and t.hypernet_ms > 0
    path = tiny_generator.write(adapters[0], tmp_path)
    assert path == tmp_path / adapters[0].adapter_id
    cfg = json.loads((path / "adapter_config.json").read_text())
    assert cfg["r"] == 8 and cfg["lora_alpha"] == 16 and cfg["use_rslora"] is True
    assert cfg["target_modules"] == ["q_proj", "v_proj"]
    from safetensors.torch import load_file

    tensors = load_file(str(path / "adapter_model.safetensors"))
    assert len(tensors) == 2 * 2 * 2  # layers x modules x {A, B}
    a = tensors["base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight"]
    b = tensors["base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"]
    assert a.shape == (8, 128) and b.shape == (64, 8) and a.dtype == torch.float32
    assert torch.count_nonzero(b) > 0
    assert adapters[0].timings.write_ms > 0
    [(again, again_path)] = tiny_generator.generate_to_dir([desc[0]], tmp_path)
    assert again.adapter_id == adapters[0].adapter_id and again_path == path


def test_deterministic_bytes_across_batches(tmp_path, tiny_generator):
    desc = "Count the vowels in the input."
    alone = tiny_generator.write(tiny_generator.generate([desc])[0], tmp_path / "alone")
    batched = tiny_generator.generate(["Sort the list.", desc, "Reverse the string."])[1]
    other = tiny_generator.write(batched, tmp_path / "batched")
    assert (alone / "adapter_model.safetensors").read_bytes() == (other / "adapter_model.safetensors").read_bytes()
    assert (alone / "adapter_config.json").read_bytes() == (other / "adapter_config.json").read_bytes()


def test_generate_rejects_bad_input(tiny_generator):
    with pytest.raises(ValueError, match="list of descriptions"):
        tiny_generator.generate("just a string")
    with pytest.raises(ValueError, match="at least one description"):
        tiny_generator.generate([])
    with pytest.raises(ValueError, match="empty or whitespace only"):
        tiny_generator.generate(["ok", "   "])


def test_host_copier_on_the_cpu_only_casts():
    src = [torch.randn(3, 4), torch.randn(2, 5, 2)]
    out = HostCopier()(src, torch.bfloat16)
    assert [o.shape for o in out] == [s.shape for s in src]
    assert all(o.dtype == torch.bfloat16 and torch.equal(o, s.to(torch.bfloat16)) for o, s in zip(out, src))


def test_cpu_generation_uses_no_cuda_graphs(tiny_generator):
    assert tiny_generator.encoder.graphs is None
    assert tiny_generator.capture_graphs() == 0


def test_shape_graphs_refuse_what_they_cannot_replay():
    with pytest.raises(ValueError, match="CUDA tensors"):
        ShapeGraphs(lambda x: (x * 2,))(torch.ones(2))
    with pytest.raises(ValueError, match="max_graphs"):
        ShapeGraphs(lambda x: (x,), max_graphs=0)

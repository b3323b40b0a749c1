"""Confidence scores, the instructions the prompt path adds, and the policy's choice of path."""

from __future__ import annotations

import asyncio

import pytest
import torch
from prometheus_client import CollectorRegistry

from t2l_vllm.confidence import ConfidenceIndex, load_confidence
from t2l_vllm.generator import AdapterGenerator
from t2l_vllm.serving.config import ServeConfig
from t2l_vllm.serving.instructions import add_instructions
from t2l_vllm.serving.metrics import T2LMetrics
from t2l_vllm.serving.service import AdapterService
from t2l_vllm.serving.store import AdapterStore
from tests.conftest import TINY_TRAINED_DESCRIPTIONS
from tests.test_service import GatedEngine


def test_score_is_the_largest_cosine_and_deterministic():
    index = ConfidenceIndex.from_embeddings(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    scores = index.score(torch.tensor([[3.0, 0.0], [1.0, 1.0], [-1.0, 0.0]]))
    assert scores == [1.0, round(2 ** -0.5, 4), 0.0]
    assert index.score(torch.tensor([[1.0, 1.0]])) == index.score(torch.tensor([[1.0, 1.0]]))
    with pytest.raises(ValueError, match="expected"):
        index.score(torch.zeros(1, 3))


def test_checkpoint_carries_the_index(tiny_hypernet_with_confidence, tiny_hypernet_dir, tiny_base_dir, tmp_path):
    assert load_confidence(tiny_hypernet_dir) is None
    gen = AdapterGenerator.from_pretrained(tiny_hypernet_with_confidence, tiny_base_dir, dtype="float32")
    trained, other = TINY_TRAINED_DESCRIPTIONS[0], "Write a long poem about the sea."
    [a, b] = gen.generate([trained, other])
    assert a.confidence == 1.0 and b.confidence < 1.0
    assert gen.confidence([trained, other]) == [a.confidence, b.confidence]  # same number with or without generating
    # The index is not part of the weights: ids are unchanged.
    plain = AdapterGenerator.from_pretrained(tiny_hypernet_dir, tiny_base_dir, dtype="float32")
    assert plain.digest == gen.digest and plain.confidence([other]) == [None]
    # A corrupt index is a clear error, not a crash later.
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "confidence.safetensors").write_bytes(b"junk")
    with pytest.raises(ValueError, match="corrupt confidence index"):
        load_confidence(tmp_path / "ck")


@pytest.mark.parametrize(
    "path, body, expected",
    [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]},
         {"messages": [{"role": "system", "content": "D"}, {"role": "user", "content": "x"}]}),
        ("/v1/chat/completions", {"messages": [{"role": "system", "content": "Be nice."}, {"role": "user", "content": "x"}]},
         {"messages": [{"role": "system", "content": "D\n\nBe nice."}, {"role": "user", "content": "x"}]}),
        ("/v1/chat/completions/batch", {"messages": [[{"role": "user", "content": "x"}], [{"role": "user", "content": "y"}]]},
         {"messages": [[{"role": "system", "content": "D"}, {"role": "user", "content": "x"}],
                       [{"role": "system", "content": "D"}, {"role": "user", "content": "y"}]]}),
        ("/v1/completions", {"prompt": "x"}, {"prompt": "D\n\nx"}),
        ("/v1/completions", {"prompt": ["x", "y"]}, {"prompt": ["D\n\nx", "D\n\ny"]}),
        ("/v1/responses", {"input": "x", "instructions": "Be nice."}, {"input": "x", "instructions": "D\n\nBe nice."}),
        ("/v1/messages", {"messages": []}, {"messages": [], "system": "D"}),
        ("/v1/messages", {"system": [{"type": "text", "text": "S"}]},
         {"system": [{"type": "text", "text": "D"}, {"type": "text", "text": "S"}]}),
        ("/invocations", {"prompt": "x"}, {"prompt": "D\n\nx"}),
    ],
)
def test_instructions_go_where_each_route_keeps_them(path, body, expected):
    assert add_instructions(path, body, "D") is True
    assert body == expected


def test_token_prompts_have_no_place_for_instructions():
    body = {"prompt": [1, 2, 3]}
    assert add_instructions("/v1/completions", body, "D") is False and body == {"prompt": [1, 2, 3]}


@pytest.mark.parametrize("policy", ["adapter", "prompt", "both"])
def test_policy_applies_below_the_threshold_only(policy, tiny_hypernet_with_confidence, tiny_base_dir, tmp_path):
    gen = AdapterGenerator.from_pretrained(tiny_hypernet_with_confidence, tiny_base_dir, dtype="float32")
    config = ServeConfig(adapter_dir=tmp_path, low_confidence_policy=policy, min_confidence=1.0)
    service = AdapterService(gen, AdapterStore(tmp_path), GatedEngine(), config, T2LMetrics(CollectorRegistry()))

    async def run():
        return (await service.route_for(TINY_TRAINED_DESCRIPTIONS[1]),
                await service.route_for("Something the network never saw."))

    (known_route, known_conf), (new_route, new_conf) = asyncio.run(run())
    assert known_route == "adapter"
    assert new_route == policy
    if policy == "adapter":  # nothing computed up front under this policy
        assert known_conf is None and new_conf is None
    else:
        assert known_conf == 1.0 and new_conf < 1.0
        assert asyncio.run(service.route_for("Something the network never saw.")) == (new_route, new_conf)


def test_config_rejects_unknown_policies(tmp_path):
    with pytest.raises(ValueError, match="low_confidence_policy"):
        ServeConfig(adapter_dir=tmp_path, low_confidence_policy="sometimes")
    with pytest.raises(ValueError, match="min_confidence"):
        ServeConfig(adapter_dir=tmp_path, min_confidence=2.0)

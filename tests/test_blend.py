"""Blended adapters: the stacking math, the request form, and blends served by a real tiny server."""

from __future__ import annotations

import io
import json
import math
import tarfile

import httpx
import openai
import pytest
import torch
from safetensors.torch import load

from t2l_vllm.blend import blend_id, blend_tensors, parse_blend
from tests.server_utils import running_tiny_server

API_KEY = "blend-key"
A, B, C = "Reply with the plural of the noun.", "Answer in uppercase.", "Give the first letter of the word."


def _member(r: int, alpha: float, rslora: bool, d_in=6, d_out=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    tensors = {"m.q.lora_A.weight": torch.randn(r, d_in, generator=g), "m.q.lora_B.weight": torch.randn(d_out, r, generator=g)}
    return tensors, {"r": r, "lora_alpha": alpha, "use_rslora": rslora, "target_modules": ["q"]}


def _delta(tensors, cfg, mod="m.q"):
    s = cfg["lora_alpha"] / (math.sqrt(cfg["r"]) if cfg["use_rslora"] else cfg["r"])
    return s * tensors[f"{mod}.lora_B.weight"].float() @ tensors[f"{mod}.lora_A.weight"].float()


def test_stacked_ranks_sum_the_weighted_updates_exactly():
    m1, m2 = _member(8, 16, True, seed=1), _member(4, 8, False, seed=2)
    tensors, cfg, err = blend_tensors([(*m1, 1.0), (*m2, -0.5)], "base")
    assert cfg["r"] == 12 and cfg["lora_alpha"] == 12 and not cfg["use_rslora"] and err == 0.0
    expected = _delta(*m1) - 0.5 * _delta(*m2)
    torch.testing.assert_close(_delta(tensors, cfg), expected, rtol=1e-5, atol=1e-5)


def test_over_the_rank_limit_the_cut_is_the_best_low_rank_approximation():
    m1, m2 = _member(4, 8, True, seed=3), _member(4, 8, True, seed=4)
    tensors, cfg, err = blend_tensors([(*m1, 1.0), (*m2, 1.0)], "base", max_rank=3)
    full = _delta(*m1) + _delta(*m2)
    s = torch.linalg.svdvals(full)
    best = torch.linalg.matrix_norm(full - _approx(full, 3))
    got = torch.linalg.matrix_norm(full - _delta(tensors, cfg))
    assert cfg["r"] == 3 and got == pytest.approx(float(best), rel=1e-4)
    assert err == pytest.approx(float((s[3:].square().sum() / s.square().sum()).sqrt()), rel=1e-4)


def _approx(m, k):
    u, s, vh = torch.linalg.svd(m)
    return (u[:, :k] * s[:k]) @ vh[:k]


def test_request_form_is_validated_and_canonical():
    a = parse_blend([{"text": A, "weight": 1}, {"text": B, "weight": 0.5}], 100)
    b = parse_blend([{"text": "  " + B, "weight": 0.25}, {"text": A}, {"text": B, "weight": 0.25}], 100)
    assert a == b and blend_id(a, "d") == blend_id(b, "d") != blend_id(a, "other")
    for bad, msg in [([], "non-empty list"), ([{"text": A, "weight": float("nan")}], "finite"),
                     ([{"text": A, "weight": 0}], "non-zero"), ([{"text": A, "extra": 1}], "must be an object"),
                     ([{"text": ""}], "empty"), ([{"text": A}] * 9, "at most 8"), ([{"text": A, "weight": True}], "finite")]:
        with pytest.raises(ValueError, match=msg):
            parse_blend(bad, 100)


# ---- through the server -------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_base_dir, tiny_hypernet_dir):
    tmp = tmp_path_factory.mktemp("blend-server")
    with running_tiny_server(tmp, tiny_base_dir, tiny_hypernet_dir, "--max-lora-rank", "16", api_key=API_KEY) as srv:
        yield srv


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120) as c:
        yield c


def _files(http, aid):
    data = http.get(f"/v1/t2l/adapters/{aid}/download").content
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = {m.name.split("/")[-1]: tar.extractfile(m).read() for m in tar.getmembers()}
    return load(names["adapter_model.safetensors"]), json.loads(names["adapter_config.json"])


def _deltas(tensors, cfg):
    mods = sorted(k[: -len(".lora_A.weight")] for k in tensors if k.endswith(".lora_A.weight"))
    return {m: _delta(tensors, cfg, m) for m in mods}


def test_server_serves_a_blend_whose_update_is_the_weighted_sum(server, http):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0)
    base = client.models.list().data[0].id
    blend = [{"text": A, "weight": 1.0}, {"text": B, "weight": 0.5}]

    def ask(description):
        return client.chat.completions.with_raw_response.create(
            model=base, messages=[{"role": "user", "content": "city"}], max_tokens=6, temperature=0,
            extra_body={"task_description": description})

    r = ask(blend)
    bid = r.headers["x-t2l-adapter-id"]
    assert r.parse().model == bid and r.headers["x-t2l-blend"] == "1"
    assert ask(list(reversed(blend))).headers["x-t2l-adapter-id"] == bid  # canonical: order does not matter

    record = http.get(f"/v1/t2l/adapters/{bid}").json()
    assert record["kind"] == "blend" and record["details"]["rank"] == 16 and record["details"]["relative_error"] == 0
    members = {m["text"]: m for m in record["details"]["members"]}
    a_id, b_id = members[A]["adapter_id"], members[B]["adapter_id"]
    assert {a["id"] for a in http.get("/v1/t2l/adapters").json()["data"]} >= {bid, a_id, b_id}

    # The served files: delta W of the blend == dW_A + 0.5 dW_B, module by module, up to the
    # rounding of the scaled B to the adapters' dtype (bf16: 2**-9 relative per element).
    tensors, _ = _files(http, bid)
    got = _deltas(*_files(http, bid))
    da, db = _deltas(*_files(http, a_id)), _deltas(*_files(http, b_id))
    assert got.keys() == da.keys() and len(got) > 0
    eps = 2.0 ** -8 if next(iter(tensors.values())).dtype == torch.bfloat16 else 1e-5
    for mod in got:
        want = da[mod] + 0.5 * db[mod]
        assert float(torch.linalg.matrix_norm(got[mod] - want) / torch.linalg.matrix_norm(want)) < eps, mod

    # Three rank-8 members exceed --max-lora-rank 16: cut by SVD, the error reported.
    cut = http.post("/v1/t2l/adapters", json={"task_description": [{"text": A}, {"text": B}, {"text": C}]}).json()
    assert cut["kind"] == "blend" and cut["details"]["rank"] == 16 and cut["details"]["stacked_rank"] == 24
    assert 0 < cut["details"]["relative_error"] < 1

    bad = http.post("/v1/chat/completions", json={"model": base, "messages": [{"role": "user", "content": "x"}],
                                                  "task_description": [{"text": A, "weight": "heavy"}]})
    assert bad.status_code == 400 and "finite" in bad.json()["error"]["message"]
    assert http.delete(f"/v1/t2l/adapters/{bid}").json()["deleted"] is True

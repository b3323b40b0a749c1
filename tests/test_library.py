"""The adapter library (POST /v1/t2l/library) through a real tiny server: checks, matching, listing, deletion, restart."""

from __future__ import annotations

import base64
import io
import shutil
import tarfile

import httpx
import openai
import pytest
import torch
from safetensors.torch import load, save

from t2l_vllm.peft_format import adapter_config
from t2l_vllm.routing import Router
from tests.server_utils import running_tiny_server
from tests.test_server import wait_for

API_KEY = "library-key"
LIB = "Translate the English word into French."
PARAPHRASE = "Translate the English word into French, please."
OTHERS = ("Count the vowels in the input.", "Is the review positive or negative?", "Reply with the year only.")


def _adapter(spec, r=8, scale=0.5, seed=0, modules=("q_proj", "v_proj")):
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in range(spec.num_layers):
        for name in modules:
            m = spec.module(name)
            tensors[spec.peft_key(layer, name, "A")] = scale * torch.randn(r, m.in_features, generator=g)
            tensors[spec.peft_key(layer, name, "B")] = scale * torch.randn(m.out_features, r, generator=g)
    return tensors, adapter_config(r, 16.0, True, list(modules), "tiny-llama")


def _body(tensors, config, descriptions=(LIB,), **kw):
    return {"descriptions": list(descriptions), "name": "french-v1", "adapter_config": config,
            "adapter_model": base64.b64encode(save(tensors)).decode(), **kw}


def _cos(generator, a, b):
    e = generator.embed([a, b])
    return float(torch.nn.functional.cosine_similarity(e[0], e[1], dim=0))


@pytest.fixture(scope="module")
def threshold(tiny_generator):
    t = round(_cos(tiny_generator, LIB, PARAPHRASE) - 0.002, 4)
    other = min(OTHERS, key=lambda o: _cos(tiny_generator, LIB, o))
    assert _cos(tiny_generator, LIB, other) < t, "the tiny encoder puts every candidate close to the library text"
    return t, other


def _chat(client, description):
    return client.chat.completions.with_raw_response.create(
        model=client.models.list().data[0].id, messages=[{"role": "user", "content": "cat"}], max_tokens=4,
        temperature=0, extra_body={"task_description": description})


def test_library_adapters_are_checked_matched_listed_deleted_and_survive_a_restart(
        tmp_path, tiny_base_dir, tiny_hypernet_dir, tiny_hypernet_config, tiny_generator, threshold):
    spec = tiny_hypernet_config.target
    t, other = threshold
    flags = ("--library-threshold", str(t), "--max-library-adapter-mib", "1", "--reuse", "off")
    tensors, config = _adapter(spec)
    with running_tiny_server(tmp_path, tiny_base_dir, tiny_hypernet_dir, *flags, api_key=API_KEY) as srv:
        client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key=API_KEY, max_retries=0)
        with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120) as http:
            # Checked on upload: shapes, modules, base model, rank, size, encoding.
            bad_shape = {k: (v[:, :-1].contiguous() if k.endswith("lora_A.weight") else v) for k, v in tensors.items()}
            k_tensors, k_config = _adapter(spec, modules=("q_proj",))
            k_config["target_modules"] = ["k_proj"]
            for body, msg in [
                (_body(bad_shape, config), "has shape"),
                (_body(k_tensors, k_config), "target_modules must be a list among"),
                (_body(tensors, {**config, "base_model_name_or_path": "Qwen/Qwen2-7B"}), "trained for"),
                (_body(*_adapter(spec, r=64)), "over the server's --max-lora-rank"),
                (_body(*_adapter(spec, r=8), descriptions=()), "descriptions"),
                ({**_body(tensors, config), "adapter_model": "%%%"}, "base64"),
                ({**_body(tensors, config), "adapter_model": base64.b64encode(b"x" * (2 << 20)).decode()}, "limit"),
                (_body({k.replace("lora_A", "lora_C"): v for k, v in tensors.items()}, config), "unexpected tensor"),
            ]:
                r = http.post("/v1/t2l/library", json=body)
                assert r.status_code == 400 and msg in r.json()["error"]["message"], (msg, r.text)
            assert http.get("/v1/t2l/library").json()["data"] == []

            record = http.post("/v1/t2l/library", json=_body(tensors, config)).json()
            lib_id = record["id"]
            assert record["kind"] == "library" and record["details"]["name"] == "french-v1"
            assert [a["id"] for a in http.get("/v1/t2l/library").json()["data"]] == [lib_id]
            assert lib_id in {a["id"] for a in http.get("/v1/t2l/adapters").json()["data"]}

            # The stored weights are the uploaded ones.
            with tarfile.open(fileobj=io.BytesIO(http.get(f"/v1/t2l/adapters/{lib_id}/download").content)) as tar:
                stored = load(tar.extractfile(f"{lib_id}/adapter_model.safetensors").read())
            assert stored.keys() == tensors.keys() and all(torch.equal(stored[k], tensors[k]) for k in tensors)

            exact = _chat(client, "translate the English word into French")  # canonical text: same sentence
            assert exact.headers["x-t2l-adapter-id"] == lib_id and exact.parse().model == lib_id
            assert exact.headers["x-t2l-reuse"] == "library"
            para = _chat(client, PARAPHRASE)
            assert para.headers["x-t2l-adapter-id"] == lib_id
            assert float(para.headers["x-t2l-reuse-similarity"]) >= t
            generated = _chat(client, other)
            assert generated.headers["x-t2l-adapter-id"] != lib_id and "x-t2l-reuse" not in generated.headers
            metrics = http.get("/metrics").text
            assert 't2l_adapter_cache_total{result="library_hit"} 2.0' in metrics

    # A restart finds the library adapter again, and serves its descriptions with it. It restarts
    # with a router (routing.py; same weights, so the same adapter ids) that knows `other` as a
    # training description: at threshold -1 every description is above it, and the known task
    # decides. `other` is nearer itself than the library: generated; PARAPHRASE is nearer the library.
    routed = tmp_path / "hypernet-with-router"
    shutil.copytree(tiny_hypernet_dir, routed)
    dim = tiny_hypernet_config.encoder.dim
    Router(torch.zeros(dim, dim), (other,), tiny_generator.embed([other])).save(routed)
    assert _cos(tiny_generator, PARAPHRASE, LIB) > _cos(tiny_generator, PARAPHRASE, other)
    routed_flags = ("--library-threshold", "-1", "--library-margin", "0", "--reuse", "off")
    with running_tiny_server(tmp_path, tiny_base_dir, routed, *routed_flags, api_key=API_KEY) as srv:
        client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key=API_KEY, max_retries=0)
        with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120) as http:
            wait_for(lambda: http.get("/v1/t2l/library").json()["data"], timeout=60)
            assert _chat(client, PARAPHRASE).headers["x-t2l-adapter-id"] == lib_id
            assert _chat(client, other).headers["x-t2l-adapter-id"] != lib_id  # the known task: generated
            why = http.post("/v1/t2l/reuse", json={"task_description": other}).json()["library"]
            assert why["router"] is True and why["match"] is None and why["nearest"][0]["adapter_id"] == lib_id
            assert why["nearest_known"]["description"] == other and why["nearest_known"]["similarity"] > 0.99
            assert http.delete(f"/v1/t2l/library/{lib_id}").json()["deleted"] is True
            assert http.get("/v1/t2l/library").json()["data"] == []
            assert _chat(client, PARAPHRASE).headers["x-t2l-adapter-id"] != lib_id  # generated now
            assert http.delete(f"/v1/t2l/library/{lib_id}").status_code == 404


def test_library_matches_refuse_only_opposites():
    """A library match needs cosine >= threshold and no opposite words; other differences (numbers,
    examples, format words) are what paraphrases by other people look like, unlike for reuse."""
    from t2l_vllm.reuse import lexical_conflict
    from t2l_vllm.serving.library import Library

    near = torch.tensor([1.0, 0.0, 0.0])
    lib = Library(3, 0.9)
    lib.add("t2l-lib", ("Return the smaller of the two numbers.",), near[None])
    para = "Find the minimum of the two values. For instance '15, 51' gives '15'."
    assert lexical_conflict(para, "Return the smaller of the two numbers.") is not None  # reuse would refuse it
    hit = lib.match(para, torch.tensor([0.95, 0.3, 0.0]))
    assert hit is not None and hit.adapter_id == "t2l-lib" and hit.kind == "library"
    assert lib.match("Return the larger of the two numbers.", torch.tensor([0.99, 0.1, 0.0])) is None  # opposites
    assert lib.match(para, torch.tensor([0.5, 0.8, 0.0])) is None  # below the threshold
    strict = Library(3, 0.9, conflict=lexical_conflict)
    strict.add("t2l-lib", ("Return the smaller of the two numbers.",), near[None])
    assert strict.match(para, torch.tensor([0.95, 0.3, 0.0])) is None

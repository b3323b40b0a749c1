"""The real server: `t2l-vllm serve` on loopback, talked to with the OpenAI SDK and raw HTTP.

One server for the module: tiny float32 Llama, a tiny hypernetwork with non-zero
heads, small cache bounds (3 adapters in the engine, 5 on disk) and an API key.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
import time

import httpx
import openai
import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families

from tests.server_utils import ServerProcess, running_tiny_server

API_KEY = "test-key"
MAX_ENGINE, MAX_DISK = 3, 5


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_base_dir, tiny_hypernet_dir):
    tmp = tmp_path_factory.mktemp("server")
    extra = [
        "--max-engine-adapters", str(MAX_ENGINE), "--max-disk-adapters", str(MAX_DISK), "--max-description-chars", "300",
    ]
    with running_tiny_server(tmp, tiny_base_dir, tiny_hypernet_dir, *extra, api_key=API_KEY) as srv:
        yield srv


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0)


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120) as c:
        yield c


def wait_for(probe, timeout: float = 30.0):
    """Poll `probe` until it returns something truthy (a condition, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(0.05)
    raise AssertionError(f"condition not reached within {timeout}s")


def base_name(client) -> str:
    return client.models.list().data[0].id


def metrics(http) -> dict:
    out = {}
    for family in text_string_to_metric_families(http.get("/metrics").text):
        for s in family.samples:
            if s.name.startswith("t2l_"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metric(m: dict, name: str, **labels) -> float:
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def chat(client, description=None, content="Classify: I love it", **kw):
    extra = {"task_description": description} if description is not None else {}
    return client.chat.completions.with_raw_response.create(
        model=base_name(client), messages=[{"role": "user", "content": content}], max_tokens=8,
        temperature=0, extra_body=extra, **kw,
    )


# ---- request contract ------------------------------------------------------------


def test_chat_without_description_is_plain_vllm(client):
    raw = chat(client)
    assert "x-t2l-adapter-id" not in raw.headers
    resp = raw.parse()
    assert resp.model == base_name(client)
    assert resp.choices[0].message.content


def test_chat_with_description(client, tiny_generator):
    desc = "Classify the sentiment of a tweet as positive or negative."
    raw = chat(client, desc)
    expected = tiny_generator.adapter_id(desc)
    assert raw.headers["x-t2l-adapter-id"] == expected
    resp = raw.parse()
    assert resp.model == expected
    assert resp.choices[0].message.content
    # The adapter is listed as a model with the base as parent.
    cards = {m.id: m for m in client.models.list().data}
    assert cards[expected].parent == base_name(client)


def test_streaming_chat_and_completions(client, tiny_generator):
    desc = "Translate the word into French."
    expected = tiny_generator.adapter_id(desc)
    stream = client.chat.completions.create(
        model=base_name(client), messages=[{"role": "user", "content": "house"}], max_tokens=8, stream=True,
        extra_body={"task_description": desc},
    )
    chunks = list(stream)
    assert chunks and all(c.model == expected for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    stream = client.completions.create(
        model=base_name(client), prompt="house", max_tokens=8, stream=True, extra_body={"task_description": desc}
    )
    chunks = list(stream)
    assert chunks and all(c.model == expected for c in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices)


def test_model_id_serves_the_adapter_again(client, tiny_generator):
    desc = "Count the vowels in the input."
    first = client.completions.create(
        model=base_name(client), prompt="hello", max_tokens=8, temperature=0, extra_body={"task_description": desc}
    )
    again = client.completions.create(model=first.model, prompt="hello", max_tokens=8, temperature=0)
    assert again.model == first.model == tiny_generator.adapter_id(desc)
    assert again.choices[0].text == first.choices[0].text


def test_served_output_equals_transformers_peft(client, http, tiny_base_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    desc = "Extract the year from the sentence."
    prompt = "The capital of France is"
    kw = dict(prompt=prompt, max_tokens=10, temperature=0, extra_body={"ignore_eos": True, "return_token_ids": True})
    served = client.completions.create(model=base_name(client), **{**kw, "extra_body": {**kw["extra_body"], "task_description": desc}})
    base = client.completions.create(model=base_name(client), **kw)

    archive = http.get(f"/v1/t2l/adapters/{served.model}/download")
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
        assert sorted(tar.getnames()) == sorted(
            [f"{served.model}/adapter_config.json", f"{served.model}/adapter_model.safetensors"]
        )
        tar.extractall(tmp_path, filter="data")

    tok = AutoTokenizer.from_pretrained(tiny_base_dir)
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_base_dir, dtype=torch.float32), str(tmp_path / served.model)
    ).eval()
    ids = tok(prompt, return_tensors="pt").input_ids
    expected = []
    with torch.no_grad():
        for _ in range(10):
            nxt = int(model(ids).logits[0, -1].argmax())
            expected.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    assert served.choices[0].token_ids == expected
    assert base.choices[0].token_ids != expected  # the adapter really changes the output


# ---- cache and metrics -----------------------------------------------------------


def test_same_description_generates_once(client, http):
    before = metrics(http)
    chat(client, "Reverse the string.")
    chat(client, "Sort the list.")
    mid = metrics(http)
    assert metric(mid, "t2l_adapter_cache_total", result="miss") - metric(before, "t2l_adapter_cache_total", result="miss") == 2
    chat(client, "  Reverse   the string. ")  # same after normalisation
    after = metrics(http)
    assert metric(after, "t2l_adapter_cache_total", result="miss") == metric(mid, "t2l_adapter_cache_total", result="miss")
    assert metric(after, "t2l_adapter_cache_total", result="hit") > metric(mid, "t2l_adapter_cache_total", result="hit")
    gens = metric(after, "t2l_adapter_generation_seconds_count", stage="hypernet")
    assert gens - metric(before, "t2l_adapter_generation_seconds_count", stage="hypernet") == 2


def test_concurrent_identical_requests_generate_once(server, http):
    before = metrics(http)
    desc = "A brand new task nobody asked for before: answer yes or no."

    async def fire():
        ac = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0)
        async with ac:
            model = (await ac.models.list()).data[0].id
            return await asyncio.gather(*[
                ac.completions.create(model=model, prompt=f"q{i}", max_tokens=4, extra_body={"task_description": desc})
                for i in range(12)
            ])

    results = asyncio.run(fire())
    assert len({r.model for r in results}) == 1
    after = metrics(http)
    delta = lambda name, **l: metric(after, name, **l) - metric(before, name, **l)  # noqa: E731
    assert delta("t2l_adapter_cache_total", result="miss") == 1
    assert delta("t2l_adapter_generation_seconds_count", stage="hypernet") == 1
    # Whether the other 11 joined the generation or came after it depends on load
    # (tests/test_service.py pins the join); either way they all found it made.
    assert delta("t2l_adapter_cache_total", result="hit") == 11


def test_eviction_keeps_bounds_and_serves_everything(server, client, http):
    descs = [f"Eviction task number {i}: answer with the {i}th word." for i in range(MAX_DISK + 3)]
    ids = [chat(client, d).parse().model for d in descs]

    async def fire_concurrently():
        ac = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0)
        async with ac:
            model = (await ac.models.list()).data[0].id
            return await asyncio.gather(*[
                ac.completions.create(model=model, prompt="x", max_tokens=4, extra_body={"task_description": d + " again"})
                for d in descs[:6]
            ])

    assert len(asyncio.run(fire_concurrently())) == 6  # more adapters at once than engine slots: all served
    # Adapters busy during the burst are evicted once released, just after the responses went out.
    def within_disk_bound():
        m = metrics(http)
        return m if metric(m, "t2l_adapters_on_disk") <= MAX_DISK else None

    m = wait_for(within_disk_bound)
    assert metric(m, "t2l_adapters_resident") <= MAX_ENGINE
    assert metric(m, "t2l_adapter_evictions_total", tier="engine") > 0
    assert metric(m, "t2l_adapter_evictions_total", tier="disk") > 0
    served_loras = [c.id for c in client.models.list().data if c.id.startswith("t2l-")]
    assert len(served_loras) <= MAX_ENGINE
    on_disk = [p.name for p in server.adapter_dir.iterdir() if p.name.startswith("t2l-")]
    assert len(on_disk) <= MAX_DISK
    # The tmpfs tier mirrors the engine (its evictions run after the responses went out).
    def served():
        return {c.id for c in client.models.list().data if c.id.startswith("t2l-")}

    def in_fast():
        return {p.name for p in server.fast_dir.iterdir() if p.name.startswith("t2l-")}

    assert wait_for(lambda: in_fast() == served())
    assert len(in_fast()) <= MAX_ENGINE
    assert ids[0] not in on_disk and ids[0] not in in_fast()  # the oldest went, files and all
    # An evicted description is simply generated again.
    assert chat(client, descs[0]).parse().model == ids[0]


# ---- admin routes ----------------------------------------------------------------


def test_admin_routes(client, http):
    created = http.post("/v1/t2l/adapters", json={"task_description": "Answer with the opposite word."})
    assert created.status_code == 200, created.text
    info = created.json()
    aid = info["id"]
    assert info["resident"] is True and info["size_bytes"] > 0 and info["description"] == "Answer with the opposite word."
    listed = http.get("/v1/t2l/adapters").json()
    assert listed["object"] == "list" and aid in [a["id"] for a in listed["data"]]
    chat(client, "Answer with the opposite word.")
    shown = http.get(f"/v1/t2l/adapters/{aid}").json()
    assert shown["hits"] >= 2 and shown["last_used"] >= shown["created"]
    deleted = http.delete(f"/v1/t2l/adapters/{aid}")
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert aid not in [m.id for m in client.models.list().data]
    assert http.get(f"/v1/t2l/adapters/{aid}").status_code == 404
    gone = http.post("/v1/completions", json={"model": aid, "prompt": "x", "max_tokens": 2})
    assert gone.status_code == 404 and gone.json()["error"]["type"] == "NotFoundError"


# ---- errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, body, status, param",
    [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "task_description": 5}, 400, "task_description"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "task_description": None}, 400, "task_description"),
        ("/v1/completions", {"prompt": "x", "task_description": ""}, 400, "task_description"),
        ("/v1/completions", {"prompt": "x", "task_description": " \n\t"}, 400, "task_description"),
        ("/v1/completions", {"prompt": "x", "task_description": "y" * 301}, 400, "task_description"),
        ("/v1/completions", {"prompt": "x", "task_description": "ok", "model": "some-other-model"}, 400, "model"),
        ("/v1/completions", {"prompt": "x", "model": "t2l-" + "0" * 32}, 404, "model"),
        ("/v1/completions", {"prompt": "x", "model": "t2l-../../etc/passwd"}, 404, "model"),
        ("/v1/t2l/adapters", {"description": "wrong field"}, 400, "task_description"),
        ("/v1/t2l/adapters", {"task_description": ["a list"]}, 400, "task_description"),
    ],
)
def test_bad_requests(server, http, path, body, status, param):
    r = http.post(path, json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == status and err["param"] == param and err["message"]
    assert server.alive()


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/t2l/adapters"])
def test_malformed_json(server, http, path):
    r = http.post(path, content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["message"]
    assert server.alive()


@pytest.mark.parametrize("method, path", [("GET", "/v1/t2l/adapters/t2l-" + "0" * 32), ("GET", "/v1/t2l/adapters/t2l-nothex/download"),
                                          ("DELETE", "/v1/t2l/adapters/t2l-" + "0" * 32)])
def test_unknown_adapter_ids(server, http, method, path):
    r = http.request(method, path)
    assert r.status_code == 404 and r.json()["error"]["type"] == "NotFoundError"


def test_api_key_guards_new_routes(server):
    assert httpx.get(f"{server.url}/v1/t2l/adapters").status_code == 401
    r = httpx.post(f"{server.url}/v1/completions", json={"prompt": "x", "task_description": "never generated"})
    assert r.status_code == 401
    assert httpx.get(f"{server.url}/health").status_code == 200


PUBLIC_PATHS = {"/health", "/ping", "/metrics"}


def test_every_route_but_health_and_metrics_needs_the_key(server, http):
    """vLLM's own check guards only /v1, /v2, /inference and /cohere; ours guards every route."""
    routes = http.get("/openapi.json").json()["paths"]
    # Mounted only with VLLM_ALLOW_RUNTIME_LORA_UPDATING, refused all the same.
    routes.setdefault("/adapters", {"post": {}})
    routes.setdefault("/adapters/{adapter_name}", {"delete": {}})
    probed = []
    for path, methods in routes.items():
        url = server.url + path.replace("{", "").replace("}", "")  # path parameters get a dummy value
        for method in methods:
            r = httpx.request(method.upper(), url, json={"model": "t2l-" + "0" * 32, "messages": []}, timeout=60)
            if path in PUBLIC_PATHS:
                assert r.status_code != 401, (method, path)
            else:
                assert r.status_code == 401, (method, path, r.status_code, r.text[:200])
                probed.append((method, path))
    assert ("post", "/invocations") in probed and ("post", "/adapters") in probed and len(probed) > 20
    assert httpx.get(f"{server.url}/metrics").status_code == 200
    # A wrong key is no key; the right one passes.
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    assert httpx.post(f"{server.url}/invocations", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert http.post("/invocations", json=body).status_code == 200


def test_routes_that_take_a_model_hold_the_adapter_or_refuse_it(server, http):
    desc = "Reply with one word about the input."
    made = http.post("/v1/t2l/adapters", json={"task_description": desc}).json()["id"]
    # Generation routes go through the held, counted adapter.
    for path, body in [
        ("/invocations", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "task_description": desc}),
        ("/v1/responses", {"model": made, "input": "hi", "max_output_tokens": 4}),
        ("/v1/chat/completions/batch", {"model": made, "messages": [[{"role": "user", "content": "hi"}]], "max_tokens": 2}),
    ]:
        r = http.post(path, json=body)
        assert r.headers.get("x-t2l-adapter-id") == made, (path, r.status_code, r.text[:300])
    # Every other route that takes a model refuses t2l ids and descriptions with a clear 400.
    for path, body in [
        ("/tokenize", {"model": made, "prompt": "hi"}),
        ("/v1/completions/render", {"prompt": "hi", "task_description": desc}),
        ("/v1/load_lora_adapter", {"lora_name": made, "lora_path": "/etc"}),
        ("/adapters", {"name": made, "src": "/etc"}),
    ]:
        r = http.post(path, json=body)
        assert r.status_code == 400 and r.json()["error"]["message"], (path, r.text[:300])
    r = http.request("DELETE", f"/adapters/{made}")
    assert r.status_code == 400
    # A background response would outlive the reference its request holds.
    r = http.post("/v1/responses", json={"model": made, "input": "hi", "background": True, "store": True})
    assert r.status_code == 400 and r.json()["error"]["param"] == "background"
    assert http.get(f"/v1/t2l/adapters/{made}").json()["in_use"] == 0  # every reference was released
    assert server.alive()


def test_several_api_servers_are_refused(tiny_base_dir, tiny_hypernet_dir):
    from tests.conftest import run_python

    for flag in (["--api-server-count", "2"], ["-asc=3"]):
        proc = run_python(["-m", "t2l_vllm.cli", "serve", "--model", str(tiny_base_dir),
                           "--hypernet", str(tiny_hypernet_dir), *flag], timeout=120)
        assert proc.returncode == 2 and "is not supported" in proc.stderr, proc.stderr[-2000:]


def test_generation_failure_is_a_500_and_the_server_survives(server, client, http):
    # Make the durable folder unusable: a file where the folder should be.
    aside = server.adapter_dir.with_name("adapters-aside")
    server.adapter_dir.rename(aside)
    server.adapter_dir.write_text("not a folder")
    try:
        before = metrics(http)
        r = http.post("/v1/completions", json={"prompt": "x", "max_tokens": 2, "task_description": "Doomed task."})
        assert r.status_code == 500
        assert "could not make adapter" in r.json()["error"]["message"]
        assert metric(metrics(http), "t2l_adapter_generation_errors_total") == metric(before, "t2l_adapter_generation_errors_total") + 1
        assert chat(client).parse().choices  # other requests still served
    finally:
        server.adapter_dir.unlink()
        aside.rename(server.adapter_dir)
    assert chat(client, "Doomed task.").parse().model.startswith("t2l-")  # and it works once the disk is back


def test_restart_serves_adapters_by_id(tmp_path, tiny_base_dir, tiny_hypernet_dir):
    env = {"T2L_VLLM_FAST_DIR": str(tmp_path / "fast"), "VLLM_CPU_KVCACHE_SPACE": "1"}
    args = ["--model", str(tiny_base_dir), "--hypernet", str(tiny_hypernet_dir), "--adapter-dir", str(tmp_path / "a"),
            "--dtype", "float32", "--max-model-len", "512", "--enforce-eager"]
    first = ServerProcess(args, env, tmp_path / "first.log").wait_ready()
    try:
        c = openai.OpenAI(base_url=f"{first.url}/v1", api_key="none", max_retries=0)
        made = c.completions.create(model=base_name(c), prompt="hello", max_tokens=6, temperature=0,
                                    extra_body={"task_description": "Survive a restart."})
    finally:
        first.stop()
    assert not (tmp_path / "fast").exists()  # tmpfs is RAM: the server removes its copies at exit
    second = ServerProcess(args, env, tmp_path / "second.log").wait_ready()
    try:
        c = openai.OpenAI(base_url=f"{second.url}/v1", api_key="none", max_retries=0)
        again = c.completions.create(model=made.model, prompt="hello", max_tokens=6, temperature=0)
        assert again.model == made.model
        assert again.choices[0].text == made.choices[0].text
        listed = httpx.get(f"{second.url}/v1/t2l/adapters").json()["data"]
        assert [a["id"] for a in listed] == [made.model]
    finally:
        second.stop()

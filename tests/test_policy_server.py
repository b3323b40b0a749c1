"""The low-confidence policy through a real server: `--low-confidence-policy prompt`.

The tiny hypernetwork's confidence index holds two "trained" descriptions;
`--min-confidence 1.0` sends everything else down the prompt path, so both
paths are exercised deterministically.
"""

from __future__ import annotations

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TINY_TRAINED_DESCRIPTIONS
from tests.server_utils import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_base_dir, tiny_hypernet_with_confidence):
    tmp = tmp_path_factory.mktemp("policy-server")
    args = [
        "--model", str(tiny_base_dir), "--hypernet", str(tiny_hypernet_with_confidence),
        "--adapter-dir", str(tmp / "adapters"), "--fast-dir", str(tmp / "fast"),
        "--low-confidence-policy", "prompt", "--min-confidence", "1.0",
        "--dtype", "float32", "--max-model-len", "512", "--enforce-eager",
    ]
    srv = ServerProcess(args, {"VLLM_CPU_KVCACHE_SPACE": "1"}, tmp / "server.log")
    try:
        yield srv.wait_ready()
    finally:
        srv.stop()


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0)


def ask(client, messages, **extra):
    return client.chat.completions.with_raw_response.create(
        model=client.models.list().data[0].id, messages=messages, max_tokens=8, temperature=0, extra_body=extra,
    )


def test_trained_description_is_served_by_its_adapter(client, server):
    raw = ask(client, [{"role": "user", "content": "cat"}], task_description=TINY_TRAINED_DESCRIPTIONS[1])
    assert raw.headers["x-t2l-served-by"] == "adapter" and raw.headers["x-t2l-confidence"] == "1.0000"
    aid = raw.headers["x-t2l-adapter-id"]
    assert raw.parse().model == aid
    shown = httpx.get(f"{server.url}/v1/t2l/adapters/{aid}").json()
    assert shown["confidence"] == 1.0


def test_low_confidence_description_is_served_as_a_system_message(client, server):
    description = "Write one cheerful sentence about the word."
    user = [{"role": "user", "content": "rain"}]
    raw = ask(client, user, task_description=description)
    assert raw.headers["x-t2l-served-by"] == "prompt"
    assert float(raw.headers["x-t2l-confidence"]) < 1.0
    assert "x-t2l-adapter-id" not in raw.headers
    served = raw.parse()
    base = client.models.list().data[0].id
    assert served.model == base  # honest: the base model answered
    by_hand = ask(client, [{"role": "system", "content": description}, *user]).parse()
    assert served.choices[0].message.content == by_hand.choices[0].message.content
    # No adapter was generated for it.
    assert httpx.get(f"{server.url}/v1/t2l/adapters").json()["data"] == [] or all(
        a["description"] != description for a in httpx.get(f"{server.url}/v1/t2l/adapters").json()["data"]
    )


def test_policy_metrics_carry_no_description_text(client, server):
    ask(client, [{"role": "user", "content": "x"}], task_description="Another unseen task.")
    samples = [s for f in text_string_to_metric_families(httpx.get(f"{server.url}/metrics").text) for s in f.samples
               if s.name.startswith(("t2l_description_confidence", "t2l_requests"))]
    served = {s.labels.get("path"): s.value for s in samples if s.name == "t2l_requests_total"}
    assert served.get("prompt", 0) >= 1
    assert any(s.name == "t2l_description_confidence_count" and s.value >= 1 for s in samples)
    assert all("unseen" not in v for s in samples for v in s.labels.values())

"""The cold path: new descriptions batched onto the generation thread, registered before the durable write.

- the generator's output for a description does not depend on what it was batched with;
- MicroBatcher gathers what arrives together into one job and routes each result
  (and each failure) to its own caller;
- a real tiny server given several new descriptions at once: every request
  succeeds, they are generated in fewer jobs than descriptions, each adapter is
  byte-identical to one generated alone offline, and each has its durable copy
  by the time its request was answered.
"""

from __future__ import annotations

import asyncio
import io
import re
import tarfile
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import torch
from safetensors.torch import load

from t2l_vllm.serving.batcher import MicroBatcher
from tests.server_utils import running_tiny_server

DESCRIPTIONS = [f"Cold path task {i}: answer with the {w} word of the input." for i, w in
                enumerate(["first", "second", "third", "last", "longest", "shortest"])]


# ---- the generator ---------------------------------------------------------------


def test_batched_generation_is_byte_identical_to_unbatched(tiny_generator):
    together = tiny_generator.generate(DESCRIPTIONS[:4])
    for desc, adapter in zip(DESCRIPTIONS[:4], together):
        [alone] = tiny_generator.generate([desc])
        assert alone.adapter_id == adapter.adapter_id
        assert alone.tensors.keys() == adapter.tensors.keys()
        for name, tensor in alone.tensors.items():
            other = adapter.tensors[name]
            assert tensor.dtype == other.dtype and tensor.shape == other.shape
            assert torch.equal(tensor.contiguous().view(torch.uint8), other.contiguous().view(torch.uint8)), name


# ---- the micro-batcher -------------------------------------------------------------


def test_a_description_scored_first_is_encoded_once_and_generates_the_same_bytes(
        tiny_hypernet_with_confidence, tiny_base_dir, monkeypatch):
    """The server scores a new description's confidence, then generates it: one encoder pass, and the
    adapter is the one a generator that never scored it makes."""
    from t2l_vllm.generator import ENCODED_MEMO, AdapterGenerator

    gen = AdapterGenerator.from_pretrained(tiny_hypernet_with_confidence, tiny_base_dir, dtype="float32")
    fresh = AdapterGenerator.from_pretrained(tiny_hypernet_with_confidence, tiny_base_dir, dtype="float32")
    encoded = []
    inner = gen.encoder.encode
    monkeypatch.setattr(gen.encoder, "encode", lambda texts: encoded.extend(texts) or inner(texts))
    desc = "Scored first: answer with the last word."
    [conf] = gen.confidence([desc])
    [made] = gen.generate([desc])
    assert encoded == [desc] and made.confidence == conf
    [expected] = fresh.generate([desc])
    assert made.tensors.keys() == expected.tensors.keys()
    assert all(torch.equal(made.tensors[k], expected.tensors[k]) for k in made.tensors)
    for i in range(ENCODED_MEMO + 1):  # the memo is bounded: the oldest text is encoded again
        gen.embed([f"filler {i}"])
    gen.generate([desc])
    assert encoded.count(desc) == 2 and len(gen._encoded) == ENCODED_MEMO


def test_micro_batcher_runs_what_arrives_together_as_one_job():
    jobs: list[list] = []
    gate = threading.Event()

    def run_batch(items):
        jobs.append(list(items))
        assert gate.wait(30), "test never opened the gate"
        return [ValueError(f"bad {i}") if i == "bad" else i * 2 for i in items]

    async def run():
        with ThreadPoolExecutor(max_workers=1) as pool:
            batcher = MicroBatcher(pool, run_batch, window_s=0.05)
            first = [asyncio.ensure_future(batcher.submit(x)) for x in ("a", "bad", "c")]
            while not jobs:  # the first job is running (held by the gate)
                await asyncio.sleep(0.001)
            later = [asyncio.ensure_future(batcher.submit(x)) for x in ("d", "e")]
            await asyncio.sleep(0)
            gate.set()
            results = await asyncio.gather(*first, *later, return_exceptions=True)
            return results, batcher.batch_sizes

    results, sizes = asyncio.run(run())
    assert jobs == [["a", "bad", "c"], ["d", "e"]]  # arrivals during a job join the next one
    assert sizes == [3, 2]
    assert results[0] == "aa" and results[2] == "cc" and results[3:] == ["dd", "ee"]
    assert isinstance(results[1], ValueError) and str(results[1]) == "bad bad"  # its caller only


def test_micro_batcher_fails_every_caller_of_a_failed_job_and_recovers():
    calls = []

    def run_batch(items):
        calls.append(list(items))
        if len(calls) == 1:
            raise RuntimeError("job failed")
        return items

    async def run():
        with ThreadPoolExecutor(max_workers=1) as pool:
            batcher = MicroBatcher(pool, run_batch, window_s=0.05)
            failed = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
            ok = await batcher.submit(3)
            return failed, ok

    failed, ok = asyncio.run(run())
    assert [str(e) for e in failed] == ["job failed", "job failed"] and ok == 3


def test_micro_batcher_refuses_a_negative_window():
    with pytest.raises(ValueError, match="window_s"):
        MicroBatcher(ThreadPoolExecutor(max_workers=1), lambda items: items, window_s=-1)


# ---- a real server -----------------------------------------------------------------


def _metric_sum(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r"^(\w+)(\{[^}]*\})? ([0-9.e+-]+)$", line)
        if m and m.group(1) == name and all(f'{k}="{v}"' in (m.group(2) or "") for k, v in labels.items()):
            total += float(m.group(3))
    return total


def test_concurrent_new_descriptions_on_a_real_server(tmp_path, tiny_base_dir, tiny_hypernet_dir):
    from t2l_vllm.adapter import write_adapter
    from t2l_vllm.generator import AdapterGenerator

    # A long window, so that the simultaneous requests surely meet in the collector.
    with running_tiny_server(tmp_path, tiny_base_dir, tiny_hypernet_dir, "--generation-batch-ms", "1000") as srv:

        async def send_all():
            async with httpx.AsyncClient(base_url=srv.url, timeout=300) as http:
                models = (await http.get("/v1/models")).json()["data"]
                body = lambda d: {"model": models[0]["id"], "prompt": "hello", "max_tokens": 2,  # noqa: E731
                                  "temperature": 0, "task_description": d}
                return await asyncio.gather(*[http.post("/v1/completions", json=body(d)) for d in DESCRIPTIONS])

        responses = asyncio.run(send_all())
        assert [r.status_code for r in responses] == [200] * len(DESCRIPTIONS), [r.text for r in responses]
        served = [r.json()["model"] for r in responses]
        with httpx.Client(base_url=srv.url, timeout=60) as http:
            metrics = http.get("/metrics").text
            archives = {aid: http.get(f"/v1/t2l/adapters/{aid}/download") for aid in served}

    n = len(DESCRIPTIONS)
    assert _metric_sum(metrics, "t2l_generation_batch_size_sum") == n
    jobs = _metric_sum(metrics, "t2l_generation_batch_size_count")
    assert 1 <= jobs < n, f"{n} simultaneous new descriptions ran as {jobs} jobs"
    # Every adapter's durable copy was written (while the engine registered the fast copy).
    assert _metric_sum(metrics, "t2l_adapter_generation_seconds_count", stage="durable") == n
    assert _metric_sum(metrics, "t2l_adapter_generation_errors_total") == 0
    for aid in served:
        assert (srv.adapter_dir / aid / "t2l.json").is_file() and (srv.adapter_dir / aid / "adapter_model.safetensors").is_file()

    # Byte-identical to the same descriptions generated one at a time, offline (the server's dtype: bf16).
    offline = AdapterGenerator.from_pretrained(tiny_hypernet_dir, tiny_base_dir)
    for desc, aid in zip(DESCRIPTIONS, served):
        [alone] = offline.generate([desc])
        assert alone.adapter_id == aid
        path = write_adapter(alone.tensors, alone.peft_config, tmp_path / "offline" / aid)
        with tarfile.open(fileobj=io.BytesIO(archives[aid].content)) as tar:
            served_bytes = tar.extractfile(f"{aid}/adapter_model.safetensors").read()
        assert served_bytes == (path / "adapter_model.safetensors").read_bytes()
        assert load(served_bytes).keys() == alone.tensors.keys()

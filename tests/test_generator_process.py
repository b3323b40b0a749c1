"""The generator in its own process: same adapters as in-process, survives its child dying, clear load errors.

(The server path, default on, is exercised by every real-server test; tests/test_cold_path.py
checks its adapters byte for byte against offline generation.)
"""

from __future__ import annotations

import os
import signal

import pytest
import torch

from t2l_vllm.generator import AdapterGenerator
from t2l_vllm.serving.generator_process import GeneratorProcess, GeneratorProcessDied, GeneratorSpec

DESCRIPTIONS = ["Reply with the plural of the noun.", "Translate the word into French.", "Count the vowels."]


@pytest.fixture(scope="module")
def worker(tiny_hypernet_dir, tiny_base_dir):
    w = GeneratorProcess(GeneratorSpec(tiny_hypernet_dir, tiny_base_dir, "tiny-base"))
    yield w
    w.close()


def _same_bytes(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(
        a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8))


@pytest.fixture
def one_thread():
    """The child's torch thread count (GeneratorSpec.torch_threads), here for the comparison."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_child_makes_byte_identical_adapters(worker, tiny_hypernet_dir, tiny_base_dir, one_thread):
    local = AdapterGenerator.from_pretrained(tiny_hypernet_dir, tiny_base_dir, base_model_name="tiny-base")
    worker.expected_digest = local.digest
    remote = worker.generate(DESCRIPTIONS)
    assert [a.adapter_id for a in remote] == [local.adapter_id(d) for d in DESCRIPTIONS]
    for desc, got in zip(DESCRIPTIONS, remote):
        [want] = local.generate([desc])
        assert got.tensors.keys() == want.tensors.keys() and got.peft_config == want.peft_config
        assert all(_same_bytes(got.tensors[k], want.tensors[k]) for k in want.tensors)
        assert torch.equal(got.embedding, want.embedding)
        assert got.timings.encode_ms > 0 and got.timings.hypernet_ms > 0  # measured in the child
    assert torch.equal(worker.embed(DESCRIPTIONS), local.embed(DESCRIPTIONS))
    assert worker.confidence(DESCRIPTIONS) == local.confidence(DESCRIPTIONS)


def test_errors_come_back_as_the_generators_own(worker):
    with pytest.raises(ValueError, match="at least one description"):
        worker.generate([])


def test_a_killed_child_fails_one_call_then_is_started_again(worker):
    [before] = worker.generate(DESCRIPTIONS[:1])
    pid = worker.pid
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(GeneratorProcessDied, match="ended"):
        worker.generate(DESCRIPTIONS[:1])
    [after] = worker.generate(DESCRIPTIONS[:1])  # a new child
    assert worker.pid != pid and worker.restarts == 1
    assert all(_same_bytes(after.tensors[k], before.tensors[k]) for k in before.tensors)


def test_a_checkpoint_the_child_cannot_load_is_a_clear_error(tmp_path, tiny_base_dir):
    w = GeneratorProcess(GeneratorSpec(tmp_path / "no-such-checkpoint", tiny_base_dir, "tiny-base"))
    try:
        with pytest.raises((FileNotFoundError, ValueError), match="no-such-checkpoint"):
            w.wait_ready()
    finally:
        w.close()


def test_a_different_checkpoint_in_the_child_is_refused(tiny_hypernet_dir, tiny_base_dir):
    w = GeneratorProcess(GeneratorSpec(tiny_hypernet_dir, tiny_base_dir, "tiny-base"), expected_digest="0" * 64)
    try:
        with pytest.raises(RuntimeError, match="loaded checkpoint"):
            w.wait_ready()
    finally:
        w.close()


def test_a_server_with_the_generator_process_serves_the_same_adapters(tmp_path, tiny_base_dir, tiny_hypernet_dir):
    import httpx
    from safetensors.torch import load

    from tests.server_utils import running_tiny_server

    offline = AdapterGenerator.from_pretrained(tiny_hypernet_dir, tiny_base_dir)  # the server's dtype, bf16
    with running_tiny_server(tmp_path, tiny_base_dir, tiny_hypernet_dir, "--generator-process") as srv:
        assert _spawned_children(srv.proc.pid), "no generator process in the server's session"
        with httpx.Client(base_url=srv.url, timeout=300) as http:
            model = http.get("/v1/models").json()["data"][0]["id"]
            for desc in DESCRIPTIONS[:2]:
                r = http.post("/v1/completions", json={"model": model, "prompt": "hello", "max_tokens": 2,
                                                       "temperature": 0, "task_description": desc})
                assert r.status_code == 200, r.text
                aid = r.json()["model"]
                [want] = offline.generate([desc])
                assert aid == want.adapter_id
                served = load((srv.adapter_dir / aid / "adapter_model.safetensors").read_bytes())
                assert all(_same_bytes(served[k], want.tensors[k]) for k in want.tensors)

            # That process is the generator: killed, the next new description fails with an
            # OpenAI error (not a hang, not a dead server), and the one after is served by a new child.
            [child] = _spawned_children(srv.proc.pid)
            os.kill(child, signal.SIGKILL)
            body = {"model": model, "prompt": "hello", "max_tokens": 2, "temperature": 0}
            failed = http.post("/v1/completions", json={**body, "task_description": "Reverse the word."})
            assert failed.status_code >= 500 and "error" in failed.json(), failed.text
            again = http.post("/v1/completions", json={**body, "task_description": "Reverse the word."})
            assert again.status_code == 200, again.text
            assert _spawned_children(srv.proc.pid) not in ([], [child])


def _spawned_children(session: int) -> list[int]:
    """Processes of the server's session started by multiprocessing's spawn and not renamed:
    vLLM renames its own (VLLM::EngineCore, ...) and the resource tracker is not spawn_main."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read().decode(errors="replace")
        except OSError:
            continue
        sid = int(stat.rsplit(")", 1)[1].split()[3])  # fields after "(comm)": state ppid pgrp session
        if sid == session and "spawn_main" in cmdline:
            found.append(int(entry))
    return found


"""The library's router (routing.py): the learned task metric, its file, and the known-task rule in Library."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from t2l_vllm.routing import ROUTING_FILE, Router, RouterTrainConfig, load_router, train_metric
from t2l_vllm.serving.library import Library


def _clusters(n_per: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    """4 families in 8-d whose identity lives in 2 small directions, under a shared component and
    loud noise in the other 6: raw cosine is dominated by the noise, a linear map can remove it."""
    g = torch.Generator().manual_seed(seed)
    centres = {"a": (1.0, 0.0), "b": (-1.0, 0.0), "c": (0.0, 1.0), "d": (0.0, -1.0)}
    rows, labels = [], []
    for name, (u, v) in centres.items():
        x = torch.zeros(n_per, 8)
        x[:, 0], x[:, 1] = 0.6 * u, 0.6 * v
        x[:, 2] = 2.0  # shared by every family: raw cosines start high
        x[:, 3:] = 1.2 * torch.randn(n_per, 5, generator=g)
        rows.append(x)
        labels += [name] * n_per
    return torch.cat(rows), labels


def _nn_accuracy(emb: torch.Tensor, labels: list[str]) -> float:
    """Leave-one-out nearest-neighbour accuracy under cosine."""
    z = F.normalize(emb, dim=-1)
    sims = (z @ z.T).fill_diagonal_(-2.0)
    nearest = sims.argmax(dim=1).tolist()
    return sum(labels[i] == labels[j] for i, j in enumerate(nearest)) / len(labels)


def test_the_metric_learns_what_raw_cosine_confuses_and_generalises_to_new_descriptions():
    train, train_labels = _clusters(32, seed=0)
    test, test_labels = _clusters(32, seed=1)  # new draws: the map must generalise, not memorise
    cfg = RouterTrainConfig(steps=300, lr=1e-2, families_per_batch=4, per_family_in_batch=8)
    w = train_metric(train, train_labels, {"a": ("b",), "c": ("d",)}, cfg)
    router = Router(w, ("x",), torch.zeros(1, 8))
    raw, learned = _nn_accuracy(test, test_labels), _nn_accuracy(router.project(test), test_labels)
    assert raw < 0.75, f"the fixture should confuse raw cosine (accuracy {raw:.2f})"
    assert learned > 0.95 and learned > raw + 0.2, (raw, learned)
    # Deterministic: the same data and seed give the same map.
    assert torch.equal(w, train_metric(train, train_labels, {"a": ("b",), "c": ("d",)}, cfg))


def test_training_and_routers_reject_bad_input_with_clear_errors():
    with pytest.raises(ValueError, match="steps >= 1"):
        RouterTrainConfig(steps=0)
    with pytest.raises(ValueError, match="temperature"):
        RouterTrainConfig(temperature=0.0)
    with pytest.raises(ValueError, match="at least two families"):
        train_metric(torch.randn(4, 3), ["a"] * 4, {}, RouterTrainConfig(steps=1))
    with pytest.raises(ValueError, match=r"\[N, d\] embeddings for N = 3"):
        train_metric(torch.randn(4, 3), ["a", "b", "a"], {}, RouterTrainConfig(steps=1))
    with pytest.raises(ValueError, match=r"\[d, d\]"):
        Router(torch.zeros(3, 4), ("x",), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="1 known texts for 2 embeddings"):
        Router(torch.zeros(3, 3), ("x",), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="router is 3-d"):
        Library(4, 0.5, router=Router(torch.zeros(3, 3), ("x",), torch.zeros(1, 3)))


def test_a_router_round_trips_through_its_file_and_a_corrupt_one_is_a_clear_error(tmp_path):
    assert load_router(tmp_path) is None  # no file: the library uses raw cosine
    w = 0.1 * torch.randn(4, 4)
    known = F.normalize(torch.randn(2, 4), dim=-1)
    Router(w, ("Reply in French.", "Count the vowels."), known).save(tmp_path, {"steps": 3})
    back = load_router(tmp_path)
    assert back.known_texts == ("Reply in French.", "Count the vowels.")
    assert torch.equal(back.weight, w)  # float32 on disk
    assert torch.allclose(back.known_embeddings, known, atol=2e-3)  # float16 on disk
    (tmp_path / ROUTING_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="corrupt router .*`t2l-vllm train-router`"):
        load_router(tmp_path)


def _router(known: dict[str, list[float]]) -> Router:
    """An identity metric (W = 0) with the given known descriptions and 3-d vectors."""
    return Router(torch.zeros(3, 3), tuple(known), torch.tensor(list(known.values())))


def test_with_a_router_a_description_nearer_a_known_task_is_left_to_the_hypernetwork():
    router = _router({"Translate the word into German.": [0.0, 1.0, 0.0],
                      "Return the larger of the two numbers.": [0.0, 0.0, 1.0]})
    lib = Library(3, 0.5, router=router, margin=0.0)
    lib.add("t2l-fr", ("Translate the word into French.",), torch.tensor([[1.0, 0.0, 0.0]]))
    lib.add("t2l-min", ("Give the smaller of two numbers.",), torch.tensor([[0.0, 0.6, 0.8]]))
    # Nearer the library's French description than the known German one: the library serves it.
    hit = lib.match("Say the word in French.", torch.tensor([0.9, 0.3, 0.0]))
    assert hit is not None and hit.adapter_id == "t2l-fr" and hit.kind == "library"
    # Above the threshold for French, but nearer the known German description: generated.
    assert lib.match("Say the word in German.", torch.tensor([0.6, 0.8, 0.0])) is None
    # ... unless the margin lets the library win by that much.
    loose = Library(3, 0.5, router=router, margin=0.3)
    loose.add("t2l-fr", ("Translate the word into French.",), torch.tensor([[1.0, 0.0, 0.0]]))
    assert loose.match("Say the word in German.", torch.tensor([0.6, 0.8, 0.0])).adapter_id == "t2l-fr"
    # A known description with an opposite word does not compete: "smaller" is not "larger"'s task.
    hit = lib.match("Return the smaller of the two numbers.", torch.tensor([0.0, 0.3, 0.95]))
    assert hit is not None and hit.adapter_id == "t2l-min"
    # Canonical text always matches, and nothing below the threshold does.
    assert lib.match("translate the word into French", None).adapter_id == "t2l-fr"
    assert lib.match("Sort the letters.", torch.tensor([0.3, -0.5, -0.8])) is None


def test_train_router_writes_a_router_that_export_carries(tmp_path, tiny_hypernet_dir):
    import shutil

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_hypernet_dir, ckpt)
    cli = [sys.executable, "-m", "t2l_vllm.cli"]
    out = subprocess.run([*cli, "train-router", "--hypernet", str(ckpt), "--steps", "3",
                          "--descriptions-per-family", "2"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    router = load_router(ckpt)
    from t2l_vllm.tasks.splits import train_descriptions, training_families

    assert router.known_texts == tuple(d for f in training_families("short") for d in train_descriptions(f))
    assert router.dim == 32 and router.weight.abs().sum() > 0  # trained: W moved from zero
    exported = tmp_path / "exported"
    out = subprocess.run([*cli, "export", "--hypernet", str(ckpt), "--out", str(exported)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (exported / ROUTING_FILE).read_bytes() == (ckpt / ROUTING_FILE).read_bytes()
    bad = subprocess.run([*cli, "train-router", "--hypernet", str(ckpt), "--descriptions-per-family", "1"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--descriptions-per-family must be >= 2" in bad.stderr

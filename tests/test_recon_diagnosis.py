"""benchmarks/recon_diagnosis.py: the closed-form head fit tells a library a head can carry from one it cannot.

Synthetic libraries on the tiny hypernetwork shapes, no base model: one whose
factors are an exact linear function of the backbone's features (the fit must
reach ~0 error on held-out descriptions), and one whose B is independent noise
per task and layer, with more (task, layer) pairs than the head has features
(the fit cannot get near it: the real library's situation, README).
"""

from __future__ import annotations

import pytest
import torch

from benchmarks import recon_diagnosis
from t2l_vllm.hypernet import HyperLoRA


def _setup(config, n_tasks):
    net = HyperLoRA.initialise(config, seed=0).eval()
    gen = torch.Generator().manual_seed(0)
    tasks = [f"task{i}" for i in range(n_tasks)]
    # Paraphrases of a task: one direction per task plus small wording noise.
    centres = {t: torch.randn(config.encoder.dim, generator=gen) for t in tasks}
    train = {t: [f"{t}-train{j}" for j in range(5)] for t in tasks}
    held = {t: [f"{t}-held{j}" for j in range(2)] for t in tasks}
    emb = {d: centres[t] + 0.05 * torch.randn(config.encoder.dim, generator=gen)
           for t in tasks for d in train[t] + held[t]}
    return net, tasks, train, held, emb, gen


def _library_from_net(net, emb, train, tasks, seed):
    """Factors a head *can* emit: another random head on the same backbone, at each task's mean feature."""
    other = HyperLoRA.initialise(net.config, seed=seed)
    other.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("heads.")}, strict=False)
    with torch.no_grad():
        for head in other.heads.values():
            head.weight.normal_(0, 0.05, generator=torch.Generator().manual_seed(seed))
        lora = other(torch.stack([torch.stack([emb[d] for d in train[t]]).mean(0) for t in tasks]))
    return {t: {name: (a[i], b[i]) for name, (a, b) in lora.factors.items()} for i, t in enumerate(tasks)}


def test_a_library_the_head_can_emit_is_fitted(tiny_hypernet_config):
    net, tasks, train, held, emb, _ = _setup(tiny_hypernet_config, n_tasks=6)
    library = _library_from_net(net, emb, train, tasks, seed=1)
    fit = recon_diagnosis.fit_heads(net, emb, library, train, held, layer_bias=False, lam=1e-6)
    for per_split in fit.values():
        # Only wording noise separates a description's feature from its task's mean feature.
        assert per_split["held-out"]["dW"] < 0.2, per_split


def test_per_task_noise_beyond_the_head_width_is_not_fitted(tiny_hypernet_config):
    # 48 tasks x 2 layers = 96 independent B targets per module; the head has 64 features (+ biases).
    net, tasks, train, held, emb, gen = _setup(tiny_hypernet_config, n_tasks=48)
    assert len(tasks) * net.config.target.num_layers > net.config.head_in_dim + 1 + net.config.target.num_layers
    library = {
        t: {m.name: (torch.randn(net.config.target.num_layers, net.config.rank, m.in_features, generator=gen),
                     torch.randn(net.config.target.num_layers, m.out_features, net.config.rank, generator=gen))
            for m in net.config.target.modules}
        for t in tasks
    }
    rows = recon_diagnosis.reference_rows(net.config, library, tasks)
    for r in recon_diagnosis.library_rank(net.config, library, tasks).values():
        assert r["rows"] == 96 and r["head_features"] < r["dims"] <= 96, r
    fit = recon_diagnosis.fit_heads(net, emb, library, train, held, layer_bias=True, lam=1e-2)
    for name, per_split in fit.items():
        assert rows["predict zero"][name]["dW"] == pytest.approx(1.0)
        # Independent noise: the task mean itself is far off, and the head does not get near the targets.
        assert rows["task mean"][name]["B"] > 0.5
        assert per_split["train"]["B"] > 0.6 and per_split["held-out"]["B"] > 0.6, per_split
    md = recon_diagnosis.markdown({"library": "synthetic", "tasks": tasks, "lambda": 1e-2,
                                   "rows": {**rows, "head": fit}, "scale": {"mean |A*|": 1.0}})
    assert "| task mean |" in md and "| head |" in md

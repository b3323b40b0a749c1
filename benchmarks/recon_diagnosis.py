"""Why T2L reconstruction stays at the library's average: what a hypernetwork head can fit.

    .venv/bin/python benchmarks/recon_diagnosis.py --library runs/t2l/oracles \\
        [--hypernet runs/sft-open/checkpoint] [--out-dir benchmarks/results/t2l/recon_diagnosis]

Reconstruction asks the hypernetwork to emit each library oracle's LoRA factors
(A* [L, r, d_in], B* [L, d_out, r]) from the family's descriptions. The network's
last layer is linear: factors(t, l) = W h(t, l) + bias, with h [H] the backbone's
feature for description t at layer l. So the best any training run can reach,
given a backbone, is the least-squares fit of W on those features, and this
script solves it in closed form (ridge), per module, on the training descriptions
of every training family in the library, then scores it on the held-out
descriptions of the same families. Errors are relative: mean |pred - target| /
mean |target|, for A, for B and for delta-W = B @ A.

Rows:
  predict zero          B = 0 (an untrained network): delta-W error 1 by definition
  task mean             per layer, the factors averaged over the library's tasks:
                        what a network that ignores the description can reach
  head, random backbone closed-form head on an untrained backbone's features
  head + layer bias     the same, with one free bias per layer (the network's bias is
                        shared by all layers)
  ..., one averaged description per task
                        the same head fitted on each task's mean training embedding: can
                        the features carry the library at all, wording aside?
  head, given backbone  closed-form head (+ layer bias) on --hypernet's trained backbone

If the fitted heads cannot beat the task mean on B, no amount of training of the
head reaches the oracles: the library's task-specific part is not a function of
the features the architecture gives it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import write_outputs  # noqa: E402
from t2l_vllm.hypernet import HyperLoRA  # noqa: E402


class _ErrorSums:
    """Accumulates mean |pred - target| and mean |target| for A, B and delta-W = B @ A, one task at a time
    (delta-W of every description at once would be [n, L, d_out, d_in]: gigabytes)."""

    def __init__(self) -> None:
        self.num = {"A": 0.0, "B": 0.0, "dW": 0.0}
        self.den = {"A": 0.0, "B": 0.0, "dW": 0.0}

    def add(self, pa: torch.Tensor, pb: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
        """pa/a: [n, L, r, d_in], pb/b: [n, L, d_out, r] (targets broadcast over n)."""
        dw = b @ a
        for key, pred, target in (("A", pa, a), ("B", pb, b), ("dW", pb @ pa, dw)):
            self.num[key] += float((pred - target).abs().mean())
            self.den[key] += float(target.abs().mean())

    def relative(self) -> dict[str, float]:
        return {k: self.num[k] / self.den[k] if self.den[k] else 0.0 for k in self.num}


def fit_heads(net: HyperLoRA, emb: dict, library: dict, train: dict, held: dict, layer_bias: bool, lam: float) -> dict:
    """Closed-form ridge head per module on `net`'s features; relative errors on train and held-out descriptions."""
    cfg = net.config
    n_layers = cfg.target.num_layers
    out: dict[str, dict] = {}
    with torch.no_grad():
        feats = {t: net.features(torch.stack([emb[d] for d in train[t] + held[t]])) for t in train}  # [n, L, M, H]

        def design(h: torch.Tensor) -> torch.Tensor:
            """h: [n, L, H] -> [n * L, H + 1 (+ L)]: features, a constant, optionally a one-hot layer."""
            n = h.shape[0]
            cols = [h.reshape(n * n_layers, -1), torch.ones(n * n_layers, 1)]
            if layer_bias:
                cols.append(torch.eye(n_layers).repeat(n, 1))
            return torch.cat(cols, 1)

        for j, m in enumerate(cfg.target.modules):
            xs, ys = [], []
            for t in train:
                a, b = library[t][m.name]
                n = len(train[t])
                xs.append(design(feats[t][:n, :, j]))
                ys.append(torch.cat([a.reshape(n_layers, -1), b.reshape(n_layers, -1)], 1).repeat(n, 1))
            x, y = torch.cat(xs), torch.cat(ys)
            w = torch.linalg.solve(x.T @ x + lam * torch.eye(x.shape[1]), x.T @ y)  # [features, |A| + |B|]
            n_a = a.numel() // n_layers
            per_split = {}
            for split in ("train", "held-out"):
                sums = _ErrorSums()
                for t in train:
                    n = len(train[t])
                    h = feats[t][:n, :, j] if split == "train" else feats[t][n:, :, j]
                    pred = design(h) @ w
                    a, b = library[t][m.name]
                    sums.add(pred[:, :n_a].reshape(h.shape[0], *a.shape), pred[:, n_a:].reshape(h.shape[0], *b.shape), a, b)
                per_split[split] = sums.relative()
            out[m.name] = per_split
    return out


def reference_rows(cfg, library: dict, tasks: list[str]) -> dict[str, dict]:
    """'predict zero' and 'task mean' errors per module (targets only, no network)."""
    rows: dict[str, dict] = {"predict zero": {}, "task mean": {}}
    for m in cfg.target.modules:
        a = torch.stack([library[t][m.name][0] for t in tasks])  # [T, L, r, d_in]
        b = torch.stack([library[t][m.name][1] for t in tasks])  # [T, L, d_out, r]
        zero, mean = _ErrorSums(), _ErrorSums()
        for i in range(len(tasks)):
            zero.add(a[i], torch.zeros_like(b[i]), a[i], b[i])
            mean.add(a.mean(0), b.mean(0), a[i], b[i])
        rows["predict zero"][m.name] = zero.relative()
        rows["task mean"][m.name] = mean.relative()
    return rows


def library_rank(cfg, library: dict, tasks: list[str], energy: float = 0.9) -> dict[str, dict]:
    """Per module: how many directions the task-specific part of B* spans, against the head's width.

    Rows are (task, layer) pairs of B* [d_out * r] minus the layer's task mean; `dims` is the number
    of singular directions holding `energy` of their squared norm. A head that is linear in
    `head_in_dim` features (+ a bias per layer) emits at most that many directions per module.
    """
    out = {}
    for m in cfg.target.modules:
        b = torch.stack([library[t][m.name][1] for t in tasks])  # [T, L, d_out, r]
        rows = (b - b.mean(0, keepdim=True)).reshape(b.shape[0] * b.shape[1], -1)  # [T * L, d_out * r]
        s = torch.linalg.svdvals(rows) ** 2
        dims = int((s.cumsum(0) / s.sum() < energy).sum()) + 1
        out[m.name] = {"rows": rows.shape[0], "dims": dims, "head_features": cfg.head_in_dim + 1 + cfg.target.num_layers}
    return out


def markdown(report: dict) -> str:
    lines = [
        f"Library: {report['library']} ({len(report['tasks'])} training families with an oracle); "
        f"ridge lambda {report['lambda']}.",
        "",
        "Relative error, mean |pred - target| / mean |target|, averaged over modules "
        "(train descriptions / held-out descriptions).",
        "",
        "| fit | A | B | delta-W |",
        "|---|---:|---:|---:|",
    ]
    for name, row in report["rows"].items():
        cells = []
        for key in ("A", "B", "dW"):
            vals = [mod[key] if "train" not in mod else (mod["train"][key], mod["held-out"][key]) for mod in row.values()]
            if isinstance(vals[0], tuple):
                tr = sum(v[0] for v in vals) / len(vals)
                ho = sum(v[1] for v in vals) / len(vals)
                cells.append(f"{tr:.3f} / {ho:.3f}")
            else:
                cells.append(f"{sum(vals) / len(vals):.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    for name, r in report.get("rank", {}).items():
        lines.append(
            f"{name}: the task-specific part of B* over {r['rows']} (task, layer) pairs spans {r['dims']} directions "
            f"(90% of its energy); a linear head emits at most {r['head_features']}."
        )
    lines.append("")
    lines.append("Library scale (mean over modules): " + ", ".join(f"{k} {v:.4g}" for k, v in report["scale"].items()))
    return "\n".join(lines) + "\n"


def main() -> None:
    from t2l_vllm.checkpoint import load_hypernet
    from t2l_vllm.config import HypernetConfig
    from t2l_vllm.defaults import default_base_model_dir
    from t2l_vllm.target_spec import target_spec_from_dir
    from t2l_vllm.tasks import splits
    from t2l_vllm.training import loop
    from t2l_vllm.training.reconstruction import load_library_factors

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--library", required=True, help="folder written by t2l-vllm train-oracles (v1 suite)")
    p.add_argument("--hypernet", help="a trained checkpoint whose backbone features are also tried")
    p.add_argument("--lam", type=float, default=1e-2, help="ridge penalty")
    p.add_argument("--seed", type=int, default=0, help="seed of the untrained backbone")
    p.add_argument("--out-dir", default="benchmarks/results/t2l/recon_diagnosis")
    args = p.parse_args()

    library_dir = Path(args.library)
    tasks = sorted(
        q.name for q in library_dir.iterdir()
        if (q / "adapter_model.safetensors").is_file() and q.name not in splits.HELD_OUT_FAMILIES
    )
    if len(tasks) < 2:
        sys.exit(f"{library_dir} holds {len(tasks)} oracles of training families; need at least 2")
    base = default_base_model_dir()
    trained = load_hypernet(args.hypernet) if args.hypernet else None
    cfg = trained.config if trained is not None else HypernetConfig(target=target_spec_from_dir(base))
    library = load_library_factors(library_dir, cfg, tasks)
    train = {t: list(splits.train_descriptions(t)) for t in tasks}
    held = {t: list(splits.held_out_descriptions(t)) for t in tasks}
    emb = loop.description_embeddings(cfg.encoder, base, [d for t in tasks for d in train[t] + held[t]])

    rows = reference_rows(cfg, library, tasks)
    random_net = HyperLoRA.initialise(cfg, seed=args.seed).eval()
    rows["head, random backbone"] = fit_heads(random_net, emb, library, train, held, False, args.lam)
    rows["head + layer bias, random backbone"] = fit_heads(random_net, emb, library, train, held, True, args.lam)
    # Capacity or wording? Fit on one averaged embedding per task instead of its 8 wordings:
    # if this fits the training targets, the features can carry the library, and what
    # stops the per-wording fit is the spread between wordings of one task.
    averaged = {**emb, **{f"{t}::mean": torch.stack([emb[d] for d in train[t]]).mean(0) for t in tasks}}
    rows["head + layer bias, random backbone, one averaged description per task"] = fit_heads(
        random_net, averaged, library, {t: [f"{t}::mean"] for t in tasks}, held, True, args.lam
    )
    if trained is not None:
        rows["head + layer bias, given backbone"] = fit_heads(trained, emb, library, train, held, True, args.lam)
    scale = {}
    for i, key in enumerate(("mean |A*|", "mean |B*|")):
        scale[key] = float(torch.stack([library[t][m.name][i].abs().mean() for t in tasks for m in cfg.target.modules]).mean())
    report = {"library": str(library_dir), "tasks": tasks, "lambda": args.lam, "hypernet": args.hypernet,
              "rows": rows, "scale": scale, "rank": library_rank(cfg, library, tasks)}
    paths = write_outputs(report, Path(args.out_dir), "recon_diagnosis", markdown, lambda r, path: False)
    print(markdown(report))
    print(paths)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()

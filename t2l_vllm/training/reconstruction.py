"""T2L reconstruction: the hypernetwork learns to reproduce an adapter library.

For a training family with oracle LoRA (A*, B*) the target is its weight
update dW* = B* @ A* in every (layer, module); the hypernetwork, fed one of
the family's training descriptions, emits (A, B) and pays the mean absolute
error |B @ A - dW*| (L1 on delta-W, as upstream). The LoRA scaling is the same
for both sides (same rank, alpha and rsLoRA), so it cancels and is left out.
No base model is needed: this is cheap, but it only learns the library's tasks.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from t2l_vllm.checkpoint import save_hypernet
from t2l_vllm.config import HypernetConfig
from t2l_vllm.hypernet import HyperLoRA
from t2l_vllm.peft_format import WEIGHTS_FILE
from t2l_vllm.tasks import ANSWER_SELECTORS
from t2l_vllm.tasks.splits import family_seed
from t2l_vllm.tasks.suites import SUITES, get_suite
from t2l_vllm.training import loop

CHECKPOINT_DIR = "checkpoint"


@dataclass(frozen=True)
class ReconConfig:
    library: str
    tasks: str = ""  # comma-separated training families; empty: all of them
    steps: int = 500
    tasks_per_batch: int = 4
    # The heads' outputs are sums over 512 features, so each Adam step moves a
    # generated entry by ~400 x lr while targets are ~1e-3: 1e-3 oscillated at
    # the "predict zero" L1, 4e-5 descends (slowly).
    lr: float = 4e-5
    warmup_steps: int = 20
    seed: int = 0
    save_every: int = 100

    # Which training families: "short" (the original suite, what the shipped checkpoint saw), "open" or "all".
    answer: str = "short"
    # Which task suite (tasks/suites.py): "v1", the original 87 families, or "compositional".
    suite: str = "v1"

    def __post_init__(self) -> None:
        if self.answer not in ANSWER_SELECTORS:
            raise ValueError(f"answer must be one of {', '.join(ANSWER_SELECTORS)}, got {self.answer!r}")
        if self.suite not in SUITES:
            raise ValueError(f"suite must be one of {', '.join(SUITES)}, got {self.suite!r}")
        if self.steps < 1 or self.tasks_per_batch < 1 or self.save_every < 1:
            raise ValueError("steps, tasks_per_batch and save_every must be >= 1")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


def load_library_factors(
    library: Path, hypernet_config: HypernetConfig, families: list[str]
) -> dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """family -> module -> (A* [num_layers, r, d_in], B* [num_layers, d_out, r]), float32."""
    spec = hypernet_config.target
    library_factors = {}
    for fam in families:
        path = library / fam / WEIGHTS_FILE
        if not path.is_file():
            raise ValueError(f"the adapter library {library} has no oracle for {fam!r}; run t2l-vllm train-oracles first")
        tensors = load_file(str(path))
        per_module = {}
        for m in spec.modules:
            a_layers, b_layers = [], []
            for layer in range(spec.num_layers):
                try:
                    a_layers.append(tensors[spec.peft_key(layer, m.name, "A")].float())  # [r, d_in]
                    b_layers.append(tensors[spec.peft_key(layer, m.name, "B")].float())  # [d_out, r]
                except KeyError:
                    raise ValueError(
                        f"{path} lacks {spec.peft_key(layer, m.name, 'A')} or its B; was it trained for this base model?"
                    ) from None
            per_module[m.name] = (torch.stack(a_layers), torch.stack(b_layers))
        library_factors[fam] = per_module
    return library_factors


def load_library_deltas(library: Path, hypernet_config: HypernetConfig, families: list[str]) -> dict[str, dict[str, torch.Tensor]]:
    """family -> module -> dW* = B* @ A* stacked over layers: [num_layers, d_out, d_in] (float32)."""
    return {
        fam: {name: b @ a for name, (a, b) in per_module.items()}
        for fam, per_module in load_library_factors(library, hypernet_config, families).items()
    }


def train_reconstruction(
    hypernet_config: HypernetConfig,
    base_model_dir: str | Path,
    out_dir: str | Path,
    config: ReconConfig,
    progress: loop.Progress | None = None,
) -> Path:
    """Run (or resume) reconstruction training; returns `out_dir/checkpoint`."""
    out_dir = Path(out_dir)
    loop.start_run(out_dir, config)
    suite = get_suite(config.suite)
    train_descriptions = suite.train_descriptions
    families = suite.training_families(config.answer)
    if config.tasks:
        wanted = config.tasks.split(",")
        unknown = sorted(set(wanted) - {f.name for f in families})
        if unknown:
            raise ValueError(f"not training families: {', '.join(unknown)}")
        families = [f for f in families if f.name in wanted]
    deltas = load_library_deltas(Path(config.library), hypernet_config, [f.name for f in families])
    net = HyperLoRA.initialise(hypernet_config, seed=config.seed).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=0.0)
    emb = loop.description_embeddings(
        hypernet_config.encoder, Path(base_model_dir), [d for fam in families for d in train_descriptions(fam)]
    )

    def step_loss(step: int) -> tuple[torch.Tensor, dict]:
        rng = random.Random(family_seed(config.seed, f"recon-step-{step}"))
        chosen = rng.sample(families, min(config.tasks_per_batch, len(families)))
        descs = [rng.choice(train_descriptions(f)) for f in chosen]
        lora = net(torch.stack([emb[d] for d in descs]))
        terms = []
        for name, (a, b) in lora.factors.items():
            # a: [B, L, r, d_in], b: [B, L, d_out, r] -> dW: [B, L, d_out, d_in]
            target = torch.stack([deltas[f.name][name] for f in chosen])
            terms.append((b @ a - target).abs().mean())
        loss = torch.stack(terms).mean()
        return loss, {"l1": float(f"{loss.item():.4g}")}

    def save(step: int) -> dict:
        save_hypernet(net, out_dir / CHECKPOINT_DIR, metadata={"trainer": "reconstruction", "step": step})
        return net.state_dict()

    loop.run_steps(
        optimizer, step_loss, steps=config.steps, lr=config.lr, warmup_steps=config.warmup_steps,
        out_dir=out_dir, save_every=config.save_every, save=save, load=net.load_state_dict, progress=progress,
    )
    return out_dir / CHECKPOINT_DIR

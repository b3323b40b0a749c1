"""The Text-to-LoRA hypernetwork: description embedding in, LoRA factors out.

For every (layer l, module m) the network sees
    concat[task_encoder(f(z)), E_layer[l], E_module[m]]
where f(z) is the description embedding, L2-normalised and scaled by sqrt(dim).
A shared MLP backbone maps all L x M inputs in one batched pass to a feature of
size `head_in_dim`; one head per module type turns that feature into LoRA
factors. Variants differ only in the head:

    L: head emits r * (d_in + d_out) numbers, A and B at once.
    M: one head for A and B, told apart by a learned A/B embedding;
       it emits r * max(d_in, d_out) numbers, sliced to each factor.
    S: one rank row at a time (A/B embedding + rank embedding),
       emitting max(d_in, d_out) numbers per row.

Init ("bias-HyperInit"): head weights are zero and a per-module bias holds a
standard PEFT LoRA init (Kaiming-uniform A, zero B), so an untrained network
emits a LoRA whose B is zero: the adapter is a no-op.

The module knows shapes (a `HypernetConfig`), never a live base model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .config import HypernetConfig


@dataclass(frozen=True)
class LoraFactors:
    """Generated LoRA factors for a batch of descriptions.

    factors[module] = (A, B) with A: [batch, num_layers, r, d_in] and
    B: [batch, num_layers, d_out, r]; delta W = scaling * B @ A.
    """

    factors: dict[str, tuple[torch.Tensor, torch.Tensor]]
    scaling: float

    @property
    def batch_size(self) -> int:
        a, _ = next(iter(self.factors.values()))
        return a.shape[0]


class _ResidualMLP(nn.Module):
    """Pre-LN residual block: x + W2 silu(W1 LN(x))."""

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.dropout(self.fc2(F.silu(self.fc1(self.norm(x)))))


class HyperLoRA(nn.Module):
    """Maps description embeddings [batch, enc_dim] to LoRA factors for every target."""

    def __init__(self, config: HypernetConfig):
        super().__init__()
        self.config = config
        c = config
        spec = c.target
        n_mod = len(spec.modules)

        self.task_encoder = nn.Sequential(nn.Linear(c.encoder.dim, c.task_emb_dim), nn.LayerNorm(c.task_emb_dim))
        self.layer_emb = nn.Embedding(spec.num_layers, c.pos_emb_dim)
        self.layer_norm = nn.LayerNorm(c.pos_emb_dim)
        self.module_emb = nn.Embedding(n_mod, c.pos_emb_dim)
        self.module_norm = nn.LayerNorm(c.pos_emb_dim)

        in_dim = c.task_emb_dim + 2 * c.pos_emb_dim
        self.mixer = nn.Sequential(
            nn.Linear(in_dim, c.latent_dim),
            nn.SiLU(),
            nn.Dropout(c.dropout),
            nn.Linear(c.latent_dim, c.latent_dim),
        )
        self.blocks = nn.Sequential(_ResidualMLP(c.latent_dim, c.dropout), _ResidualMLP(c.latent_dim, c.dropout))
        self.proj = nn.Sequential(nn.LayerNorm(c.latent_dim), nn.Linear(c.latent_dim, c.head_in_dim))

        if c.variant in ("M", "S"):
            self.ab_emb = nn.Embedding(2, c.head_in_dim)
        if c.variant == "S":
            self.rank_emb = nn.Embedding(c.rank, c.head_in_dim)

        # One head and one init bias pair per module type (shapes differ per module).
        self.heads = nn.ModuleDict()
        self.a_bias = nn.ParameterDict()
        self.b_bias = nn.ParameterDict()
        r = c.rank
        for m in spec.modules:
            d_max = max(m.in_features, m.out_features)
            out = {"L": r * (m.in_features + m.out_features), "M": r * d_max, "S": d_max}[c.variant]
            self.heads[m.name] = nn.Linear(c.head_in_dim, out, bias=False)
            self.a_bias[m.name] = nn.Parameter(torch.empty(r, m.in_features))
            self.b_bias[m.name] = nn.Parameter(torch.empty(m.out_features, r))
        self.reset_heads()

    @torch.no_grad()
    def reset_heads(self) -> None:
        """bias-HyperInit: zero head weights, PEFT's LoRA init in the biases."""
        for name, head in self.heads.items():
            nn.init.zeros_(head.weight)
            # PEFT: kaiming_uniform_(a=sqrt(5)) on A [r, d_in] => U(-1/sqrt(d_in), 1/sqrt(d_in)).
            bound = 1.0 / math.sqrt(self.a_bias[name].shape[1])
            nn.init.uniform_(self.a_bias[name], -bound, bound)
            nn.init.zeros_(self.b_bias[name])

    @classmethod
    def initialise(cls, config: HypernetConfig, seed: int = 0) -> "HyperLoRA":
        """A freshly initialised network whose weights depend only on `seed`."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(config)

    def features(self, emb: torch.Tensor) -> torch.Tensor:
        """Backbone output for every (layer, module): [batch, L, M, head_in_dim]."""
        c = self.config
        if emb.ndim != 2 or emb.shape[1] != c.encoder.dim:
            raise ValueError(f"expected embeddings of shape [batch, {c.encoder.dim}], got {tuple(emb.shape)}")
        emb = emb.to(self.layer_emb.weight.dtype)
        # f(z) = sqrt(dim) * z / |z|, so the encoder's scale does not matter.
        z = F.normalize(emb, dim=-1) * math.sqrt(c.encoder.dim)
        task = self.task_encoder(z)  # [B, T]
        layers = self.layer_norm(self.layer_emb.weight)  # [L, P]
        modules = self.module_norm(self.module_emb.weight)  # [M, P]
        bsz, n_layers, n_mod = emb.shape[0], layers.shape[0], modules.shape[0]
        x = torch.cat(
            [
                task[:, None, None, :].expand(bsz, n_layers, n_mod, -1),
                layers[None, :, None, :].expand(bsz, n_layers, n_mod, -1),
                modules[None, None, :, :].expand(bsz, n_layers, n_mod, -1),
            ],
            dim=-1,
        )  # [B, L, M, T + 2P]
        return self.proj(self.blocks(self.mixer(x)))  # [B, L, M, H]

    def forward(self, emb: torch.Tensor) -> LoraFactors:
        """emb: [batch, enc_dim] description embeddings -> LoRA factors for all targets."""
        c = self.config
        h_all = self.features(emb)
        r = c.rank
        factors = {}
        for j, m in enumerate(c.target.modules):
            h = h_all[:, :, j]  # [B, L, H]
            bsz, n_layers = h.shape[:2]
            d_in, d_out = m.in_features, m.out_features
            head = self.heads[m.name]
            if c.variant == "L":
                out = head(h)  # [B, L, r*(d_in+d_out)]
                a = out[..., : r * d_in].reshape(bsz, n_layers, r, d_in)
                b = out[..., r * d_in :].reshape(bsz, n_layers, d_out, r)
            elif c.variant == "M":
                h_ab = h[:, :, None, :] + self.ab_emb.weight  # [B, L, 2, H]
                out = head(h_ab).reshape(bsz, n_layers, 2, r, -1)  # [B, L, 2, r, d_max]
                a = out[:, :, 0, :, :d_in]
                b = out[:, :, 1, :, :d_out].transpose(-1, -2)
            else:  # "S"
                h_rows = (
                    h[:, :, None, None, :] + self.ab_emb.weight[:, None, :] + self.rank_emb.weight[None, :, :]
                )  # [B, L, 2, r, H]
                out = head(h_rows)  # [B, L, 2, r, d_max]
                a = out[:, :, 0, :, :d_in]
                b = out[:, :, 1, :, :d_out].transpose(-1, -2)
            factors[m.name] = (a + self.a_bias[m.name], b + self.b_bias[m.name])
        return LoraFactors(factors, c.scaling)


@torch.no_grad()
def randomise_heads(net: HyperLoRA, std: float = 0.05, seed: int = 0) -> HyperLoRA:
    """Give an untrained network non-zero heads, deterministically (in place).

    An initialised network emits B = 0, a no-op adapter; tests and benchmarks need
    adapters that really change the model without training one first.
    """
    gen = torch.Generator().manual_seed(seed)
    for head in net.heads.values():
        head.weight.copy_(torch.randn(head.weight.shape, generator=gen).to(head.weight) * std)
    return net

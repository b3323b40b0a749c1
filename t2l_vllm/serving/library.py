"""A library of trained adapters beside the hypernetwork: uploaded, checked, matched by description.

Platform engineers register PEFT LoRA adapters they trained, each with one or
more descriptions of its task (`POST /v1/t2l/library`). At request time a
task_description that matches a library description (canonical text, or
cosine >= --library-threshold and no opposite words: reuse.py; with the
checkpoint's router, in its task metric and only when no training description
of the hypernetwork is closer: routing.py) is served by the library adapter
instead of a generated one.

Upload (JSON): {"descriptions": [str, ...] (or "description": str), "name": str (optional),
                "adapter_config": {...PEFT LoraConfig...}, "adapter_model": base64 of the safetensors file}

Checks, each a ValueError (HTTP 400) saying what to fix:
- size: the weights at most --max-library-adapter-mib; at most --max-library-adapters adapters;
- config: a plain LoRA (no DoRA, bias or modules_to_save), r within vLLM's
  --max-lora-rank, target modules among those the server LoRA-wraps (the
  checkpoint's), a declared base model that names this one (when declared);
- tensors: exactly PEFT's names for those modules and the base model's layers,
  A [r, d_in] and B [d_out, r] with the base model's shapes, finite floats.

The stored adapter is rewritten in our own layout (config.json normalised,
tensors as uploaded), content-addressed: the id hashes the weights and the
descriptions, so the same upload is the same adapter.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

import torch

from ..adapter import ADAPTER_PREFIX, ID_HEX_CHARS, normalize_description
from ..peft_format import adapter_config
from ..reuse import ReuseIndex, ReuseMatch, opposite_conflict
from ..routing import DEFAULT_ROUTED_MARGIN, Router, best_match
from ..target_spec import TargetSpec

MAX_LIBRARY_DESCRIPTIONS = 32
_KEY = re.compile(r"^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)\.lora_([AB])\.weight$")


@dataclass(frozen=True)
class LibraryUpload:
    adapter_id: str
    descriptions: tuple[str, ...]
    name: str
    tensors: dict[str, torch.Tensor]
    peft_config: dict


def parse_upload(payload: dict, spec: TargetSpec, base_names: tuple[str, ...], max_rank: int | None,
                 max_bytes: int, max_chars: int) -> LibraryUpload:
    """Validate an upload (ValueError with what to fix) and return the adapter to store."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    descriptions = payload.get("descriptions", [payload["description"]] if "description" in payload else None)
    if not isinstance(descriptions, list) or not descriptions or len(descriptions) > MAX_LIBRARY_DESCRIPTIONS:
        raise ValueError(f"give the adapter's task as `description` (a string) or `descriptions` "
                         f"(1 to {MAX_LIBRARY_DESCRIPTIONS} strings)")
    texts = tuple(dict.fromkeys(normalize_description(d, max_chars) for d in descriptions))
    name = payload.get("name", "")
    if not isinstance(name, str) or len(name) > 200:
        raise ValueError("name must be a string of at most 200 characters")
    config, raw = payload.get("adapter_config"), payload.get("adapter_model")
    if not isinstance(config, dict) or not isinstance(raw, str):
        raise ValueError("adapter_config must be the PEFT adapter_config.json object and adapter_model the "
                         "adapter_model.safetensors file in base64")
    if len(raw) * 3 // 4 > max_bytes:
        raise ValueError(f"adapter_model is over the library limit of {max_bytes} bytes (--max-library-adapter-mib)")
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("adapter_model is not valid base64") from None
    if len(data) > max_bytes:
        raise ValueError(f"adapter_model is {len(data)} bytes; the library limit is {max_bytes} (--max-library-adapter-mib)")
    rank, alpha, rslora, targets = _check_config(config, spec, base_names, max_rank)
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise ValueError(f"adapter_model is not a readable safetensors file: {e}") from None
    _check_tensors(tensors, spec, rank, targets)
    digest = hashlib.sha256(b"library\0" + data + b"\0" + json.dumps(texts).encode()).hexdigest()
    aid = ADAPTER_PREFIX + digest[:ID_HEX_CHARS]
    return LibraryUpload(aid, texts, name, tensors, adapter_config(rank, alpha, rslora, targets, base_names[0]))


def _check_config(config: dict, spec: TargetSpec, base_names: tuple[str, ...],
                  max_rank: int | None) -> tuple[int, float, bool, list[str]]:
    if config.get("peft_type", "LORA") != "LORA":
        raise ValueError(f"only LoRA adapters can be registered, got peft_type {config.get('peft_type')!r}")
    for key, ok in (("use_dora", False), ("lora_bias", False)):
        if config.get(key, ok) not in (ok, None):
            raise ValueError(f"{key} adapters cannot be served by vLLM; train without it")
    if config.get("bias", "none") != "none" or config.get("modules_to_save"):
        raise ValueError("adapters with bias or modules_to_save cannot be served by vLLM; train without them")
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise ValueError("rank_pattern / alpha_pattern are not supported: one rank and alpha for every module")
    rank, alpha = config.get("r"), config.get("lora_alpha")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"r must be a positive integer, got {rank!r}")
    if max_rank is not None and rank > max_rank:
        raise ValueError(f"r is {rank}, over the server's --max-lora-rank {max_rank}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"lora_alpha must be a positive number, got {alpha!r}")
    targets = config.get("target_modules")
    if isinstance(targets, str):
        targets = [targets]
    if not isinstance(targets, list) or not targets or set(targets) - set(spec.module_names):
        raise ValueError(f"target_modules must be a list among {list(spec.module_names)} (the modules this "
                         f"server LoRA-wraps), got {targets!r}")
    declared = config.get("base_model_name_or_path")
    if declared:
        leaf = PurePosixPath(str(declared)).name.lower()
        if not any(n.lower().startswith(leaf) or leaf.startswith(n.lower()) for n in base_names if n):
            raise ValueError(f"the adapter was trained for {declared!r}, this server serves {base_names[0]!r}; "
                             "set base_model_name_or_path to it (or leave it out)")
    return rank, float(alpha), bool(config.get("use_rslora", False)), sorted(set(targets))


def _check_tensors(tensors: dict[str, torch.Tensor], spec: TargetSpec, rank: int, targets: list[str]) -> None:
    seen: set[tuple[int, str, str]] = set()
    for key, t in tensors.items():
        m = _KEY.match(key)
        if m is None:
            raise ValueError(f"unexpected tensor {key!r}: expected PEFT LoRA names "
                             "base_model.model.model.layers.<i>.<self_attn|mlp>.<module>.lora_<A|B>.weight")
        layer, parent, module, ab = int(m[1]), m[2], m[3], m[4]
        if module not in targets or layer >= spec.num_layers or spec.module(module).parent != parent:
            raise ValueError(f"tensor {key!r} is outside target_modules {targets} or the base model's "
                             f"{spec.num_layers} layers")
        shape = spec.module(module)
        want = (rank, shape.in_features) if ab == "A" else (shape.out_features, rank)
        if tuple(t.shape) != want:
            raise ValueError(f"tensor {key!r} has shape {list(t.shape)}, expected {list(want)} for this base model and r={rank}")
        if not t.is_floating_point() or not bool(torch.isfinite(t).all()):
            raise ValueError(f"tensor {key!r} must hold finite floating-point values")
        seen.add((layer, module, ab))
    if not seen:
        raise ValueError("adapter_model holds no LoRA tensors")
    for layer, module, ab in seen:
        if (layer, module, "B" if ab == "A" else "A") not in seen:
            raise ValueError(f"layer {layer} {module} has lora_{ab} without its partner")


class Library:
    """Library adapters by description: several descriptions per adapter, one reuse index.

    Without a router the index holds raw encoder vectors and a match is the
    nearest description at cosine >= threshold that passes the lexical check.
    With the checkpoint's router (routing.py) the index holds task-metric
    vectors, and a match must also be at least as close, less `margin`, as the
    nearest of the hypernetwork's training descriptions (that pass the check):
    a wording nearer a task the hypernetwork knows is left to the hypernetwork.
    """

    def __init__(self, dim: int, threshold: float | None, conflict=opposite_conflict, router: Router | None = None,
                 margin: float = DEFAULT_ROUTED_MARGIN):
        """conflict: the lexical check a cosine match must pass (reuse.py); the library's default only
        refuses opposites, as its descriptions and the requests' are written by different people."""
        if router is not None and router.dim != dim:
            raise ValueError(f"the router is {router.dim}-d, the encoder gives {dim}-d vectors")
        if not math.isfinite(margin):
            raise ValueError(f"library margin must be a finite number, got {margin}")
        self.index = ReuseIndex(dim, threshold, conflict=conflict)
        self.descriptions: dict[str, tuple[str, ...]] = {}  # adapter id -> its descriptions
        self.router, self.margin = router, margin
        self._known = router.known_projected() if router is not None else None  # [N, dim]

    def __contains__(self, adapter_id: str) -> bool:
        return adapter_id in self.descriptions

    def __len__(self) -> int:
        return len(self.descriptions)

    def add(self, adapter_id: str, descriptions: tuple[str, ...], embeddings: torch.Tensor | None) -> None:
        """embeddings: [len(descriptions), dim] encoder vectors, or None for canonical-text matching only."""
        self.remove(adapter_id)
        self.descriptions[adapter_id] = tuple(descriptions)
        if embeddings is not None and self.router is not None:
            embeddings = self.router.project(embeddings)
        for i, text in enumerate(descriptions):
            self.index.add(f"{adapter_id}#{i}", text, None if embeddings is None else embeddings[i])

    def remove(self, adapter_id: str) -> None:
        for i in range(len(self.descriptions.pop(adapter_id, ()))):
            self.index.remove(f"{adapter_id}#{i}")

    def match(self, text: str, embedding: torch.Tensor | None) -> ReuseMatch | None:
        """embedding: the description's [dim] encoder vector, or None (canonical text only)."""
        if self.router is None or embedding is None or self.index.threshold is None:
            hit = self.index.match(text, embedding)
        else:
            hit = self.index.exact(text) or self._routed(text, self.router.project(embedding))
        if hit is None:
            return None
        return ReuseMatch(hit.adapter_id.split("#")[0], hit.description, hit.similarity, "library")

    def _routed(self, text: str, q: torch.Tensor) -> ReuseMatch | None:
        """q: [dim] in the task metric. The nearest library description over the threshold that passes
        the check, unless a training description that passes it is closer by more than the margin."""
        for aid, desc, sim in self.index.nearest(q):
            if sim < self.index.threshold:
                return None
            if self.index.conflict(text, desc) is None:
                known = best_match(q, text, self._known, self.router.known_texts, self.index.conflict)
                if known is not None and sim < known[1] - self.margin:
                    return None
                return ReuseMatch(aid, desc, round(sim, 4), "semantic")
        return None

    def explain(self, text: str, embedding: torch.Tensor | None) -> dict:
        """What match() decides for `text` and why (admin preview): the decision, the nearest library
        descriptions, and with a router the nearest training description that competes."""
        match = self.match(text, embedding)
        out = {"threshold": self.index.threshold, "router": self.router is not None,
               "margin": self.margin if self.router is not None else None,
               "match": None if match is None else {"adapter_id": match.adapter_id, "description": match.description,
                                                    "similarity": match.similarity},
               "nearest": [], "nearest_known": None}
        if embedding is None or self.index.threshold is None:
            return out
        q = embedding if self.router is None else self.router.project(embedding)
        out["nearest"] = [{"adapter_id": aid.split("#")[0], "description": desc, "similarity": round(sim, 4),
                           "conflict": self.index.conflict(text, desc)} for aid, desc, sim in self.index.nearest(q, 5)]
        if self.router is not None:
            known = best_match(q, text, self._known, self.router.known_texts, self.index.conflict)
            if known is not None:
                out["nearest_known"] = {"description": self.router.known_texts[known[0]],
                                        "similarity": round(known[1], 4)}
        return out

"""From task descriptions to LoRA adapters: encoder + hypernetwork + writer.

    gen = AdapterGenerator.from_pretrained(hypernet_dir, base_model_dir)
    [adapter] = gen.generate(["Classify the sentiment of a tweet"])   # tensors
    path = gen.write(adapter, "/dev/shm/adapters")                    # folder
    [(adapter, path)] = gen.generate_to_dir([...], "/dev/shm/adapters")  # both at once

Adapters are byte-identical for the same (description, checkpoint), whatever
else was generated in the same call.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .adapter import (
    DEFAULT_MAX_DESCRIPTION_CHARS,
    HostCopier,
    adapter_config,
    adapter_id,
    adapter_tensors,
    normalize_description,
    write_adapter,
)
from .checkpoint import check_base_compatible, hypernet_digest, load_hypernet
from .confidence import ConfidenceIndex, load_confidence
from .cuda_graphs import ShapeGraphs
from .encoders import DescriptionEncoder, load_encoder
from .hypernet import HyperLoRA, LoraFactors
from .routing import Router, load_router
from .target_spec import read_base_config

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
# Encoder vectors kept after confidence() or embed() for a following generate() of the same text:
# the server scores a new description's confidence (or matches it for reuse), then generates it,
# and should pay one encoder pass, not two. Each text is encoded alone, so a kept vector is the
# one a fresh pass would give, bit for bit.
ENCODED_MEMO = 256


@dataclass
class Timings:
    """Milliseconds spent per stage, for a whole `generate` call."""

    encode_ms: float = 0.0
    hypernet_ms: float = 0.0
    write_ms: float = 0.0


@dataclass
class GeneratedAdapter:
    """One adapter in memory: its id, canonical description and PEFT tensors."""

    adapter_id: str
    description: str
    tensors: dict[str, torch.Tensor]
    peft_config: dict
    timings: Timings = field(default_factory=Timings)
    # Closeness to the training descriptions (confidence.py); None without an index.
    confidence: float | None = None
    # The description's encoder vector [enc_dim] (float32), for the reuse index (reuse.py).
    embedding: torch.Tensor | None = None


class AdapterGenerator:
    """Turns descriptions into adapters for one (hypernetwork, base model) pair."""

    def __init__(
        self,
        hypernet: HyperLoRA,
        encoder: DescriptionEncoder,
        base_model_name: str,
        dtype: str = "bfloat16",
        max_description_chars: int = DEFAULT_MAX_DESCRIPTION_CHARS,
        confidence_index: ConfidenceIndex | None = None,
        router: Router | None = None,
        cuda_graphs: bool = True,
    ):
        if dtype not in DTYPES:
            raise ValueError(f"adapter dtype {dtype!r} unknown; choose from {', '.join(DTYPES)}")
        if encoder.dim != hypernet.config.encoder.dim:
            raise ValueError(f"encoder gives {encoder.dim}-d vectors, hypernetwork expects {hypernet.config.encoder.dim}")
        self.hypernet = hypernet.eval()
        self.encoder = encoder
        self.base_model_name = base_model_name
        self.dtype = DTYPES[dtype]
        self.max_description_chars = max_description_chars
        if confidence_index is not None and confidence_index.dim != encoder.dim:
            raise ValueError(f"confidence index is {confidence_index.dim}-d, the encoder gives {encoder.dim}-d vectors")
        self.confidence_index = confidence_index
        if router is not None and router.dim != encoder.dim:
            raise ValueError(f"router is {router.dim}-d, the encoder gives {encoder.dim}-d vectors")
        # The task metric and training descriptions the library routes with (routing.py); None without one.
        self.router = router
        self._encoded: OrderedDict[str, torch.Tensor] = OrderedDict()  # text -> [enc_dim], ENCODED_MEMO newest
        self._encoded_lock = threading.Lock()
        # On CUDA one description's hypernetwork pass replays a CUDA graph (cuda_graphs.py).
        on_cuda = next(hypernet.parameters()).device.type == "cuda"
        self._hypernet_graph = ShapeGraphs(self._factor_tensors, max_graphs=1) if on_cuda and cuda_graphs else None
        self._to_host = HostCopier()
        # Computed once: the hypernetwork is immutable while it serves.
        self.digest = hypernet_digest(hypernet)
        self.peft_config = adapter_config(hypernet.config, base_model_name)

    @classmethod
    def from_pretrained(
        cls,
        hypernet_dir: str | Path,
        base_model_dir: str | Path,
        base_model_name: str | None = None,
        device: str = "cpu",
        **kwargs,
    ) -> "AdapterGenerator":
        """Load a checkpoint and its encoder, checking it fits the base model's config.json."""
        base_cfg = read_base_config(base_model_dir)
        hypernet = load_hypernet(hypernet_dir, device=device)
        check_base_compatible(hypernet.config, base_cfg, base_name=str(base_model_dir))
        encoder = load_encoder(hypernet.config.encoder, base_model_dir, device=device,
                               cuda_graphs=kwargs.get("cuda_graphs", True))
        kwargs.setdefault("confidence_index", load_confidence(hypernet_dir))
        kwargs.setdefault("router", load_router(hypernet_dir))
        return cls(hypernet, encoder, base_model_name or str(base_model_dir), **kwargs)

    def adapter_id(self, description: object) -> str:
        """The id a description would get, without generating anything."""
        return adapter_id(normalize_description(description, self.max_description_chars), self.digest)

    @torch.inference_mode()
    def confidence(self, descriptions: list[str]) -> list[float | None]:
        """Confidence of each description without generating (one encoder pass each)."""
        texts = [normalize_description(d, self.max_description_chars) for d in descriptions]
        if self.confidence_index is None:
            return [None] * len(texts)
        return self.confidence_index.score(self._encode(texts))

    @torch.inference_mode()
    def embed(self, descriptions: list[str]) -> torch.Tensor:
        """Descriptions -> [N, enc_dim] float32 encoder vectors, exactly those `generate` feeds the hypernetwork."""
        texts = [normalize_description(d, self.max_description_chars) for d in descriptions]
        return self._encode(texts).to("cpu", torch.float32)

    def _encode(self, texts: list[str]) -> torch.Tensor:
        """[N, enc_dim] encoder vectors, from the memo where a recent call encoded the text already."""
        with self._encoded_lock:
            known = {t: self._encoded[t] for t in texts if t in self._encoded}
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            fresh = self.encoder.encode(missing)  # [M, enc_dim], each text alone
            with self._encoded_lock:
                for text, vec in zip(missing, fresh):
                    known[text] = self._encoded[text] = vec
                while len(self._encoded) > ENCODED_MEMO:
                    self._encoded.popitem(last=False)
        return torch.stack([known[t] for t in texts])

    @torch.inference_mode()
    def generate(self, descriptions: list[str]) -> list[GeneratedAdapter]:
        """Descriptions -> adapters (ids, canonical texts, PEFT tensors).

        Each adapter carries the timings of the whole call (they are shared).
        """
        if isinstance(descriptions, str) or not isinstance(descriptions, (list, tuple)):
            raise ValueError("generate takes a list of descriptions")
        if not descriptions:
            raise ValueError("generate needs at least one description")
        texts = [normalize_description(d, self.max_description_chars) for d in descriptions]
        timings = Timings()
        t0 = time.perf_counter()
        emb = self._encode(texts)  # [N, enc_dim]; ~0 ms for a text confidence() or embed() just encoded
        t1 = time.perf_counter()
        emb = emb.to(next(self.hypernet.parameters()).device)
        # One forward per description: BLAS picks kernels by row count, so a
        # description's weights would differ in the last bits depending on what
        # it was batched with, and adapters must be byte-identical for the
        # same (description, checkpoint). Training uses the batched forward.
        per_text = [self._hypernet_pass(emb[i : i + 1]) for i in range(len(texts))]
        t2 = time.perf_counter()
        timings.encode_ms = (t1 - t0) * 1e3
        timings.hypernet_ms = (t2 - t1) * 1e3
        config = self.hypernet.config
        scores = self.confidence_index.score(emb) if self.confidence_index is not None else [None] * len(texts)
        return [
            GeneratedAdapter(
                adapter_id=adapter_id(text, self.digest),
                description=text,
                tensors=adapter_tensors(per_text[i], config, self.dtype, self._to_host),
                peft_config=self.peft_config,
                timings=timings,
                confidence=scores[i],
                embedding=emb[i].detach().to("cpu", torch.float32),
            )
            for i, text in enumerate(texts)
        ]

    def capture_graphs(self) -> int:
        """On CUDA, capture every graph generation will replay now (start-up) rather than on first use.

        Returns the number of graphs; 0 on the CPU.
        """
        count = self.encoder.capture_graphs()  # 0 without graphs
        if self._hypernet_graph is not None:
            with torch.inference_mode():
                dev = next(self.hypernet.parameters()).device
                self._hypernet_graph(torch.zeros(1, self.encoder.dim, device=dev))
            count += len(self._hypernet_graph)
        return count

    def _hypernet_pass(self, emb: torch.Tensor) -> LoraFactors:
        """emb [1, enc_dim] -> the factors of one adapter, from the CUDA graph where there is one."""
        if self._hypernet_graph is None:
            return self.hypernet(emb)
        flat = self._hypernet_graph(emb)  # (A, B) per module, in config order
        names = [m.name for m in self.hypernet.config.target.modules]
        return LoraFactors({n: (flat[2 * j], flat[2 * j + 1]) for j, n in enumerate(names)}, self.hypernet.config.scaling)

    def _factor_tensors(self, emb: torch.Tensor) -> tuple[torch.Tensor, ...]:
        factors = self.hypernet(emb).factors
        return tuple(t for m in self.hypernet.config.target.modules for t in factors[m.name])

    def write(self, adapter: GeneratedAdapter, root: str | Path) -> Path:
        """Write one adapter to `root/<adapter_id>/`; returns the folder."""
        t0 = time.perf_counter()
        path = write_adapter(adapter.tensors, adapter.peft_config, Path(root) / adapter.adapter_id)
        adapter.timings.write_ms += (time.perf_counter() - t0) * 1e3
        return path

    def generate_to_dir(self, descriptions: list[str], root: str | Path) -> list[tuple[GeneratedAdapter, Path]]:
        """One call from descriptions to adapter folders under `root`."""
        return [(a, self.write(a, root)) for a in self.generate(descriptions)]

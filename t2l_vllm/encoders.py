"""Task-description encoders: text in, one vector per description out.

Three kinds, chosen by `EncoderConfig.kind` through a dispatch table:
    hf-mean      any transformers encoder folder, mean pooling over real tokens
                 (default: the embedded all-MiniLM-L6-v2, 384-d)
    hf-cls       any transformers encoder folder, first-token (CLS) pooling
    base-hidden  the base LLM itself, mean-pooled last hidden state
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from .config import EncoderConfig
from .cuda_graphs import ShapeGraphs
from .defaults import default_encoder_dir
from .target_spec import MODEL_CONFIG_FILE


class DescriptionEncoder:
    """A frozen transformers model plus a pooling rule.

    On a CUDA device each description's pass replays a CUDA graph captured for
    its token count (cuda_graphs.py); `cuda_graphs=False` runs it eagerly.
    """

    def __init__(self, config: EncoderConfig, model_dir: Path, pooling: str, device: str | torch.device = "cpu",
                 cuda_graphs: bool = True):
        from transformers import AutoModel, AutoTokenizer

        self.config = config
        self.pooling = pooling
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModel.from_pretrained(str(model_dir), dtype=torch.float32).to(self.device).eval()
        found = int(self.model.config.hidden_size)
        if found != config.dim:
            raise ValueError(
                f"encoder {str(model_dir)!r} produces {found}-d vectors but the hypernetwork expects {config.dim}-d"
            )
        # Never more tokens than the model has positions for: max_tokens 256 on a
        # 128-position encoder made every long description raise (a 500 when serving).
        positions = getattr(self.model.config, "max_position_embeddings", None)
        self.max_length = min(config.max_tokens, int(positions)) if positions else config.max_tokens
        # One graph per token count a description can have: all of them stay captured.
        self.graphs = (ShapeGraphs(self._pass_ids, max_graphs=self.max_length)
                       if cuda_graphs and self.device.type == "cuda" else None)

    @property
    def dim(self) -> int:
        return self.config.dim

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> torch.Tensor:
        """texts: N descriptions -> [N, dim] float32 embeddings.

        Each text is encoded on its own (a batch of one) so its vector never
        depends on what it was batched with: padding changes kernel shapes,
        and with them the last bits of the result, which would break
        byte-identical adapters for identical descriptions.
        """
        return torch.cat([self._encode_one(t) for t in texts], dim=0)

    def _encode_one(self, text: str) -> torch.Tensor:
        batch = self.tokenizer(
            [text], return_tensors="pt", truncation=True, max_length=self.max_length
        ).to(self.device)
        if self.device.type == "cuda":
            ids = batch["input_ids"]  # [1, T]
            [vec] = self.graphs(ids) if self.graphs is not None else self._pass_ids(ids)
            return vec
        hidden = self.model(**batch).last_hidden_state  # [1, T, dim]
        return self._pool(hidden, batch["attention_mask"])

    def _pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """hidden [1, T, dim], attention_mask [1, T] -> [1, dim] float32."""
        if self.pooling == "cls":
            return hidden[:, 0].float()
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # [1, T, 1]
        return ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).float()

    def capture_graphs(self) -> int:
        """Capture the CUDA graph of every token count up to max_length now; returns how many exist.

        Otherwise the first description of each count pays its capture (~10 ms
        on an H200); all counts take a few seconds, once, at start-up.
        No-op without graphs (CPU, or cuda_graphs=False).
        """
        if self.graphs is None:
            return 0
        token = self.tokenizer.cls_token_id if self.tokenizer.cls_token_id is not None else 0
        with torch.inference_mode():
            for length in range(1, self.max_length + 1):
                self.graphs(torch.full((1, length), token, dtype=torch.long, device=self.device))
        return len(self.graphs)

    def _pass_ids(self, ids: torch.Tensor) -> tuple[torch.Tensor]:
        """The CUDA pass of one unpadded description: ids [1, T] -> ([1, dim],).

        No attention mask goes in (one text has no padding): building one from a
        mask reads it on the host, which graph capture forbids.
        """
        hidden = self.model(input_ids=ids).last_hidden_state  # [1, T, dim]
        return (self._pool(hidden, torch.ones_like(ids)),)


def _hf_mean(config: EncoderConfig, base_model_dir: Path | None, device: str, graphs: bool) -> DescriptionEncoder:
    src = default_encoder_dir() if config.source == "default" else Path(config.source)
    return DescriptionEncoder(config, src, "mean", device, graphs)


def _hf_cls(config: EncoderConfig, base_model_dir: Path | None, device: str, graphs: bool) -> DescriptionEncoder:
    src = default_encoder_dir() if config.source == "default" else Path(config.source)
    return DescriptionEncoder(config, src, "cls", device, graphs)


def _base_hidden(config: EncoderConfig, base_model_dir: Path | None, device: str, graphs: bool) -> DescriptionEncoder:
    if config.source != "default":
        src = Path(config.source)
    elif base_model_dir is not None:
        src = Path(base_model_dir)
    else:
        raise ValueError("the base-hidden encoder needs the base model folder (pass base_model_dir)")
    return DescriptionEncoder(config, src, "mean", device, graphs)


ENCODER_LOADERS: dict[str, Callable[[EncoderConfig, Path | None, str, bool], DescriptionEncoder]] = {
    "hf-mean": _hf_mean,
    "hf-cls": _hf_cls,
    "base-hidden": _base_hidden,
}


def load_encoder(
    config: EncoderConfig, base_model_dir: str | Path | None = None, device: str = "cpu", cuda_graphs: bool = True
) -> DescriptionEncoder:
    """Build the encoder a hypernetwork config names (`cuda_graphs`: see DescriptionEncoder)."""
    src = config.source
    if src != "default" and not (Path(src) / MODEL_CONFIG_FILE).is_file():
        raise ValueError(f"encoder folder {src!r} has no {MODEL_CONFIG_FILE}")
    return ENCODER_LOADERS[config.kind](config, Path(base_model_dir) if base_model_dir else None, device, cuda_graphs)

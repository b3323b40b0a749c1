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
from .defaults import default_encoder_dir
from .target_spec import MODEL_CONFIG_FILE


class DescriptionEncoder:
    """A frozen transformers model plus a pooling rule."""

    def __init__(self, config: EncoderConfig, model_dir: Path, pooling: str, device: str | torch.device = "cpu"):
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
        hidden = self.model(**batch).last_hidden_state  # [1, T, dim]
        if self.pooling == "cls":
            return hidden[:, 0].float()
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [1, T, 1]
        return ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).float()


def _hf_mean(config: EncoderConfig, base_model_dir: Path | None, device: str) -> DescriptionEncoder:
    src = default_encoder_dir() if config.source == "default" else Path(config.source)
    return DescriptionEncoder(config, src, "mean", device)


def _hf_cls(config: EncoderConfig, base_model_dir: Path | None, device: str) -> DescriptionEncoder:
    src = default_encoder_dir() if config.source == "default" else Path(config.source)
    return DescriptionEncoder(config, src, "cls", device)


def _base_hidden(config: EncoderConfig, base_model_dir: Path | None, device: str) -> DescriptionEncoder:
    if config.source != "default":
        src = Path(config.source)
    elif base_model_dir is not None:
        src = Path(base_model_dir)
    else:
        raise ValueError("the base-hidden encoder needs the base model folder (pass base_model_dir)")
    return DescriptionEncoder(config, src, "mean", device)


ENCODER_LOADERS: dict[str, Callable[[EncoderConfig, Path | None, str], DescriptionEncoder]] = {
    "hf-mean": _hf_mean,
    "hf-cls": _hf_cls,
    "base-hidden": _base_hidden,
}


def load_encoder(
    config: EncoderConfig, base_model_dir: str | Path | None = None, device: str = "cpu"
) -> DescriptionEncoder:
    """Build the encoder a hypernetwork config names."""
    src = config.source
    if src != "default" and not (Path(src) / MODEL_CONFIG_FILE).is_file():
        raise ValueError(f"encoder folder {src!r} has no {MODEL_CONFIG_FILE}")
    return ENCODER_LOADERS[config.kind](config, Path(base_model_dir) if base_model_dir else None, device)

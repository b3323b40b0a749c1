"""Shared fixtures: tiny random models built offline in seconds.

- `tiny_base_dir`: a 2-layer Llama (hidden 128, head_dim 64: the smallest head
  size vLLM's CPU attention takes comfortably) with a BPE tokenizer trained on
  the spot and a chat template, saved as a float32 transformers folder.
- `tiny_encoder_dir`: a 2-layer BERT encoder (hidden 32) sharing that tokenizer.
- `tiny_hypernet_config` / `tiny_hypernet_dir`: a hypernetwork for the tiny base
  whose heads are randomised, so its adapters are non-zero and really change
  the model's output.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CORPUS = [
    "Classify the sentiment of a tweet as positive or negative.",
    "Translate the word into French. Answer with one word.",
    "The capital of France is Paris. The capital of Italy is Rome.",
    "Count the vowels in the input and answer with a number.",
    "Extract the year from the sentence. Reverse the string. Sort the list.",
    "hello world, what is the answer? yes no maybe 0 1 2 3 4 5 6 7 8 9",
] * 20


def _build_tokenizer(out_dir: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)
    return fast


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny-llama")
    tok = _build_tokenizer(out)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=512,
        # A wide init gives peaked logits, so greedy decoding has no near-ties
        # that two correct implementations could break differently.
        initializer_range=0.2,
        tie_word_embeddings=False,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    from transformers import BertConfig, BertModel

    out = tmp_path_factory.mktemp("tiny-encoder")
    tok = _build_tokenizer(out)
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(1)
    BertModel(config).save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="session")
def tiny_hypernet_config(tiny_base_dir, tiny_encoder_dir):
    from t2l_vllm.config import EncoderConfig, HypernetConfig
    from t2l_vllm.target_spec import target_spec_from_dir

    return HypernetConfig(
        target=target_spec_from_dir(tiny_base_dir),
        encoder=EncoderConfig(kind="hf-mean", source=str(tiny_encoder_dir), dim=32),
        latent_dim=32,
        head_in_dim=64,
    )


@pytest.fixture(scope="session")
def tiny_hypernet_dir(tmp_path_factory, tiny_hypernet_config) -> Path:
    from t2l_vllm.checkpoint import save_hypernet
    from t2l_vllm.hypernet import HyperLoRA, randomise_heads

    net = randomise_heads(HyperLoRA.initialise(tiny_hypernet_config, seed=0))
    return save_hypernet(net, tmp_path_factory.mktemp("hn") / "tiny-hypernet")


@pytest.fixture(scope="session")
def tiny_generator(tiny_hypernet_dir, tiny_base_dir):
    from t2l_vllm.generator import AdapterGenerator

    return AdapterGenerator.from_pretrained(tiny_hypernet_dir, tiny_base_dir, dtype="float32")


def run_python(args: list[str], env: dict | None = None, timeout: float = 900):
    """Run a Python script of the test suite in a fresh interpreter (vLLM wants its own process)."""
    import subprocess

    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=full_env, cwd=str(ROOT)
    )


# Descriptions the tiny hypernetwork's confidence index is built from ("trained on").
TINY_TRAINED_DESCRIPTIONS = ("Answer yes or no.", "Reply with the first letter of the word.")


@pytest.fixture(scope="session")
def tiny_hypernet_with_confidence(tmp_path_factory, tiny_hypernet_dir, tiny_generator) -> Path:
    """The tiny hypernetwork plus a confidence index over TINY_TRAINED_DESCRIPTIONS (same digest, same ids)."""
    import shutil

    from t2l_vllm.confidence import build_confidence_index

    out = tmp_path_factory.mktemp("hn-conf") / "tiny-hypernet"
    shutil.copytree(tiny_hypernet_dir, out)
    build_confidence_index(tiny_generator.encoder, list(TINY_TRAINED_DESCRIPTIONS)).save(out)
    return out

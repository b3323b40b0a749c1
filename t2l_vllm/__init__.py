"""t2l-vllm: Text-to-LoRA adapters generated on the fly and served by vLLM."""

__version__ = "0.1.0"

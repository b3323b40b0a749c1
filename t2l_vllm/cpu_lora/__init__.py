"""CPU multi-LoRA for vLLM: our replacement for vLLM's per-token CPU punica path.

    grouped_ops.py   shrink/expand ops grouped by adapter (vLLM's logits and embedding LoRA calls)
    packed.py        one LoRA linear layer as two GEMMs over packed adapter weights (pure torch)
    vllm_install.py  installs both into vLLM's CPU punica wrapper (the only module here that
                     touches vLLM internals; run by the general plugin in every vLLM process)
"""

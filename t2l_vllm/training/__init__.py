"""Training the hypernetwork and its baselines (CLI subcommands `t2l-vllm train-*`).

    data.py             examples -> token batches with completion-only labels
    functional_lora.py  generated LoRA factors applied to a frozen base model by hooks
    loop.py             checkpoint / resume plumbing shared by every trainer
    sft.py              T2L SFT: hypernetwork trained end to end through the base model
    peft_lora.py        baselines with PEFT: per-task oracle LoRAs and one multi-task LoRA
    reconstruction.py   T2L reconstruction: hypernetwork regresses the oracle library
"""

"""The one prompt format shared by training and evaluation.

Training and `t2l-vllm eval` must feed the model exactly the same tokens, so
both render prompts here, with the base model's own chat template:

    base       input as the user message (the template's default system prompt)
    base+desc  description as the system message, input as the user message
    t2l        input alone as the user message; the adapter carries the task
    t2l+desc   description as the system message and the adapter

The multi-task LoRA is trained and scored with the `base+desc` prompt (it must
read the task somewhere); oracles and the robustness probes use the `t2l` one.
The answer the model is trained to produce is the target followed by the
template's end-of-turn token.
"""

from __future__ import annotations

PROMPT_STYLES = ("base", "base+desc", "t2l", "t2l+desc")


def chat_messages(style: str, description: str, user_input: str) -> list[dict[str, str]]:
    """The chat messages for one example in one prompt style."""
    if style not in PROMPT_STYLES:
        raise ValueError(f"prompt style {style!r} unknown; choose from {', '.join(PROMPT_STYLES)}")
    messages = []
    if style.endswith("+desc"):
        messages.append({"role": "system", "content": description})
    messages.append({"role": "user", "content": user_input})
    return messages


def prompt_ids(tokenizer, style: str, description: str, user_input: str) -> list[int]:
    """Token ids of the rendered prompt, ending with the assistant turn's header."""
    text = tokenizer.apply_chat_template(
        chat_messages(style, description, user_input), tokenize=False, add_generation_prompt=True
    )
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def answer_ids(tokenizer, target: str) -> list[int]:
    """Token ids the model should produce: the target, then end of turn (the EOS token)."""
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos_token; set one in its tokenizer_config.json")
    return tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]

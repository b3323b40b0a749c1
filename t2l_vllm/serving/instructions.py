"""Put a task description into a request body as the model's instructions.

The "prompt" and "both" serving paths (low-confidence policy) send the
description the way a user would without t2l: as the system message. Each
OpenAI-style route keeps its instructions in its own place:

    /v1/chat/completions, /v1/chat/completions/batch   messages[0] with role "system"
    /v1/completions                                   text before the prompt
    /v1/responses                                     "instructions"
    /v1/messages (Anthropic)                          "system"
    /invocations                                      as chat or completions, by body shape

A system message the client already sent is kept, after the description.
Pure functions on the parsed JSON body; no vLLM.
"""

from __future__ import annotations

SEPARATOR = "\n\n"


def add_instructions(path: str, payload: dict, description: str) -> bool:
    """Add `description` as instructions to `payload` (in place); False when the body has no place for text."""
    if path == "/invocations":
        path = "/v1/chat/completions" if "messages" in payload else "/v1/completions"
    handler = _BY_ROUTE.get(path)
    return handler(payload, description) if handler else False


def _system_first(messages: object, description: str) -> bool:
    if not isinstance(messages, list):
        return False
    first = messages[0] if messages else None
    if isinstance(first, dict) and first.get("role") in ("system", "developer") and isinstance(first.get("content"), str):
        messages[0] = {**first, "content": description + SEPARATOR + first["content"]}
    else:
        messages.insert(0, {"role": "system", "content": description})
    return True


def _chat(payload: dict, description: str) -> bool:
    return _system_first(payload.get("messages"), description)


def _chat_batch(payload: dict, description: str) -> bool:
    conversations = payload.get("messages")
    if not isinstance(conversations, list) or not all(isinstance(c, list) for c in conversations):
        return False
    return all(_system_first(c, description) for c in conversations)


def _completions(payload: dict, description: str) -> bool:
    prompt = payload.get("prompt")
    if isinstance(prompt, str):
        payload["prompt"] = description + SEPARATOR + prompt
        return True
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        payload["prompt"] = [description + SEPARATOR + p for p in prompt]
        return True
    return False  # token-id prompts: no text to put the description in


def _responses(payload: dict, description: str) -> bool:
    existing = payload.get("instructions")
    payload["instructions"] = description + SEPARATOR + existing if isinstance(existing, str) and existing else description
    return True


def _messages(payload: dict, description: str) -> bool:
    system = payload.get("system")
    if isinstance(system, list):
        payload["system"] = [{"type": "text", "text": description}, *system]
    else:
        payload["system"] = description + SEPARATOR + system if isinstance(system, str) and system else description
    return True


_BY_ROUTE = {
    "/v1/chat/completions": _chat,
    "/v1/chat/completions/batch": _chat_batch,
    "/v1/completions": _completions,
    "/v1/responses": _responses,
    "/v1/messages": _messages,
}

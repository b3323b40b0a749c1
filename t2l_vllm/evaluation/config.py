"""The eval modes (which prompt each renders, which need a hypernetwork) and the run's settings."""

from __future__ import annotations

from dataclasses import dataclass

from t2l_vllm.confidence import DEFAULT_MIN_CONFIDENCE, DEFAULT_POLICY, POLICIES

MODES = ("base", "base+desc", "t2l", "t2l+desc", "multitask", "oracle", "random-desc", "other-desc", "policy")
DEFAULT_MODES = ("base", "base+desc", "t2l", "t2l+desc")
# The prompt each mode renders.
PROMPT_STYLE = {
    "base": "base",
    "base+desc": "base+desc",
    "t2l": "t2l",
    "t2l+desc": "t2l+desc",
    "multitask": "base+desc",
    "oracle": "t2l",
    "random-desc": "t2l",
    "other-desc": "t2l",
    "policy": "t2l",  # per example, the path the server's policy picks (plan.py): t2l, base+desc or t2l+desc
}
GENERATED_MODES = ("t2l", "t2l+desc", "random-desc", "other-desc", "policy")
# The prompt of each serving path of the low-confidence policy.
ROUTE_STYLE = {"adapter": "t2l", "prompt": "base+desc", "both": "t2l+desc"}


def parse_modes(text: str) -> tuple[str, ...]:
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ValueError(f"unknown modes {unknown}; choose from {', '.join(MODES)}")
    if len(set(modes)) != len(modes):
        raise ValueError(f"mode listed twice in {text!r}")
    return modes


@dataclass(frozen=True)
class EvalConfig:
    modes: tuple[str, ...] = DEFAULT_MODES
    max_tokens: int = 32
    seed: int = 0
    max_loras: int = 32
    # Mode "policy": what `t2l-vllm serve` would serve with these settings.
    policy: str = DEFAULT_POLICY
    min_confidence: float = DEFAULT_MIN_CONFIDENCE

    def __post_init__(self) -> None:
        parse_modes(",".join(self.modes))
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")
        if not 1 <= self.max_tokens <= 4096:
            raise ValueError(f"max_tokens must be in [1, 4096], got {self.max_tokens}")
        if self.max_loras < 1:
            raise ValueError(f"max_loras must be >= 1, got {self.max_loras}")

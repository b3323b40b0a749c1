"""The vLLM plugin entry points of t2l-vllm, in one place.

No imports: setup.py executes this file to declare the entry points, and
`t2l-vllm serve` lists the names in VLLM_PLUGINS.
"""

# `vllm.general_plugins`: runs in every vLLM process (CPU LoRA ops, LoRA resolver).
GENERAL_PLUGIN = "t2l_vllm"
# `vllm.endpoint_plugins`: the API server's middleware, admin routes and adapter service.
ENDPOINT_PLUGIN = "t2l_vllm_endpoints"

ENTRY_POINTS = {
    "vllm.general_plugins": [f"{GENERAL_PLUGIN}=t2l_vllm.serving.vllm_plugin:register_general_plugin"],
    "vllm.endpoint_plugins": [f"{ENDPOINT_PLUGIN}=t2l_vllm.serving.vllm_plugin:T2LEndpointPlugin"],
}

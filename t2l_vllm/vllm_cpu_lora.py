"""Installs the grouped LoRA ops (`lora_ops.py`) into vLLM's CPU punica wrapper.

The only place that touches vLLM's LoRA internals. Three hooks:

1. The module-level op names `vllm.lora.punica_wrapper.punica_cpu` imported from
   `vllm.lora.ops.torch_ops` (`bgmv_shrink`, `sgmv_expand`, ...) become ours:
   same math, tokens grouped by adapter, -1 tokens untouched.
2. `PunicaWrapperCPU`'s per-layer shrink / expand-slice methods (what every
   LoRA linear layer calls) use one `TokenGroups` per batch, computed once in
   `update_metadata` instead of once per layer, and skip adapter slots whose
   weights for that layer are all zero (vLLM applies LoRA to every supported
   module; an adapter for q_proj+v_proj leaves k, o, gate, up, down at zero).
3. `LoRAModelManager.activate_adapter`, the one place slot weights are written,
   bumps a counter that invalidates the cached zero flags.

Runs from our `vllm.general_plugins` entry, i.e. in every vLLM process (the
worker is the one that matters). Only for the vLLM versions whose op signatures
were checked; anything else is left untouched with a log line. Off switch:
T2L_VLLM_LORA_OPS=vllm.
"""

from __future__ import annotations

import functools
import logging

from . import envs, lora_ops

logger = logging.getLogger("vllm.t2l_vllm")

SUPPORTED_VLLM = ("0.32.",)
_BGMV = ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice")
_SGMV = ("sgmv_shrink", "sgmv_expand", "sgmv_expand_slice")


def _vllm_version() -> str:
    import vllm

    return getattr(vllm, "__version__", "unknown")


def _guarded(name: str, ours, original):
    """Ours for the shapes vLLM's CPU wrapper passes; vLLM's op for anything else."""
    if name in _SGMV:
        return functools.wraps(original)(ours)

    @functools.wraps(original)
    def op(inputs, weights, output_tensor, indices, *args, **kwargs):
        if lora_ops.rows_match(inputs, output_tensor, indices):
            return ours(inputs, weights, output_tensor, indices, *args, **kwargs)
        return original(inputs, weights, output_tensor, indices, *args, **kwargs)

    op.t2l_original = original
    return op


# Bumped whenever vLLM writes adapter weights into a slot (inference tensors
# have no version counter to tell us).
_weights_generation = 0
_live_cache: dict[int, tuple[int, list[bool]]] = {}


def _live(weights):
    """slot -> whether this layer's stacked weights are non-zero for it (cached per generation)."""
    key = id(weights)
    hit = _live_cache.get(key)
    if hit is None or hit[0] != _weights_generation:
        flags = (lora_ops.slot_weights(weights).flatten(1) != 0).any(1).tolist()
        hit = _live_cache[key] = (_weights_generation, flags)
    flags = hit[1]
    return lambda slot: flags[slot]


def _patch_wrapper(wrapper_cls) -> None:
    """Hook 2: batch-level grouping and zero-slot skipping in the per-layer methods."""
    original = {
        name: getattr(wrapper_cls, name)
        for name in (
            "update_metadata", "_shrink_prefill", "_shrink_decode", "_expand_slice_prefill", "_expand_slice_decode",
        )
    }

    def update_metadata(self, *args, **kwargs):
        original["update_metadata"](self, *args, **kwargs)
        self._t2l_groups = None

    def groups(self, rows: int):
        indices = self.token_lora_indices
        if indices.shape[0] != rows:
            return None
        if getattr(self, "_t2l_groups", None) is None:
            self._t2l_groups = lora_ops.TokenGroups.from_indices(indices)
        return self._t2l_groups

    def make_shrink(fallback):
        def shrink(self, y, x, w_t_all, scale):
            g = groups(self, x.shape[0])
            if g is None or y.shape[0] != x.shape[0]:
                return fallback(self, y, x, w_t_all, scale)
            rank = lora_ops.slot_weights(w_t_all).shape[1]
            lora_ops.grouped_lora(x, w_t_all, y[:, :rank], g, add=False, scaling=scale, live=_live(w_t_all))

        return shrink

    def make_expand_slice(fallback):
        def expand_slice(self, y, x, w_t_all, y_offset, y_slice_size, add_inputs):
            g = groups(self, x.shape[0])
            if g is None or y.shape[0] != x.shape[0]:
                return fallback(self, y, x, w_t_all, y_offset, y_slice_size, add_inputs)
            target = y[:, y_offset : y_offset + y_slice_size]
            lora_ops.grouped_lora(x, w_t_all, target, g, add=add_inputs, live=_live(w_t_all))

        return expand_slice

    original_linear = wrapper_cls.add_lora_linear

    def add_lora_linear(self, y, x, lora_a_stacked, lora_b_stacked, scale, output_slices, *, buffer=None, **kwargs):
        x2 = x.view(-1, x.shape[-1])
        y2 = y.view(-1, y.shape[-1])
        g = groups(self, x2.shape[0])
        if g is None or buffer is not None or y2.shape[0] != x2.shape[0]:
            return original_linear(
                self, y, x, lora_a_stacked, lora_b_stacked, scale, output_slices, buffer=buffer, **kwargs
            )
        lora_ops.lora_linear(x2, y2, lora_a_stacked, lora_b_stacked, output_slices, scale, g, live=_live)

    wrapper_cls.add_lora_linear = add_lora_linear
    wrapper_cls.update_metadata = update_metadata
    for name in ("_shrink_prefill", "_shrink_decode"):
        setattr(wrapper_cls, name, make_shrink(original[name]))
    for name in ("_expand_slice_prefill", "_expand_slice_decode"):
        setattr(wrapper_cls, name, make_expand_slice(original[name]))


def _patch_manager(manager_cls) -> None:
    """Hook 3: every slot write invalidates the zero flags."""
    original = manager_cls.activate_adapter

    @functools.wraps(original)
    def activate_adapter(self, *args, **kwargs):
        global _weights_generation
        try:
            written = original(self, *args, **kwargs)
        except BaseException:
            _weights_generation += 1  # a slot may be half written
            raise
        if written:  # False: the adapter was active already, nothing written
            _weights_generation += 1
        return written

    manager_cls.activate_adapter = activate_adapter


def install() -> bool:
    """Swap the ops in; True when installed (idempotent)."""
    if envs.lora_ops() == "vllm":
        return False
    version = _vllm_version()
    if not version.startswith(SUPPORTED_VLLM):
        logger.info("t2l-vllm: vLLM %s is not one the grouped LoRA ops were checked against; keeping vLLM's", version)
        return False
    try:
        from vllm.lora.model_manager import LoRAModelManager
        from vllm.lora.punica_wrapper import punica_cpu
    except ImportError as e:  # a build without the CPU wrapper
        logger.info("t2l-vllm: no CPU punica wrapper (%s); keeping vLLM's LoRA ops", e)
        return False
    if getattr(punica_cpu, "_t2l_installed", False):
        return True
    for name in _BGMV + _SGMV:
        original = getattr(punica_cpu, name)
        setattr(punica_cpu, name, _guarded(name, lora_ops.OPS[name], original))
    _patch_wrapper(punica_cpu.PunicaWrapperCPU)
    _patch_manager(LoRAModelManager)
    punica_cpu._t2l_installed = True
    logger.debug("t2l-vllm: grouped CPU LoRA ops installed")
    return True

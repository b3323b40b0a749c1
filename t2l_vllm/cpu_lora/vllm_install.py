"""Installs our CPU LoRA path into vLLM's CPU punica wrapper.

The only place that touches vLLM's LoRA internals. Four hooks:

1. The module-level op names `vllm.lora.punica_wrapper.punica_cpu` imported from
   `vllm.lora.ops.torch_ops` (`bgmv_shrink`, `sgmv_expand`, ...) become ours
   (`grouped_ops.py`): same math, tokens grouped by adapter, -1 tokens untouched.
   They serve the LoRA logits, embedding and any call hook 2 passes on.
2. `PunicaWrapperCPU.add_lora_linear`, what every LoRA linear layer calls,
   becomes `packed.lora_linear`: one `BatchPlan` per batch (reset in
   `update_metadata`) and each layer's adapters packed for two GEMMs.
   `add_lora_logits` returns at once while no adapter has LM-head weights.
3. `LoRAModelManager.activate_adapter`, the one place slot weights are written,
   tells the packed weights which slot changed (each layer re-reads that slot only).
4. `CpuPlatform.check_and_update_config`: vLLM turns torch.compile off on CPU
   whenever LoRA is enabled, because its CPU LoRA path branches in Python on
   per-step metadata that a graph traced once would freeze. Ours does not:
   compiled code calls `torch.ops.t2l_vllm.lora_linear`, a custom op the
   compiler cannot see into, which reads the step's plan when it runs. So
   the LoRA engine stays compiled like the same engine without LoRA. (Left
   eager, it would also run vLLM's slow native rotary embedding and norms:
   vLLM picks its custom-op default for the compiled mode before switching
   compilation off.)

Runs from our `vllm.general_plugins` entry, i.e. in every vLLM process (the
worker is the one that matters). Only for the vLLM versions whose op signatures
were checked; anything else is left untouched with a log line. Off switch:
T2L_VLLM_LORA_OPS=vllm.
"""

from __future__ import annotations

import functools
import logging

import torch

from .. import envs
from . import grouped_ops as lora_ops
from . import packed as packed_lora

logger = logging.getLogger("vllm.t2l_vllm")

SUPPORTED_VLLM = ("0.32.",)
_BGMV = ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice")
_SGMV = ("sgmv_shrink", "sgmv_expand", "sgmv_expand_slice")

# One per process: vLLM runs one model (one punica wrapper) per worker process.
_packed = packed_lora.PackedCache()


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


# The wrapper whose metadata the current step was planned with (one per worker process).
_active_wrapper = None


def _lora_linear(wrapper, y, x, lora_a_stacked, lora_b_stacked, scale, output_slices) -> None:
    """`packed.lora_linear` with the step's plan; vLLM's own op when the shapes are not the usual ones."""
    if wrapper._t2l_plan is None:
        wrapper._t2l_plan = packed_lora.BatchPlan.from_indices(wrapper.token_lora_indices)
    if not packed_lora.lora_linear(x, y, lora_a_stacked, lora_b_stacked, output_slices, scale, wrapper._t2l_plan, _packed):
        wrapper._t2l_original_linear(y, x, lora_a_stacked, lora_b_stacked, scale, output_slices)


def _lora_linear_op(
    y: torch.Tensor,
    x: torch.Tensor,
    lora_a_stacked: list[torch.Tensor],
    lora_b_stacked: list[torch.Tensor],
    output_slices: list[int],
    scale: float,
) -> None:
    """`torch.ops.t2l_vllm.lora_linear`: what a compiled model calls; opaque to the compiler.

    The batch plan is Python state that changes every step, so the compiled
    graph must not bake it in: it is read here, at run time.
    """
    if _active_wrapper is not None:  # None: no step has been planned, so no adapter is active
        _lora_linear(_active_wrapper, y, x, lora_a_stacked, lora_b_stacked, scale, output_slices)


def _lora_linear_fake(y, x, lora_a_stacked, lora_b_stacked, output_slices, scale) -> None:
    return None


_op_library = None


def _register_op() -> None:
    global _op_library
    if _op_library is not None:
        return
    from torch.library import Library
    from vllm.utils.torch_utils import direct_register_custom_op

    _op_library = Library("t2l_vllm", "FRAGMENT")  # the op lives as long as this object
    direct_register_custom_op(
        "lora_linear", _lora_linear_op, mutates_args=["y"], fake_impl=_lora_linear_fake, target_lib=_op_library
    )


def _patch_wrapper(wrapper_cls) -> None:
    """Hook 2: one plan per batch, packed two-GEMM LoRA per linear layer."""
    original_update = wrapper_cls.update_metadata
    original_linear = wrapper_cls.add_lora_linear
    original_logits = wrapper_cls.add_lora_logits

    @functools.wraps(original_update)
    def update_metadata(self, *args, **kwargs):
        global _active_wrapper
        original_update(self, *args, **kwargs)
        self._t2l_plan = None
        _active_wrapper = self

    @functools.wraps(original_linear)
    def add_lora_linear(self, y, x, lora_a_stacked, lora_b_stacked, scale, output_slices, *, buffer=None, **kwargs):
        if buffer is not None:
            return original_linear(
                self, y, x, lora_a_stacked, lora_b_stacked, scale, output_slices, buffer=buffer, **kwargs
            )
        if torch.compiler.is_compiling():
            torch.ops.t2l_vllm.lora_linear(y, x, list(lora_a_stacked), list(lora_b_stacked), list(output_slices), scale)
        else:
            _lora_linear(self, y, x, lora_a_stacked, lora_b_stacked, scale, output_slices)

    @functools.wraps(original_logits)
    def add_lora_logits(self, y, x, lora_a_stacked, lora_b_stacked, scale, **kwargs):
        # vLLM wraps the LM head for LoRA whatever the adapters target; with no
        # adapter weights there (ours never have any) the update is exactly zero.
        if not _packed.nonzero(lora_b_stacked):
            return None
        return original_logits(self, y, x, lora_a_stacked, lora_b_stacked, scale, **kwargs)

    wrapper_cls._t2l_plan = None
    wrapper_cls._t2l_original_linear = original_linear  # for `_lora_linear`'s fallback
    wrapper_cls.add_lora_linear = add_lora_linear
    wrapper_cls.add_lora_logits = add_lora_logits
    wrapper_cls.update_metadata = update_metadata


def _patch_manager(manager_cls) -> None:
    """Hook 3: every slot write is reported to the packed weights (only that slot is re-read)."""
    original = manager_cls.activate_adapter

    @functools.wraps(original)
    def activate_adapter(self, *args, **kwargs):
        before = list(self.lora_index_to_id)
        try:
            written = original(self, *args, **kwargs)
        except BaseException:
            _packed.clear()  # a slot may be half written
            raise
        if written:  # False: the adapter was active already, nothing written
            # vLLM writes an adapter into the first free slot and records it in lora_index_to_id.
            slots = [i for i, (old, new) in enumerate(zip(before, self.lora_index_to_id)) if old != new]
            if slots:
                _packed.slots_written(slots)
            else:
                _packed.clear()
        return written

    manager_cls.activate_adapter = activate_adapter


def _patch_platform(platform_cls) -> None:
    """Hook 4: a LoRA engine on CPU stays compiled, as the same engine without LoRA is."""
    original = platform_cls.check_and_update_config.__func__

    @functools.wraps(original)
    def check_and_update_config(cls, vllm_config):
        from vllm.config import CompilationMode

        compilation = vllm_config.compilation_config
        requested = compilation.mode
        original(cls, vllm_config)
        forced_eager = requested == CompilationMode.VLLM_COMPILE and compilation.mode == CompilationMode.NONE
        if vllm_config.lora_config is not None and forced_eager:
            # What vLLM's CPU platform sets for a compiled model (its backend and
            # inductor options are already in place), before its LoRA override.
            compilation.mode = CompilationMode.DYNAMO_TRACE_ONCE
            logger.debug("t2l-vllm: keeping torch.compile on for the CPU LoRA engine")

    platform_cls.check_and_update_config = classmethod(check_and_update_config)


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
        from vllm.platforms.cpu import CpuPlatform
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
    _patch_platform(CpuPlatform)
    _register_op()
    punica_cpu._t2l_installed = True
    logger.debug("t2l-vllm: grouped CPU LoRA ops installed")
    return True

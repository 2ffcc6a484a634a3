"""bf16 automatic mixed precision on the CPU.

mmengine's ``AmpOptimWrapper`` refuses to run without a CUDA, NPU, MLU or
MUSA device; on the CPU the autocast dtype is bfloat16, whose exponent range
is fp32's, so no loss scaling is needed and the optimizer steps in fp32 as
usual: only the forward (and so the backward) of the ops autocast lists run
in bf16.
"""
import os
from contextlib import contextmanager
from typing import FrozenSet, Optional

import torch
from mmengine.optim import OptimWrapper
from mmpretrain.registry import OPTIM_WRAPPERS

__all__ = ['CPUAmpOptimWrapper', 'cpu_bf16_flags']

#: /proc/cpuinfo flags of native bf16 arithmetic (AVX-512 BF16 dot products,
#: AMX tiles); without them oneDNN emulates bf16 in fp32, which is slower
#: than fp32 itself
BF16_FLAGS = ('avx512_bf16', 'amx_bf16')


def cpu_bf16_flags(cpuinfo: str = '/proc/cpuinfo') -> Optional[FrozenSet]:
    """The native-bf16 flags this CPU reports (an empty set when it has none),
    or None where the CPU's flags cannot be read (not Linux)."""
    if not os.path.isfile(cpuinfo):
        return None
    with open(cpuinfo, encoding='utf-8', errors='replace') as f:
        for line in f:
            if line.startswith('flags'):
                flags = set(line.split(':', 1)[1].split())
                return frozenset(f for f in BF16_FLAGS if f in flags)
    return frozenset()


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """An ``OptimWrapper`` whose ``optim_context`` autocasts to bfloat16 on
    the CPU (``torch.autocast('cpu', torch.bfloat16)``).

    ``tools/train.py --amp`` picks it when no CUDA device is visible and the
    CPU has native bf16 (:func:`cpu_bf16_flags`); a config can name it
    directly (``optim_wrapper=dict(type='CPUAmpOptimWrapper', ...)``).

    Args:
        dtype (str): The autocast dtype; only ``'bfloat16'`` (float16 on the
            CPU would need loss scaling and gains nothing). Defaults to
            ``'bfloat16'``.
        **kwargs: The arguments of :class:`mmengine.optim.OptimWrapper`
            (``optimizer``, ``accumulative_counts``, ``clip_grad``).
    """

    def __init__(self, dtype: str = 'bfloat16', **kwargs):
        if dtype not in ('bfloat16', torch.bfloat16):
            raise ValueError(
                f'CPUAmpOptimWrapper: dtype={dtype!r}; only \'bfloat16\' is '
                'supported on the CPU')
        super().__init__(**kwargs)
        self.cast_dtype = torch.bfloat16

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        with super().optim_context(model), torch.autocast(
                device_type='cpu', dtype=self.cast_dtype):
            yield

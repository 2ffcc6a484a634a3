from typing import Optional

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmpretrain.models.utils import ClsDataPreprocessor
from mmpretrain.registry import MODELS

__all__ = ['unsafe_channels_last_conv', 'ChannelsLastDataPreprocessor']

#: a 1x1 convolution of stride > 1 with fewer input channels than this
#: corrupts the heap in its CPU backward on channels-last input (torch
#: 2.14.1, oneDNN: ``malloc(): invalid next size``, rc 134/139). Probed one
#: shape per subprocess (64 x C x 80 x 80 and 112 x 112, 10 steps): C = 2-12
#: crash, 1, 16 and 32 do not; 3x3 and stride-1 convolutions do not
UNSAFE_MAX_IN_CHANNELS = 15


def unsafe_channels_last_conv(model: nn.Module) -> Optional[str]:
    """The first convolution of ``model`` whose CPU backward on
    channels-last input crashes the process (1x1, stride > 1, at most
    :data:`UNSAFE_MAX_IN_CHANNELS` input channels), described, or None.

    Args:
        model (nn.Module): The model to inspect (its modules, once).
    """
    for name, m in model.named_modules():
        if (isinstance(m, nn.Conv2d) and tuple(m.kernel_size) == (1, 1)
                and max(m.stride) > 1
                and m.in_channels <= UNSAFE_MAX_IN_CHANNELS):
            return (f'{name} is a 1x1 stride-{max(m.stride)} Conv2d with '
                    f'{m.in_channels} input channels')
    return None


@MODELS.register_module()
class ChannelsLastDataPreprocessor(ClsDataPreprocessor):
    """:class:`mmpretrain.models.ClsDataPreprocessor` whose image batch
    leaves in the channels-last memory format (NHWC strides, the same
    N x C x H x W tensor).

    Convolutions given a channels-last input run oneDNN's NHWC kernels and
    keep the format through the network (timm's ``--channels-last``). The
    time it saves per training step: docs/results.md, "Memory format"
    (``benchmarks/memory_format.py``). Values are
    unchanged; the sums inside a convolution run in another order, so
    results agree to float rounding, not bit for bit.

    Where channels-last is not safe the batch stays contiguous
    (:meth:`check_model`, called before training by ``TrainGuardHook``):
    on CPU for a model with a convolution that crashes the process in its
    backward (:func:`unsafe_channels_last_conv`), and under DDP (its
    gradient buckets have the parameters' contiguous strides: "Grad strides
    do not match bucket view strides" on every rank).

    Args:
        **kwargs: Arguments of :class:`ClsDataPreprocessor` (``mean``,
            ``std``, ``to_rgb``, ``num_classes``, ``batch_augments``, ...).
    """

    #: False once :meth:`check_model` found channels-last unsafe
    channels_last = True

    def check_model(self, model: nn.Module,
                    distributed: bool = False) -> Optional[str]:
        """Turn channels-last off when it is unsafe for ``model`` (a CPU
        model with an unsafe convolution, or ``distributed``), logging one
        line; return why, or None when it stays on.

        Args:
            model (nn.Module): The model this preprocessor feeds (not a
                DDP wrapper).
            distributed (bool): Whether it trains under DDP. Defaults to
                False.
        """
        why = None
        if distributed:
            why = ('the model trains under DDP, whose gradient buckets '
                   "have the parameters' contiguous strides")
        else:
            param = next(model.parameters(), None)
            on_cpu = param is None or param.device.type == 'cpu'
            conv = unsafe_channels_last_conv(model) if on_cpu else None
            if conv:
                why = (f'{conv}, whose CPU backward on channels-last input '
                       f'corrupts the heap (torch {torch.__version__})')
        if why:
            self.channels_last = False
            print_log(f'ChannelsLastDataPreprocessor: contiguous input: '
                      f'{why}.', logger='current')
        return why

    def forward(self, data: dict, training: bool = False) -> dict:
        inputs = data.get('inputs')
        if isinstance(inputs, (list, tuple)) and inputs and all(
                isinstance(x, torch.Tensor) and x.shape == inputs[0].shape
                for x in inputs):
            # pseudo_collate's list of same-sized images: one uint8 batch,
            # so the cast, the BGR flip and the normalisation (the same
            # values) run once per batch, not once per image, and a GPU
            # gets one copy
            data = dict(data, inputs=torch.stack(inputs))
        data = super().forward(data, training)
        inputs = data['inputs']
        if self.channels_last and isinstance(inputs, torch.Tensor) \
                and inputs.dim() == 4:
            data['inputs'] = inputs.contiguous(
                memory_format=torch.channels_last)
        return data

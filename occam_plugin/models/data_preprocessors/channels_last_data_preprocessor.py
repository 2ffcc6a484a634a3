import torch
from mmpretrain.models.utils import ClsDataPreprocessor
from mmpretrain.registry import MODELS


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

    Args:
        **kwargs: Arguments of :class:`ClsDataPreprocessor` (``mean``,
            ``std``, ``to_rgb``, ``num_classes``, ``batch_augments``, ...).
    """

    def forward(self, data: dict, training: bool = False) -> dict:
        data = super().forward(data, training)
        inputs = data['inputs']
        if isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
            data['inputs'] = inputs.contiguous(
                memory_format=torch.channels_last)
        return data

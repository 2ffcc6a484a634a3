from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmpretrain.registry import MODELS

__all__ = ['MLPBackbone']


@MODELS.register_module()
class MLPBackbone(BaseModule):
    """Fully connected backbone: flatten the image, then Linear-ReLU layers.

    The Colored MNIST model of Learning from Failure (Nam et al., 2020) is
    three hidden layers of 100 units (the defaults); a ``LinearClsHead`` with
    ``in_channels=hidden_dims[-1]`` classifies its output. Having no spatial
    maps, it fits plain classifiers, not ``OccamClassifier``.

    Args:
        in_channels (int): Image channels. Defaults to 3.
        img_size (int | Sequence[int]): Image height and width the network is
            built for (the first layer has ``in_channels * H * W`` inputs).
            Defaults to 28.
        hidden_dims (Sequence[int]): Width of every hidden layer.
            Defaults to ``(100, 100, 100)``.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int = 3,
                 img_size=28,
                 hidden_dims: Sequence[int] = (100, 100, 100),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if isinstance(img_size, int):
            img_size = (img_size, img_size)
        if len(img_size) != 2 or min(img_size) < 1:
            raise ValueError(f'MLPBackbone: img_size={img_size!r}; expected '
                             'an int or (height, width) > 0')
        if not hidden_dims or min(hidden_dims) < 1:
            raise ValueError(f'MLPBackbone: hidden_dims={hidden_dims!r}; '
                             'expected one or more widths > 0')
        self.input_shape = (int(in_channels), int(img_size[0]),
                            int(img_size[1]))
        layers, width = [], in_channels * img_size[0] * img_size[1]
        for dim in hidden_dims:
            layers += [nn.Linear(width, dim), nn.ReLU(inplace=True)]
            width = dim
        self.layers = nn.Sequential(*layers)
        self.out_channels = width

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f'MLPBackbone: input of shape {tuple(x.shape)}, built for '
                f'(N, {", ".join(map(str, self.input_shape))}); set '
                '`in_channels`/`img_size` to the pipeline\'s output size')
        # a tuple like every mmpretrain backbone, so heads take feats[-1]
        return (self.layers(x.flatten(1)), )

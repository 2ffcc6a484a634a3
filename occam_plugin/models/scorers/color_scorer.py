import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

__all__ = ['ColorScorer']


@MODELS.register_module()
class ColorScorer(nn.Module):
    """Attribute scorer: which of two colour channels dominates the ink.

    ``score = (sum(x[positive]) - sum(x[negative])) / (sum(x[positive]) +
    sum(x[negative]) + eps)`` per image, in [-1, 1]: > 0 when the digit is
    more ``positive_channel`` than ``negative_channel`` (threshold 0). With
    the defaults it scores the protected attribute of ``BinaryColoredMNIST``
    (colour 1 = green > 0, colour 0 = red < 0) on generated RGB images, and
    ``attribute='color'`` names it so that ``LatentDebiasDataset`` can check
    it flips the attribute its dataset and the metric use.

    Args:
        positive_channel (int): RGB channel of the positive value. Defaults
            to 1 (green).
        negative_channel (int): RGB channel of the negative value. Defaults
            to 0 (red).
        attribute (str): Name of the scored attribute. Defaults to
            ``'color'``.
        eps (float): Keeps black images at score 0. Defaults to 1e-6.
    """

    def __init__(self, positive_channel: int = 1, negative_channel: int = 0,
                 attribute: str = 'color', eps: float = 1e-6):
        super().__init__()
        if positive_channel == negative_channel:
            raise ValueError('ColorScorer: positive_channel and '
                             'negative_channel must differ, got '
                             f'{positive_channel} twice')
        self.positive_channel = positive_channel
        self.negative_channel = negative_channel
        self.attribute = attribute
        self.eps = eps

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """RGB images ``[N, 3, H, W]`` in [0, 1] -> scores ``[N]``."""
        if images.dim() != 4 or images.size(1) <= max(
                self.positive_channel, self.negative_channel):
            raise ValueError(
                'ColorScorer expects RGB images [N, 3, H, W], got '
                f'{list(images.shape)}')
        pos = images[:, self.positive_channel].float().sum(dim=(1, 2))
        neg = images[:, self.negative_channel].float().sum(dim=(1, 2))
        return (pos - neg) / (pos + neg + self.eps)

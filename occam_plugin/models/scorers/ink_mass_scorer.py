import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

__all__ = ['InkMassScorer']


@MODELS.register_module()
class InkMassScorer(nn.Module):
    """Attribute scorer: the mean intensity of an image (ink mass).

    On white-on-black digits this measures stroke thickness, an attribute that
    needs no trained classifier; the latent de-biasing demo uses it as the
    protected attribute (thick vs thin strokes, thresholded at the median of
    the generated samples).

    Args:
        None.
    """

    #: the attribute scored (checked by ``LatentDebiasDataset`` against the
    #: protected attribute its dataset and metric use)
    attribute = 'stroke_thickness'

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``[N, C, H, W]`` in [0, 1] -> scores ``[N]``."""
        if images.dim() != 4:
            raise ValueError('InkMassScorer expects images [N, C, H, W], got '
                             f'{list(images.shape)}')
        return images.float().mean(dim=(1, 2, 3))

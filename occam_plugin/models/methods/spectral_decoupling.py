from typing import Optional, Sequence

import torch
from mmpretrain.registry import MODELS

from .base_method import BaseMethod
from .sample_fields import check_per_sample

__all__ = ['SpectralDecoupling']

__all__ = ['SpectralDecoupling']


@MODELS.register_module()
class SpectralDecoupling(BaseMethod):
    """Spectral decoupling (Pezeshki et al., NeurIPS 2021) as a method module.

    ``loss = mean_i l_i + lambda / 2 * mean_i ||logits_i||^2``: the L2 penalty
    on the logits (not the weights) decouples the learning dynamics of the
    features, so a dominant (bias) feature no longer starves the others. On an
    OccamNet it is applied to every exit's logits.

    Args:
        sd_lambda (float): The penalty coefficient lambda. Defaults to 0.1.
    """

    def __init__(self, sd_lambda: float = 0.1):
        super().__init__()
        if sd_lambda < 0:
            raise ValueError(
                f'SpectralDecoupling: sd_lambda must be >= 0, got {sd_lambda}')
        self.sd_lambda = sd_lambda

    def forward(self, per_sample_loss: torch.Tensor, logits: torch.Tensor,
                gt: torch.Tensor, data_samples: Optional[Sequence] = None,
                exit_idx: Optional[int] = None) -> torch.Tensor:
        """Return the CE plus the logit penalty (scalar)."""
        check_per_sample(per_sample_loss, logits, gt, 'SpectralDecoupling')
        penalty = logits.float().pow(2).sum(dim=1).mean()
        return per_sample_loss.mean() + 0.5 * self.sd_lambda * penalty

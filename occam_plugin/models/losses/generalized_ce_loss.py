from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

__all__ = ['GeneralizedCELoss']


@MODELS.register_module()
class GeneralizedCELoss(nn.Module):
    """Generalized cross-entropy (Zhang & Sabuncu 2018), as used by LfF.

    Learning from Failure (Nam et al., NeurIPS 2020) trains its *biased* model
    with GCE so that it latches on to the easy (bias-aligned) samples. The loss
    is implemented through its gradient form: per sample
    ``CE(x, y) * p_y(x)^q * q`` with ``p_y`` the softmax probability of the
    ground-truth class, **detached** (so the gradient is that of GCE,
    ``-p_y^q * d log p_y``).

    Same call signature as mmpretrain's ``CrossEntropyLoss`` so it can be any
    classification head's ``loss=``.

    Args:
        q (float): The GCE exponent, in (0, 1]. Defaults to 0.7 (LfF).
        reduction (str): ``'mean'``, ``'sum'`` or ``'none'``. Defaults to
            ``'mean'``.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self, q: float = 0.7, reduction: str = 'mean',
                 loss_weight: float = 1.0):
        super().__init__()
        if not 0 < q <= 1:
            raise ValueError(
                f'GeneralizedCELoss: q must be in (0, 1], got {q}')
        if reduction not in ('mean', 'sum', 'none'):
            raise ValueError("GeneralizedCELoss: reduction must be 'mean', "
                             f"'sum' or 'none', got {reduction!r}")
        self.q = q
        self.reduction = reduction
        self.loss_weight = loss_weight

    def forward(self,
                cls_score: torch.Tensor,
                label: torch.Tensor,
                weight: Optional[torch.Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                **kwargs) -> torch.Tensor:
        """Compute the loss.

        Args:
            cls_score (Tensor): Logits ``[N, C]``.
            label (Tensor): Class indices ``[N]``.
            weight (Tensor, optional): Per-sample weights ``[N]``.
            avg_factor (float, optional): Divisor of the sum for ``'mean'``.
            reduction_override (str, optional): Overrides ``reduction``.
        """
        if label.dim() != 1:
            raise ValueError('GeneralizedCELoss expects class indices [N], '
                             f'got a label of shape {list(label.shape)} '
                             '(batch augmentations with soft labels are not '
                             'supported)')
        reduction = reduction_override or self.reduction
        ce = F.cross_entropy(cls_score, label, reduction='none')
        p_gt = F.softmax(cls_score, dim=1).gather(1, label[:, None])[:, 0]
        # detached: the weight p_gt^q * q turns the CE gradient into GCE's
        loss = ce * p_gt.detach().pow(self.q) * self.q
        if weight is not None:
            loss = loss * weight.float()
        if reduction == 'none':
            out = loss
        elif reduction == 'sum':
            out = loss.sum()
        else:
            out = loss.sum() / avg_factor if avg_factor else loss.mean()
        return self.loss_weight * out

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmpretrain.registry import MODELS

__all__ = ['CAMSuppressionLoss']


@MODELS.register_module()
class CAMSuppressionLoss(nn.Module):
    """CAM suppression loss of OccamNets (Shrestha et al., ECCV 2022).

    For each sample, the cells of its ground-truth class CAM that are not
    above that map's mean get the penalty
    ``KL(uniform || softmax over classes at the cell)``
    ``= -log(C) - mean_c log softmax(cam)_c``; cells above the mean get
    none. The loss is the mean over all cells of the batch (suppressed or
    not), times ``loss_weight``. It pushes the exit to predict from a small
    region of the image only.

    Args:
        loss_weight (float): Weight of the loss. Defaults to 0.1.
    """

    def __init__(self, loss_weight: float = 0.1):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, cams: torch.Tensor,
                gt_label: torch.Tensor) -> torch.Tensor:
        """
        Args:
            cams (Tensor): Class activation maps, ``[N, C, h, w]``.
            gt_label (Tensor): Class indices, ``[N]``.

        Returns:
            Tensor: The scalar loss.
        """
        if cams.dim() != 4:
            raise ValueError('CAMSuppressionLoss: cams must be [N, C, h, w], '
                             f'got shape {tuple(cams.shape)}.')
        n, c, h, w = cams.shape
        gt_label = gt_label.reshape(-1).long()
        gt_cams = cams[torch.arange(n, device=cams.device), gt_label]  # N,h,w
        mean = gt_cams.mean(dim=(1, 2), keepdim=True)
        suppress = (gt_cams <= mean).to(cams.dtype).detach()
        # KL(u || p) = sum_c u_c (log u_c - log p_c), u_c = 1/C
        kl = -math.log(c) - F.log_softmax(cams, dim=1).mean(dim=1)  # N,h,w
        return self.loss_weight * (suppress * kl).mean()

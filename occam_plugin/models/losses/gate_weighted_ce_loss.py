from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import all_reduce

from mmpretrain.registry import MODELS
from ..utils.training_state import TrainingState

__all__ = ['GateWeightedCELoss']


@MODELS.register_module()
class GateWeightedCELoss(nn.Module, TrainingState):
    """Per-exit weighted cross-entropy of OccamNets.

    The per-sample CE of exit ``k`` is multiplied by a weight ``w``:

    - exit 0: ``w = p_gt ** gamma0`` (its own softmax probability of the true
      class, detached) - the earliest exit is trained on what it already
      gets right, i.e. it amplifies the bias;
    - exit ``k > 0``: ``w = (1 - gate_{k-1}) ** gamma`` (previous exit's gate,
      detached) - an exit focuses on samples the earlier exit passes on.

    Each exit's weights are divided by their running max (kept across the
    batches of an epoch in the ``running_max`` buffer, reset by
    :meth:`reset_epoch_state`) and ``offset`` is added. In distributed
    training the batch max is all-reduced (max) so every rank keeps the same
    running max.

    Args:
        gamma0 (float): Exponent of ``p_gt`` for exit 0. Defaults to 3.0.
        gamma (float): Exponent of ``1 - gate_{k-1}``. Defaults to 1.0.
        offset (float): Added to the normalised weights. Defaults to 0.1.
        num_exits (int): Number of exits (size of ``running_max``).
            ``OccamHead`` sets it. Defaults to 4.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 gamma0: float = 3.0,
                 gamma: float = 1.0,
                 offset: float = 0.1,
                 num_exits: int = 4,
                 loss_weight: float = 1.0):
        super().__init__()
        self.gamma0 = gamma0
        self.gamma = gamma
        self.offset = offset
        self.num_exits = num_exits
        self.loss_weight = loss_weight
        self.register_buffer('running_max', torch.zeros(num_exits))

    def reset_epoch_state(self, epoch: int = 0) -> None:
        """Forget the running max (called at each epoch start)."""
        self.running_max.zero_()

    def exit_weights(self,
                     logits: torch.Tensor,
                     gt_label: torch.Tensor,
                     exit_idx: int,
                     prev_gate: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Normalised per-sample weights ``w / running_max + offset``.

        Updates ``running_max`` in training mode.
        """
        if not 0 <= exit_idx < self.num_exits:
            raise ValueError(f'GateWeightedCELoss: exit_idx={exit_idx} '
                             f'outside 0..{self.num_exits - 1} (num_exits='
                             f'{self.num_exits}).')
        with torch.no_grad():
            if exit_idx == 0:
                p_gt = F.softmax(logits.detach().float(), dim=1).gather(
                    1, gt_label.view(-1, 1)).squeeze(1)
                w = p_gt**self.gamma0
            else:
                if prev_gate is None:
                    raise ValueError(
                        'GateWeightedCELoss: exit_idx='
                        f'{exit_idx} needs prev_gate (gate of exit '
                        f'{exit_idx - 1}).')
                w = (1 - prev_gate.detach().float().reshape(-1))**self.gamma
            if self.training:
                batch_max = w.max() if w.numel() else w.new_zeros(())
                batch_max = batch_max.clone()
                all_reduce(batch_max, op='max')
                self.running_max[exit_idx] = torch.maximum(
                    self.running_max[exit_idx], batch_max)
                norm = self.running_max[exit_idx]
            else:
                norm = w.max() if w.numel() else w.new_ones(())
            # all-zero weights (e.g. every gate at 1): keep only the offset
            w = w / norm.clamp_min(1e-12) + self.offset
        return w

    def forward(self,
                logits: torch.Tensor,
                gt_label: torch.Tensor,
                exit_idx: int,
                prev_gate: Optional[torch.Tensor] = None,
                reduction: str = 'mean') -> torch.Tensor:
        """
        Args:
            logits (Tensor): Logits of exit ``exit_idx``, ``[N, C]``.
            gt_label (Tensor): Class indices, ``[N]``.
            exit_idx (int): Which exit.
            prev_gate (Tensor, optional): Gate of exit ``exit_idx - 1``,
                ``[N]``; required for ``exit_idx > 0``.
            reduction (str): ``'mean'`` or ``'none'`` (per-sample vector).

        Returns:
            Tensor: ``loss_weight * w * CE``, reduced as asked.
        """
        gt_label = gt_label.reshape(-1).long()
        w = self.exit_weights(logits, gt_label, exit_idx, prev_gate)
        ce = F.cross_entropy(logits, gt_label, reduction='none')
        loss = self.loss_weight * w.to(ce.dtype) * ce
        if reduction == 'none':
            return loss
        if reduction == 'mean':
            return loss.mean()
        raise ValueError(f"GateWeightedCELoss: reduction={reduction!r}; "
                         "expected 'mean' or 'none'.")

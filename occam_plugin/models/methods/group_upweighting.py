from typing import Optional, Sequence

import numpy as np
import torch
from mmpretrain.registry import MODELS

from ...errors import MissingKeyError
from ..utils.annotation_needs import GroupAnnotationNeeds
from ..utils.training_state import TrainingState, resize_on_load
from .base_method import BaseMethod
from .sample_fields import check_per_sample, sample_field

__all__ = ['GroupUpweighting']


@MODELS.register_module()
class GroupUpweighting(BaseMethod, TrainingState, GroupAnnotationNeeds):
    """Group upweighting (UpWt): per-sample loss weights from the inverse
    frequency of the sample's group in the **training set**.

    ``w_g = N / (G' * n_g)`` with ``n_g`` the training count of group ``g``,
    ``N = sum_g n_g`` and ``G'`` the number of non-empty groups, so the mean
    weight over the training set is 1 and every group contributes equally in
    expectation. ``loss = mean_i w_{g_i} * l_i``.

    The counts are either given in the config or filled before training by
    :class:`TrainingStateHook` from the training dataset's ``group_idx``; they
    live in a buffer (checkpointed).

    Args:
        group_counts (Sequence[int], optional): Training count per group.
            Defaults to None (set by ``TrainingStateHook``).
        group_key (str): Data-sample key holding the group id.
            Defaults to ``'group_idx'``.
    """

    def __init__(self, group_counts: Optional[Sequence[int]] = None,
                 group_key: str = 'group_idx'):
        super().__init__()
        self.group_key = group_key
        self.counts_from_cfg = group_counts is not None
        self.register_buffer('group_counts', torch.zeros(0))
        resize_on_load(self)
        if group_counts is not None:
            self.set_group_counts(group_counts)

    #: ``[groups]``: known only from the data (TrainingState)
    DATA_SHAPED_BUFFERS = ('group_counts', )

    def set_group_counts(self, group_counts) -> None:
        """Set the training count of every group (index = group id)."""
        counts = torch.as_tensor(np.asarray(group_counts), dtype=torch.float)
        if counts.dim() != 1 or counts.numel() == 0 or (counts < 0).any() \
                or counts.sum() <= 0:
            raise ValueError(
                'GroupUpweighting: group_counts must be a non-empty list of '
                f'non-negative counts with a positive sum, got {group_counts}')
        self.group_counts = counts.to(self.group_counts.device)

    def prepare_from_dataset(self, info: dict) -> None:
        """TrainingState: count the training set's groups."""
        if self.counts_from_cfg:
            return
        groups = info.get(self.group_key)
        if groups is None or (np.asarray(groups) < 0).all():
            raise MissingKeyError(
                f'GroupUpweighting: the training dataset '
                f'{info.get("dataset_name")} has no {self.group_key!r} '
                'annotations; give group_counts in the config or use a '
                'dataset whose samples carry group ids (e.g. '
                'BiasedMNIST, BiasAnnotatedDataset).')
        groups = np.asarray(groups)
        groups = groups[groups >= 0]  # -1: sample without a group (synthetic)
        num_groups = max(int(info.get('num_groups') or 0),
                         int(groups.max()) + 1)
        self.set_group_counts(np.bincount(groups, minlength=num_groups))

    def group_weights(self) -> torch.Tensor:
        """The weight of every group, ``[G]`` (0 for empty groups)."""
        counts = self.group_counts
        nonempty = counts > 0
        w = torch.zeros_like(counts)
        w[nonempty] = counts.sum() / (nonempty.sum() * counts[nonempty])
        return w

    def forward(self, per_sample_loss: torch.Tensor, logits: torch.Tensor,
                gt: torch.Tensor, data_samples: Optional[Sequence] = None,
                exit_idx: Optional[int] = None) -> torch.Tensor:
        """Return the group-reweighted mean loss (scalar)."""
        check_per_sample(per_sample_loss, logits, gt, 'GroupUpweighting')
        if self.group_counts.numel() == 0:
            raise RuntimeError(
                'GroupUpweighting: group counts are unknown. Give '
                'group_counts=[...] in the config, or train with SafeRunner '
                '(its TrainingStateHook counts them in the training set).')
        g = sample_field(data_samples, self.group_key, logits.device,
                         'GroupUpweighting')
        num_groups = self.group_counts.numel()
        if (g < 0).any() or (g >= num_groups).any() or \
                (self.group_counts[g.clamp(0, num_groups - 1)] == 0).any():
            raise ValueError(
                f'GroupUpweighting: batch has {self.group_key} values '
                f'{sorted(set(g.tolist()))}, but the training counts '
                f'{self.group_counts.tolist()} know only the groups with a '
                'positive count.')
        w = self.group_weights()[g]
        return (w * per_sample_loss).mean()

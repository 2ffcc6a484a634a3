from typing import Optional, Sequence

import torch
from mmengine.dist import all_reduce
from mmpretrain.registry import MODELS

from ...errors import MissingKeyError
from ..utils.annotation_needs import GroupAnnotationNeeds
from ..utils.training_state import (TrainingState, TrainingStateMismatch,
                                    resize_on_load)
from .base_method import BaseMethod
from .sample_fields import check_per_sample, sample_field

__all__ = ['GroupDRO']


@MODELS.register_module()
class GroupDRO(BaseMethod, TrainingState, GroupAnnotationNeeds):
    """Group distributionally robust optimisation (Sagawa et al., ICLR 2020).

    Online group weights ``q`` (one row per exit on an OccamNet, one row on a
    plain model), updated at every training step by an exponentiated-gradient
    step and renormalised::

        L_g = mean of l_i over the batch samples of group g (0 if none)
        q_g <- q_g * exp(eta * L_g);  q <- q / sum(q)
        loss = sum_g q_g * L_g

    The update uses the group losses of the whole global batch (summed over
    processes), so every rank keeps the same ``q``; ``q`` is a buffer
    (checkpointed, resized on load).

    Args:
        num_groups (int, optional): Number of groups. Defaults to None: set by
            :class:`TrainingStateHook` from the dataset's ``num_groups`` /
            ``group_idx``.
        eta (float): Step size of the group-weight update. Defaults to 0.01.
        group_key (str): Data-sample key of the group id.
            Defaults to ``'group_idx'``.
    """

    def __init__(self, num_groups: Optional[int] = None, eta: float = 0.01,
                 group_key: str = 'group_idx'):
        super().__init__()
        if eta < 0:
            raise ValueError(f'GroupDRO: eta must be >= 0, got {eta}')
        self.eta = eta
        self.group_key = group_key
        self.num_groups_from_cfg = num_groups is not None
        self.num_groups_cfg = num_groups
        self.register_buffer('q', torch.zeros(1, 0))
        resize_on_load(self)
        if num_groups is not None:
            self.set_num_groups(num_groups)

    #: ``[exits, groups]``: both known only from the data (TrainingState)
    DATA_SHAPED_BUFFERS = ('q', )

    def set_num_groups(self, num_groups: int) -> None:
        """(Re)start every exit's weights at the uniform ``1 / num_groups``."""
        if int(num_groups) < 1:
            raise ValueError(
                f'GroupDRO: num_groups must be >= 1, got {num_groups}')
        rows = max(self.q.size(0), 1)
        self.q = torch.full((rows, int(num_groups)), 1.0 / int(num_groups),
                            device=self.q.device)

    def prepare_from_dataset(self, info: dict) -> None:
        """TrainingState: take the number of groups; ``q`` restored from a
        checkpoint (resume, ``load_from``) is kept when it has as many
        groups as the config / training set, refused otherwise (its
        columns would weigh other groups, or groups with no sample)."""
        num_groups = info.get('num_groups')
        groups = info.get(self.group_key)
        if not num_groups and groups is not None and len(groups):
            num_groups = int(max(groups)) + 1
        if self.num_groups_from_cfg:
            num_groups, where = self.num_groups_cfg, 'num_groups of the config'
        else:
            where = f'the training set ({info.get("dataset_name")})'
        if self.q.numel() > 0:  # restored (or given in the config)
            if num_groups and self.q.size(1) != int(num_groups):
                raise TrainingStateMismatch(
                    f'GroupDRO: the checkpoint\'s group weights q have '
                    f'{self.q.size(1)} groups, but {where} has '
                    f'{int(num_groups)}: its weights would belong to other '
                    'groups. Resume on the training set the run started '
                    'with, or train from scratch (no resume / load_from).')
            return
        if not num_groups:
            raise MissingKeyError(
                f'GroupDRO: the training dataset {info.get("dataset_name")} '
                f"has neither metainfo['num_groups'] nor {self.group_key!r} "
                'annotations; give num_groups in the config.')
        self.set_num_groups(num_groups)

    def _row(self, exit_idx: Optional[int]) -> int:
        row = 0 if exit_idx is None else int(exit_idx)
        if row >= self.q.size(0):  # first call of a deeper exit
            g = self.q.size(1)
            extra = torch.full((row + 1 - self.q.size(0), g), 1.0 / g,
                               device=self.q.device)
            self.q = torch.cat([self.q, extra], dim=0)
        return row

    def forward(self, per_sample_loss: torch.Tensor, logits: torch.Tensor,
                gt: torch.Tensor, data_samples: Optional[Sequence] = None,
                exit_idx: Optional[int] = None) -> torch.Tensor:
        """Update this exit's group weights (training) and return the
        q-weighted sum of the group losses (scalar)."""
        check_per_sample(per_sample_loss, logits, gt, 'GroupDRO')
        if self.q.numel() == 0:
            raise RuntimeError(
                'GroupDRO: the number of groups is unknown. Give '
                'num_groups=... in the config, or train with SafeRunner '
                '(its TrainingStateHook takes it from the training set).')
        num_groups = self.q.size(1)
        g = sample_field(data_samples, self.group_key, logits.device,
                         'GroupDRO')
        if (g < 0).any() or (g >= num_groups).any():
            raise ValueError(
                f'GroupDRO: {self.group_key} values {sorted(set(g.tolist()))} '
                f'outside [0, {num_groups}) (num_groups={num_groups}).')
        row = self._row(exit_idx)
        loss = per_sample_loss.float()
        group_sum = loss.new_zeros(num_groups).index_add(0, g, loss)
        group_cnt = loss.new_zeros(num_groups).index_add(
            0, g, torch.ones_like(loss))
        group_loss = group_sum / group_cnt.clamp(min=1)
        if self.training:
            with torch.no_grad():
                stats = torch.cat([group_sum.detach(), group_cnt])
                all_reduce(stats)  # sum over ranks: same q on every rank
                global_loss = stats[:num_groups] / stats[num_groups:].clamp(
                    min=1)
                q = self.q[row] * torch.exp(self.eta * global_loss)
                self.q[row] = q / q.sum()
        # a copy: the buffer is updated in place by the next exit / step,
        # which must not touch what autograd saved for this loss
        return (self.q[row].detach().clone() * group_loss).sum()

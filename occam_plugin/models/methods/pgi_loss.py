from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from ...errors import MissingKeyError
from ..utils.annotation_needs import AnnotationNeeds
from .base_method import BaseMethod
from .sample_fields import check_per_sample, sample_field

__all__ = ['PGILoss']

__all__ = ['PGILoss']


@MODELS.register_module()
class PGILoss(BaseMethod, AnnotationNeeds):
    """Predictive group invariance (Ahmed et al., ICLR 2021) as a method
    module.

    ``loss = mean_i l_i + lambda * penalty``. Within each class ``c`` of the
    batch the samples are split into groups; ``pbar_{c,g}`` is the mean softmax
    of group ``g``. The group with the most samples of that class in the batch
    is the reference (the majority, "bias-aligned" group) and every other group
    is pulled towards it::

        penalty_c = mean_{g != ref} KL(pbar_{c,ref} || pbar_{c,g})
        penalty   = mean over the classes that have >= 2 groups in the batch

    Where the groups come from (``group_key='auto'``, the first that applies):

    1. ``bias_aligned`` (aligned vs conflicting: the majority/minority split
       PGI was designed for),
    2. ``group_idx``,
    3. a bias-amplified model's correctness: on an OccamNet exit
       ``bias_exit`` (default 0, trained with the p_gt^gamma0 bias-amplifying
       weight) is exactly such a model. Its correct/incorrect split is read
       from ``exit_logits[bias_exit]``, which the head passes with every
       exit's call (``NEEDS_EXIT_LOGITS``), so no state is kept between
       calls and their order does not matter; no penalty on the bias exit
       itself. A plain model without bias labels has no such exit, which is
       an error.

    Args:
        pgi_lambda (float): Weight of the invariance penalty. Defaults to 1.0.
        group_key (str): ``'auto'`` (above), ``'bias_aligned'``,
            ``'group_idx'``, ``'bias_label'`` or ``'bias_exit'``.
            Defaults to ``'auto'``.
        bias_exit (int): The bias-amplified exit of an OccamNet.
            Defaults to 0.
    """

    #: the data-sample keys that can hold the groups
    GROUP_KEYS = ('bias_aligned', 'group_idx', 'bias_label')
    #: MethodPlugPoint: pass every exit's logits as ``exit_logits=``
    NEEDS_EXIT_LOGITS = True

    def __init__(self, pgi_lambda: float = 1.0, group_key: str = 'auto',
                 bias_exit: int = 0):
        super().__init__()
        if group_key not in ('auto', 'bias_exit') + self.GROUP_KEYS:
            raise ValueError(
                f"PGILoss: group_key must be 'auto', 'bias_exit' or one of "
                f'{self.GROUP_KEYS}, got {group_key!r}')
        self.pgi_lambda = pgi_lambda
        self.group_key = group_key
        self.bias_exit = bias_exit

    def needed_sample_keys(self, model) -> Tuple[str, ...]:
        """AnnotationNeeds: the explicit ``group_key``; with ``'auto'`` on a
        model without exits (no bias exit to fall back on) the aligned flag
        or the group id."""
        if self.group_key in self.GROUP_KEYS:
            return (self.group_key, )
        head = getattr(model, 'head', None)
        if self.group_key == 'auto' and getattr(head, 'num_exits', 1) <= 1:
            return self.GROUP_KEYS[:2]
        return ()

    def _groups(self, data_samples, device, exit_idx, exit_logits, gt):
        if self.group_key in self.GROUP_KEYS:
            return sample_field(data_samples, self.group_key, device,
                                'PGILoss')
        if self.group_key == 'auto':
            for key in self.GROUP_KEYS[:2]:
                g = sample_field(data_samples, key, device, 'PGILoss',
                                 required=False)
                if g is not None:
                    return g
        if exit_idx is None:
            raise MissingKeyError(
                'PGILoss: the data samples carry no bias_aligned/group_idx '
                'and this model has no bias-amplified exit (plain model). Use '
                'a dataset with bias annotations or an OccamNet (exit 0).')
        if exit_logits is None or not 0 <= self.bias_exit < len(exit_logits):
            raise RuntimeError(
                f'PGILoss: exit {exit_idx} needs the logits of the bias exit '
                f'bias_exit={self.bias_exit}, got '
                f'{None if exit_logits is None else len(exit_logits)} exits\''
                ' logits as exit_logits= (OccamHead passes them all).')
        return (exit_logits[self.bias_exit].argmax(1) == gt).long()

    def invariance_penalty(self, logits: torch.Tensor, gt: torch.Tensor,
                           groups: torch.Tensor) -> torch.Tensor:
        """The class-wise KL(majority || other group) penalty (scalar)."""
        probs = F.softmax(logits.float(), dim=1)
        per_class = []
        for c in gt.unique():
            in_c = gt == c
            gs, counts = groups[in_c].unique(return_counts=True)
            if gs.numel() < 2:
                continue
            ref = gs[counts.argmax()]  # ties: the smallest group id
            p_ref = probs[in_c & (groups == ref)].mean(0)
            kls = []
            for g in gs:
                if g == ref:
                    continue
                p_g = probs[in_c & (groups == g)].mean(0)
                kls.append((p_ref * (p_ref.clamp_min(1e-12).log()
                                     - p_g.clamp_min(1e-12).log())).sum())
            per_class.append(torch.stack(kls).mean())
        if not per_class:
            return logits.new_zeros(())
        return torch.stack(per_class).mean()

    def forward(self, per_sample_loss: torch.Tensor, logits: torch.Tensor,
                gt: torch.Tensor, data_samples: Optional[Sequence] = None,
                exit_idx: Optional[int] = None,
                exit_logits: Optional[Sequence[torch.Tensor]] = None
                ) -> torch.Tensor:
        """Return the CE plus the group-invariance penalty (scalar).

        ``exit_logits``: every exit's logits of the batch (OccamHead), for
        the groups of the bias exit; None on a plain model."""
        check_per_sample(per_sample_loss, logits, gt, 'PGILoss')
        ce = per_sample_loss.mean()
        uses_exit = self.group_key == 'bias_exit' or (
            self.group_key == 'auto' and not any(
                data_samples and all(k in ds for ds in data_samples)
                for k in self.GROUP_KEYS[:2]))
        if uses_exit and exit_idx is not None and exit_idx == self.bias_exit:
            return ce  # the bias-amplified exit itself gets no penalty
        groups = self._groups(data_samples, logits.device, exit_idx,
                              exit_logits, gt)
        return ce + self.pgi_lambda * self.invariance_penalty(
            logits, gt, groups)

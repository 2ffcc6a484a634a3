"""The bias-mitigation plug point of a classification head.

A head that declares :class:`MethodPlugPoint` computes a per-sample loss
``l`` ``[N]`` (per exit on an OccamNet) and hands it to
:meth:`MethodPlugPoint.reduce_per_sample`, which multiplies it by the
caller's ``sample_weight`` (LfF) and reduces it with the head's ``method``
module, else takes the mean. ``OccamHead`` and ``MethodLinearClsHead``
declare it, so every method works on both, and ``LfFClassifier`` trains any
head that declares it.
"""
from typing import Optional, Sequence, Tuple, Union

import torch
from mmpretrain.registry import MODELS

from ..methods.base_method import BaseMethod

__all__ = ['MethodPlugPoint']


class MethodPlugPoint:
    """Mixin of the heads whose ``loss`` takes ``sample_weight`` and whose
    per-sample loss a ``method`` module reduces.

    The method is a :class:`BaseMethod`, called as ``method(per_sample_loss
    [N], logits [N, C], gt [N], data_samples, exit_idx=k)`` (``exit_idx=None``
    on a plain model); it returns a scalar. A method whose class sets
    ``NEEDS_EXIT_LOGITS = True`` also gets ``exit_logits=``, the logits of
    every exit of the batch (None on a plain model), so it needs no state
    carried from one exit's call to the next (``PGILoss``).

    The head sets ``self.method`` with :meth:`build_method` and may
    override :meth:`forward_for_loss`. (No class-level ``method``: it would
    hide the submodule that ``nn.Module`` keeps in ``_modules``.)
    """

    @staticmethod
    def build_method(
            method: Union[dict, BaseMethod, None]) -> Optional[BaseMethod]:
        """The method module of a config (a MODELS dict), a module or None."""
        if isinstance(method, dict):
            method = MODELS.build(method)
        if method is not None and not isinstance(method, BaseMethod):
            raise TypeError(
                f'method must be a BaseMethod (occam_plugin.models.methods: '
                f'the per-sample loss reducers, e.g. GroupDRO), got '
                f'{type(method).__name__}')
        return method

    def forward_for_loss(self, feats) -> Tuple[torch.Tensor, dict]:
        """The (last) logits for a caller that needs them before ``loss``,
        and the ``loss`` keyword arguments that reuse this pass."""
        return self(feats), {}

    def reduce_per_sample(
            self,
            per_sample_loss: torch.Tensor,
            logits: torch.Tensor,
            gt: torch.Tensor,
            data_samples: Optional[Sequence],
            sample_weight: Optional[torch.Tensor] = None,
            exit_idx: Optional[int] = None,
            exit_logits: Optional[Sequence[torch.Tensor]] = None
    ) -> torch.Tensor:
        """``per_sample_loss * sample_weight``, reduced by the method (else
        the mean).

        Args:
            per_sample_loss (Tensor): ``[N]`` loss of each sample.
            logits (Tensor): ``[N, C]`` logits that gave it.
            gt (Tensor): ``[N]`` class indices.
            data_samples (Sequence[DataSample] | None): The batch's samples
                (bias annotations for the method).
            sample_weight (Tensor, optional): ``[N]`` weights (LfF's ``W``),
                a constant: gradients never flow into it. Defaults to None.
            exit_idx (int, optional): The exit on an OccamNet, None on a
                plain model. Defaults to None.
            exit_logits (Sequence[Tensor], optional): Every exit's logits of
                the batch, for a method with ``NEEDS_EXIT_LOGITS``.
                Defaults to None.

        Returns:
            Tensor: The scalar loss.
        """
        if sample_weight is not None:
            n = per_sample_loss.numel()
            if sample_weight.numel() != n:
                raise ValueError(
                    f'{type(self).__name__}.loss: sample_weight has '
                    f'{sample_weight.numel()} values for {n} samples.')
            per_sample_loss = per_sample_loss * sample_weight.reshape(
                per_sample_loss.shape).to(per_sample_loss.device).detach()
        if self.method is None:
            return per_sample_loss.mean()
        extra = {}
        if self.method.NEEDS_EXIT_LOGITS:
            extra['exit_logits'] = exit_logits
        return self.method(per_sample_loss, logits, gt, data_samples,
                           exit_idx=exit_idx, **extra)

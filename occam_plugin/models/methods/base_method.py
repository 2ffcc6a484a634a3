"""The base class of the per-sample bias-mitigation methods."""
from typing import Optional, Sequence

import torch
import torch.nn as nn

__all__ = ['BaseMethod']


class BaseMethod(nn.Module):
    """A module that reduces a head's per-sample loss to the training loss.

    A head that declares ``MethodPlugPoint`` (``OccamHead``,
    ``MethodLinearClsHead``) calls its ``method`` as::

        method(per_sample_loss [N], logits [N, C], gt [N], data_samples,
               exit_idx=k)  # k: the exit on an OccamNet, None on a plain head

    and adds ``exit_logits=`` (every exit's logits of the batch, None on a
    plain head) when the class sets :attr:`NEEDS_EXIT_LOGITS`. A method that
    keeps state sized from the training set also subclasses
    ``TrainingState``; one that reads annotations from every training
    sample also subclasses ``AnnotationNeeds`` (both in ``models/utils``).

    Register a subclass in ``MODELS`` and name it in a config:
    ``model.head.method.type=MyMethod``.
    """

    #: the head passes ``exit_logits=`` to :meth:`forward`
    NEEDS_EXIT_LOGITS: bool = False

    def forward(self, per_sample_loss: torch.Tensor, logits: torch.Tensor,
                gt: torch.Tensor, data_samples: Optional[Sequence] = None,
                exit_idx: Optional[int] = None) -> torch.Tensor:
        """The scalar training loss of one head (one exit on an OccamNet).

        Args:
            per_sample_loss (Tensor): ``[N]`` loss of each sample.
            logits (Tensor): ``[N, C]`` logits that gave it.
            gt (Tensor): ``[N]`` class indices.
            data_samples (Sequence[DataSample], optional): The batch's
                samples (bias annotations). Defaults to None.
            exit_idx (int, optional): The exit on an OccamNet, None on a
                plain head. Defaults to None.
        """
        raise NotImplementedError(
            f'{type(self).__name__} subclasses BaseMethod but defines no '
            'forward(per_sample_loss, logits, gt, data_samples, exit_idx)')

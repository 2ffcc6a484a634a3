from typing import List, Optional, Tuple

import torch
from mmpretrain.evaluation.metrics import Accuracy
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from .method_plug_point import MethodPlugPoint

__all__ = ['MethodLinearClsHead']


@MODELS.register_module()
class MethodLinearClsHead(LinearClsHead, MethodPlugPoint):
    """``LinearClsHead`` with the bias-mitigation plug point of ``OccamHead``
    (:class:`MethodPlugPoint`).

    The classification loss (``loss=``, CE by default; GCE for an LfF biased
    model) is computed per sample, multiplied by ``sample_weight`` when given
    (LfF's relative-difficulty weight), then reduced by the ``method`` module
    (``GroupUpweighting``, ``GroupDRO``, ``SpectralDecoupling``, ``PGILoss``)
    or averaged when there is none. The method modules are the very ones an
    OccamNet uses, so a plain ResNet and an OccamNet switch methods the same
    way.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Input feature channels.
        method (dict | nn.Module, optional): A method module (MODELS config)
            with the signature ``method(per_sample_loss, logits, gt,
            data_samples, exit_idx=None) -> scalar``. Defaults to None.
        **kwargs: The other ``LinearClsHead`` arguments (``loss``, ``topk``,
            ``cal_acc``, ``init_cfg``).
    """

    def __init__(self, num_classes: int, in_channels: int,
                 method: Optional[dict] = None, **kwargs):
        super().__init__(num_classes=num_classes, in_channels=in_channels,
                         **kwargs)
        self.method = self.build_method(method)

    def loss(self, feats: Tuple[torch.Tensor], data_samples: List[DataSample],
             sample_weight: Optional[torch.Tensor] = None, **kwargs) -> dict:
        """Per-sample loss -> ``sample_weight`` -> method -> ``dict(loss=)``.

        Args:
            feats (tuple[Tensor]): Backbone/neck features (last one used).
            data_samples (list[DataSample]): The batch annotations.
            sample_weight (Tensor, optional): ``[N]`` per-sample weights.
        """
        cls_score = self(feats)
        if 'gt_score' in data_samples[0]:
            raise ValueError(
                'MethodLinearClsHead needs hard labels (gt_label); soft '
                'labels from batch augmentations (Mixup/CutMix) are not '
                'supported by the bias-mitigation methods.')
        target = torch.cat([ds.gt_label for ds in data_samples])
        per_sample = self.loss_module(cls_score, target,
                                      reduction_override='none', **kwargs)
        if per_sample.dim() != 1:
            raise ValueError(
                f'MethodLinearClsHead: loss {type(self.loss_module).__name__} '
                "must give one value per sample with reduction='none', got "
                f'shape {list(per_sample.shape)}')
        losses = dict(loss=self.reduce_per_sample(
            per_sample, cls_score, target, data_samples, sample_weight))
        if self.cal_acc:
            acc = Accuracy.calculate(cls_score, target, topk=self.topk)
            losses.update(
                {f'accuracy_top-{k}': a for k, a in zip(self.topk, acc)})
        return losses

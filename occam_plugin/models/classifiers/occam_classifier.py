import copy
from typing import List, Optional

import torch
import torch.nn as nn

from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from ..utils.stages import describe_backbone, image_channels, place_exits
from ..utils.finite import check_finite_losses
from ..utils.flops import exit_flops
from ..utils.training_state import rank_local_buffers
from .dynamic_exit import (check_inference_mode, dynamic_predict,
                           set_compute_all_flops)

@MODELS.register_module()
class OccamClassifier(ImageClassifier):
    """An OccamNet on any CNN backbone.

    Builds the backbone, asks it for its stages (:func:`describe_backbone`,
    kept as ``backbone_stages``), and fills ``neck.in_channels``
    (``ExitNeck``) and ``head.in_channels`` (= ``neck.out_channels``,
    ``OccamHead``), so a backbone swap edits only ``backbone=``. A backbone
    config that leaves the maps to the family (timm ``features_only=True``
    without ``out_indices``) gets one exit per main stage
    (:func:`place_exits`: the last map at reductions 4, 8, 16, 32). Fails at
    build time when the backbone gives fewer than 2 four-dimensional maps.

    ``mode='tensor'`` returns the tuple of every exit's logits;
    ``mode='loss'`` raises ``FloatingPointError`` naming the loss that is not
    finite; ``mode='predict'`` applies the exit rule of the head.

    Args:
        backbone (dict): Backbone config giving >= 2 stage maps; an explicit
            ``out_indices`` is always kept.
        neck (dict): Exit neck config. Defaults to ``dict(type='ExitNeck')``.
        head (dict): Occam head config (needs ``num_classes``).
        probe_size (int): Image side of the dry run used for backbones whose
            channels cannot be read off. Defaults to 64.
        inference_mode (str): ``'compute_all'`` computes every exit (every
            per-exit score is filled, as validation metrics per exit need);
            ``'dynamic'`` runs the backbone stage by stage and stops each
            sample at its exit (same predictions, real savings; see
            ``dynamic_exit.py``). Defaults to ``'compute_all'``.
        pretrained (str, optional): Checkpoint of the whole model.
        train_cfg (dict, optional): Batch augments (see ImageClassifier).
        data_preprocessor (dict, optional): Defaults to
            ``ClsDataPreprocessor``.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 neck: Optional[dict] = None,
                 head: Optional[dict] = None,
                 probe_size: int = 64,
                 inference_mode: str = 'compute_all',
                 pretrained: Optional[str] = None,
                 train_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if head is None:
            raise ValueError('OccamClassifier: `head` is required, e.g. '
                             "dict(type='OccamHead', num_classes=...).")
        if not isinstance(backbone, nn.Module):
            backbone = MODELS.build(place_exits(backbone))
        stages = describe_backbone(
            backbone, in_channels=image_channels(data_preprocessor),
            img_size=probe_size)
        channels = stages.channels
        neck = copy.deepcopy(neck) if neck is not None else dict(
            type='ExitNeck')
        if isinstance(neck, dict):
            neck['in_channels'] = channels
            neck = MODELS.build(neck)
        if isinstance(head, dict):
            head = copy.deepcopy(head)
            head['in_channels'] = list(neck.out_channels)
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            pretrained=pretrained,
            train_cfg=train_cfg,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.stage_channels = channels
        self.backbone_stages = stages  # also runs the stages (dynamic mode)
        self.inference_mode = check_inference_mode(inference_mode)
        # torch DDP reads this attribute of the wrapped module
        # (the per-sample gate memory: see TrainingState.RANK_LOCAL_BUFFERS)
        self._ddp_params_and_buffers_to_ignore = rank_local_buffers(self)

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> dict:
        losses = super().loss(inputs, data_samples)
        # before the optimizer step, so the weights stay finite
        check_finite_losses(losses, 'OccamClassifier')
        return losses

    def predict(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                **kwargs) -> List[DataSample]:
        """Exit-aware prediction (see ``OccamHead.predict``).

        Also sets on every DataSample (metainfo): ``flops`` (FLOPs spent on
        it), ``exit_flops`` (cumulative FLOPs to reach and compute each exit,
        :func:`exit_flops`) and ``full_flops`` (the whole network), which
        ``ExitMetric`` reads.
        """
        results = None
        if self.inference_mode == 'dynamic':
            results = dynamic_predict(self, inputs, data_samples)
        if results is None:  # compute-all, or the backbone cannot be split
            results = self._predict_all(inputs, data_samples, **kwargs)
            set_compute_all_flops(self, inputs, results)
        self._set_exit_flops(inputs, results)
        return results

    def _set_exit_flops(self, inputs: torch.Tensor,
                        results: List[DataSample]) -> None:
        # FlopAnalyzer runs once per input shape (eval mode, no_grad, its own
        # zero input) and is cached in self.__dict__, not in the state_dict;
        # the per-exit sums are recomputed here so a changed
        # min_inference_exit is honoured
        counts = exit_flops(self, inputs.shape[1:])
        for ds in results:
            ds.set_field(list(counts['exit']), 'exit_flops',
                         field_type='metainfo')
            ds.set_field(counts['full'], 'full_flops', field_type='metainfo')

    def _predict_all(self,
                     inputs: torch.Tensor,
                     data_samples: Optional[List[DataSample]] = None,
                     **kwargs) -> List[DataSample]:
        """Compute every exit, then pick each sample's exit."""
        feats = self.extract_feat(inputs)
        return self.head.predict(feats, data_samples, **kwargs)

import copy
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from ..utils.ddp_ignore import ignore_rank_local_buffers
from ..utils.stages import backbone_with_exits, image_channels
from ..utils.finite import check_finite_losses
from ..utils.flops import cumulative_exit_flops
from .dynamic_exit import (check_inference_mode, dynamic_predict,
                           log_unstaged, measure_flop_profile, stage_runner,
                           warn_compute_all)

__all__ = ['OccamClassifier']


@MODELS.register_module()
class OccamClassifier(ImageClassifier):
    """An OccamNet on any CNN backbone.

    Builds the backbone, asks it for its stages and puts one exit on each of
    the maps it chose (:func:`backbone_with_exits`; the description of those
    maps is kept as ``backbone_stages``), and fills ``neck.in_channels``
    (``ExitNeck``) and ``head.in_channels`` (= ``neck.out_channels``,
    ``OccamHead``), so a backbone swap edits only ``backbone=``. A backbone
    config that leaves the maps to the family (an mmpretrain CNN without
    ``out_indices``, timm ``features_only=True`` without ``out_indices``)
    gets one exit per main stage (the last map at reductions 4, 8, 16, 32).
    Fails at build time when the backbone gives fewer than 2
    four-dimensional maps, or when its config holds keys its ``type`` does
    not take (naming ``model.backbone._delete_=True``). A backbone that
    cannot be run stage by stage (no ``StageDescriber`` knows its forward)
    computes every exit, and its per-exit FLOPs are unavailable: one log
    line at build time says so, ``exit_flops`` is not set on the
    predictions and ``ExitMetric`` leaves ``exit/expected_compute`` out.

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
        backbone, stages = backbone_with_exits(
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
        self.backbone_stages = stages  # also runs the stages (dynamic mode)
        self.inference_mode = check_inference_mode(inference_mode)
        # FLOPs per input shape (flop_profile); not in the state_dict
        self._flop_profiles: Dict[Tuple[int, ...], dict] = {}
        # the per-sample gate memory stays out of DDP's buffer broadcast
        ignore_rank_local_buffers(self)
        if stage_runner(self) is None:
            log_unstaged(self)

    def extract_feat(self, inputs: torch.Tensor, stage: str = 'neck'):
        """As ``ImageClassifier.extract_feat``; ``stage='backbone'`` gives
        the maps the exits sit on (``backbone_stages.pick``)."""
        if stage not in ('backbone', 'neck', 'pre_logits'):
            raise ValueError(f'OccamClassifier.extract_feat: stage={stage!r};'
                             " expected 'backbone', 'neck' or 'pre_logits'")
        try:
            maps = self.backbone(inputs)
        except RuntimeError as err:
            clear = self._size_error(inputs, err)
            if clear is None:
                raise
            raise clear from err
        x = self.backbone_stages.pick(maps)
        if stage == 'backbone':
            return x
        x = self.neck(x)
        if stage == 'neck':
            return x
        return self.head.pre_logits(x)

    def _size_error(self, inputs: torch.Tensor,
                    err: RuntimeError) -> Optional[ValueError]:
        """A clear error for a backbone that fails on an input side that is
        not a multiple of its largest reduction (HRNet fuses its branches
        by upsampling, so 112 px gives maps of 28 and 32), else None."""
        largest = max(self.backbone_stages.reductions)
        sides = tuple(int(s) for s in inputs.shape[2:])
        if 'size' not in str(err) or all(s % largest == 0 for s in sides):
            return None
        ok = sorted({max(largest, s // largest * largest) for s in sides} |
                    {(s // largest + 1) * largest for s in sides})
        return ValueError(
            f'{type(self.backbone).__name__}: input of {sides[0]} x '
            f'{sides[1]} px failed ({err}); its maps go down to 1/{largest} '
            f'of the input, and this backbone needs sides that are '
            f'multiples of {largest} (e.g. {" or ".join(map(str, ok))} px): '
            'resize or crop the images to such a size.')

    def flop_profile(self, img_shape: Sequence[int]) -> dict:
        """Per-stage, per-exit and compute-all FLOPs of one image of
        ``img_shape`` (C, H, W), measured once per shape
        (:func:`measure_flop_profile`)."""
        key = tuple(int(s) for s in img_shape)
        if key not in self._flop_profiles:
            self._flop_profiles[key] = measure_flop_profile(self, key)
        return self._flop_profiles[key]

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
        :func:`cumulative_exit_flops`; not set when the backbone cannot be
        run stage by stage) and ``full_flops`` (the whole network), which
        ``ExitMetric`` reads.
        """
        img_shape = inputs.shape[1:]
        if self._runs_dynamic():
            results = dynamic_predict(self, inputs,
                                      self.flop_profile(img_shape),
                                      data_samples)
        else:  # the whole network on every sample
            results = self._predict_all(inputs, data_samples, **kwargs)
            flops = float(self.flop_profile(img_shape)['compute_all'])
            for ds in results:
                ds.set_field(flops, 'flops', field_type='metainfo')
        self._set_exit_flops(self.flop_profile(img_shape), results)
        return results

    def _runs_dynamic(self) -> bool:
        """``inference_mode='dynamic'`` on a backbone that can be split (a
        warning when it cannot: compute-all then)."""
        if self.inference_mode != 'dynamic':
            return False
        if stage_runner(self) is None:
            warn_compute_all(self)
            return False
        return True

    def _set_exit_flops(self, profile: dict,
                        results: List[DataSample]) -> None:
        # FlopAnalyzer runs once per input shape (flop_profile); the
        # per-exit sums are recomputed here so a changed min_inference_exit
        # is honoured
        counts = cumulative_exit_flops(profile, self.head.min_inference_exit)
        for ds in results:
            if counts['exit'] is not None:  # None: backbone not staged
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

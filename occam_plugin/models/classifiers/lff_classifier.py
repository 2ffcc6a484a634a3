import copy
from typing import List, Optional

import torch
import torch.nn.functional as F
from mmpretrain.models.classifiers.base import BaseClassifier
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ...dist import all_gather_rows
from ...errors import MissingKeyError
from ..heads.method_plug_point import MethodPlugPoint
from ..utils.training_state import (TrainingState, resize_on_load,
                                    resize_per_sample)

__all__ = ['relative_difficulty', 'LfFClassifier']


def relative_difficulty(loss_b: torch.Tensor, loss_d: torch.Tensor,
                        eps: float = 1e-8) -> torch.Tensor:
    """LfF's relative-difficulty weight ``W = L_B / (L_B + L_D + eps)``.

    ``loss_b`` / ``loss_d`` are the biased / debiased model's per-sample EMA
    losses, already divided by their class-wise max.
    """
    return loss_b / (loss_b + loss_d + eps)


@MODELS.register_module()
class LfFClassifier(BaseClassifier, TrainingState):
    """Learning from Failure (Nam et al., NeurIPS 2020).

    Trains a *biased* and a *debiased* model together on the same batches:

    - the biased model with generalized CE (``biased_loss``, q = 0.7) on its
      (last) logits, so it amplifies the shortcut;
    - per training sample, an EMA (``ema_alpha`` = 0.7) of both models'
      detached CE, kept in buffers of length ``len(train_set)`` (indexed by
      ``sample_idx``; the first update of a sample sets it to its CE);
    - each EMA divided by its class-wise max over the training samples;
    - the relative difficulty ``W = L_B / (L_B + L_D + 1e-8)`` (detached)
      multiplies the debiased model's per-sample CE: the debiased head is
      called as ``head.loss(feats, data_samples, sample_weight=W)``, which
      a head declaring ``MethodPlugPoint`` accepts (``MethodLinearClsHead``;
      ``OccamHead``: every exit's CE).

    Prediction (and ``mode='tensor'``) comes from the debiased model. The EMA
    updates of all processes are all-gathered, so every rank holds every
    sample's EMA (no-op without a process group). The buffers are sized by
    :class:`TrainingStateHook` before training, grow if a larger ``sample_idx``
    shows up, and take the checkpoint's size on load (exact resume).

    With an OccamNet as the debiased model, ``L_D`` is the CE of its last exit.

    Args:
        biased_model (dict): Config of the biased classifier
            (``ImageClassifier``, ``OccamClassifier``, ...).
        debiased_model (dict, optional): Config of the debiased classifier.
            Its head must declare ``MethodPlugPoint`` (take
            ``sample_weight``). Defaults to a copy of
            ``biased_model``.
        biased_loss (dict): Loss of the biased model. Defaults to
            ``dict(type='GeneralizedCELoss', q=0.7)``.
        ema_alpha (float): EMA factor of the per-sample losses. Defaults to
            0.7.
        num_samples (int): Initial size of the per-sample buffers (normally
            set by ``TrainingStateHook``). Defaults to 0.
        data_preprocessor (dict, optional): Defaults to
            ``ClsDataPreprocessor``.
        init_cfg (dict, optional): Initialization config.
    """

    def __init__(self,
                 biased_model: dict,
                 debiased_model: Optional[dict] = None,
                 biased_loss: dict = dict(type='GeneralizedCELoss', q=0.7),
                 ema_alpha: float = 0.7,
                 num_samples: int = 0,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if data_preprocessor is None or isinstance(data_preprocessor, dict):
            data_preprocessor = dict(data_preprocessor or {})
            data_preprocessor.setdefault('type', 'ClsDataPreprocessor')
            # built from mmpretrain's registry (mmengine's lacks it outside
            # the mmpretrain scope), as ImageClassifier does
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(init_cfg=init_cfg,
                         data_preprocessor=data_preprocessor)
        if not 0 <= ema_alpha < 1:
            raise ValueError(
                f'LfFClassifier: ema_alpha must be in [0, 1), got {ema_alpha}')
        if debiased_model is None:
            debiased_model = copy.deepcopy(biased_model)
        self.biased_model = MODELS.build(biased_model)
        self.debiased_model = MODELS.build(debiased_model)
        head = getattr(self.debiased_model, 'head', None)
        # the head declares that its loss takes sample_weight
        if not isinstance(head, MethodPlugPoint):
            raise TypeError(
                'LfFClassifier: the debiased model\'s head '
                f'({type(head).__name__}) must declare MethodPlugPoint (its '
                'loss takes head.loss(..., sample_weight=W)); use '
                "dict(type='MethodLinearClsHead', ...) "
                "instead of 'LinearClsHead', or an OccamHead.")
        self.biased_loss = MODELS.build(biased_loss)
        self.ema_alpha = ema_alpha
        self.register_buffer('ema_biased', torch.zeros(0))
        self.register_buffer('ema_debiased', torch.zeros(0))
        self.register_buffer('ema_updated', torch.zeros(0, dtype=torch.bool))
        self.register_buffer('sample_label',
                             torch.zeros(0, dtype=torch.long))
        resize_on_load(self)
        self.resize_memory(num_samples)

    # ``head`` of the debiased model, so hooks/tools that look for
    # ``model.head`` (e.g. TrainGuardHook's class-count check) find the
    # trained one
    @property
    def head(self):
        return self.debiased_model.head

    # the debiased model's parts too: what FLOP counting / CAM tools inspect
    # is the model that predicts
    @property
    def backbone(self):
        return self.debiased_model.backbone

    @property
    def neck(self):
        return getattr(self.debiased_model, 'neck', None)

    # ---------------------------------------------------------------- state
    _BUFFERS = ('ema_biased', 'ema_debiased', 'ema_updated', 'sample_label')
    PER_SAMPLE_BUFFERS = _BUFFERS  # (TrainingState: training-only rows)
    # -1: no label yet, so _class_max skips the row
    PER_SAMPLE_FILL = dict(sample_label=-1)

    def resize_memory(self, num_samples: int) -> None:
        """Grow the per-sample buffers to ``num_samples`` (keeps the state,
        never shrinks: a larger ``sample_idx`` may show up mid-training)."""
        if num_samples > self.ema_biased.numel():
            resize_per_sample(self, num_samples)

    def prepare_from_dataset(self, info: dict) -> None:
        """TrainingState: size the memory to the train set."""
        self.resize_memory(int(info['num_samples']))
        labels = info.get('gt_label')
        if labels is not None:
            labels = torch.as_tensor(labels, dtype=torch.long,
                                     device=self.sample_label.device)
            self.sample_label[:labels.numel()] = labels

    @torch.no_grad()
    def update_ema(self, sample_idx: torch.Tensor, gt: torch.Tensor,
                   ce_biased: torch.Tensor, ce_debiased: torch.Tensor) -> None:
        """EMA update of both models' per-sample CE, for the samples of every
        process: ``ema <- alpha * ema + (1 - alpha) * ce`` (``ema <- ce`` at a
        sample's first update)."""
        rows = torch.stack([
            sample_idx.double(), gt.double(), ce_biased.double(),
            ce_debiased.double()
        ], dim=1)
        rows = all_gather_rows(rows)
        idx, label = rows[:, 0].long(), rows[:, 1].long()
        if (idx < 0).any():
            raise ValueError('LfFClassifier: negative sample_idx in the batch')
        self.resize_memory(int(idx.max()) + 1)
        a = self.ema_alpha
        seen = self.ema_updated[idx]
        for name, col in (('ema_biased', 2), ('ema_debiased', 3)):
            buf = getattr(self, name)
            new = rows[:, col].to(buf.dtype)
            buf[idx] = torch.where(seen, a * buf[idx] + (1 - a) * new, new)
        self.ema_updated[idx] = True
        self.sample_label[idx] = label

    def _class_max(self, ema: torch.Tensor, num_classes: int) -> torch.Tensor:
        valid = self.sample_label >= 0
        out = ema.new_zeros(num_classes)
        return out.scatter_reduce(0, self.sample_label[valid], ema[valid],
                                  reduce='amax', include_self=True)

    def sample_weights(self, sample_idx: torch.Tensor,
                       gt: torch.Tensor) -> torch.Tensor:
        """``W`` for the given samples from the current (updated) EMAs."""
        num_classes = int(max(self.sample_label.max().item(),
                              gt.max().item())) + 1
        max_b = self._class_max(self.ema_biased, num_classes)
        max_d = self._class_max(self.ema_debiased, num_classes)
        loss_b = self.ema_biased[sample_idx] / max_b[gt].clamp_min(1e-8)
        loss_d = self.ema_debiased[sample_idx] / max_d[gt].clamp_min(1e-8)
        return relative_difficulty(loss_b, loss_d).detach()

    # -------------------------------------------------------------- forward
    def forward(self, inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        """``'tensor'`` / ``'predict'`` from the debiased model, ``'loss'``
        trains both."""
        if mode == 'tensor':
            return self.debiased_model(inputs, mode='tensor')
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}".')

    def extract_feat(self, inputs: torch.Tensor, **kwargs):
        """Features of the debiased model."""
        return self.debiased_model.extract_feat(inputs, **kwargs)

    @staticmethod
    def _last_logits(out) -> torch.Tensor:
        # an OccamNet's head returns one logit tensor per exit: take the last
        if isinstance(out, (tuple, list)):
            return out[-1]
        return out

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> dict:
        """Both models' losses, prefixed ``biased.`` / ``debiased.``."""
        if not data_samples or any('sample_idx' not in ds
                                   for ds in data_samples):
            raise MissingKeyError(
                'LfFClassifier needs data_sample.sample_idx (the index of the '
                'sample in the training set; PackInputs packs it by default).')
        gt = torch.cat([ds.gt_label for ds in data_samples]).to(inputs.device)
        sample_idx = torch.tensor([int(ds.sample_idx) for ds in data_samples],
                                  device=inputs.device)
        feats_b = self.biased_model.extract_feat(inputs)
        logits_b = self._last_logits(self.biased_model.head(feats_b))
        feats_d = self.debiased_model.extract_feat(inputs)
        head_d = self.debiased_model.head
        # (OccamHead: one pass over the exits, reused by head.loss)
        logits_d, extra = head_d.forward_for_loss(feats_d)

        self.update_ema(sample_idx, gt,
                        F.cross_entropy(logits_b.detach(), gt,
                                        reduction='none'),
                        F.cross_entropy(logits_d.detach(), gt,
                                        reduction='none'))
        weight = self.sample_weights(sample_idx, gt)

        losses = dict()
        losses['biased.loss_gce'] = self.biased_loss(logits_b, gt)
        debiased = head_d.loss(feats_d, data_samples, sample_weight=weight,
                               **extra)
        losses.update({f'debiased.{k}': v for k, v in debiased.items()})
        losses['lff_weight_mean'] = weight.mean()
        losses.update(self._weight_by_alignment(data_samples, weight,
                                                logits_d, gt))
        return losses

    @staticmethod
    def _weight_by_alignment(data_samples, weight, logits_d, gt) -> dict:
        """Where the samples say whether they are bias-aligned: the mean W
        of the batch's aligned and conflicting samples, and the debiased
        model's accuracy on its conflicting ones. Logged (not losses), they
        show over training whether W singles out the conflicting samples and
        how fast they are memorised. A batch without a kind logs no value
        for it."""
        if not all('bias_aligned' in ds for ds in data_samples):
            return {}
        aligned = torch.tensor([bool(ds.bias_aligned) for ds in data_samples],
                               device=weight.device)
        out = {}
        w = weight.detach()
        if aligned.any():
            out['lff_weight_aligned'] = w[aligned].mean()
        if (~aligned).any():
            out['lff_weight_conflicting'] = w[~aligned].mean()
            hit = logits_d.detach()[~aligned].argmax(1) == gt[~aligned]
            out['lff_train_acc_conflicting'] = hit.float().mean() * 100
        return out

    def predict(self, inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None, **kwargs):
        """Predictions of the debiased model."""
        return self.debiased_model.predict(inputs, data_samples, **kwargs)

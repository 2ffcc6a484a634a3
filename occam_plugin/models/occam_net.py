"""An OccamNet as a plain ``nn.Module``, created as timm creates a model.

    import occam_plugin
    net = occam_plugin.create_occam_model('resnet18', num_classes=6)
    out = net.forward_exits(x)      # logits, exit_idx, gates, exit_logits
    logits = net(x)                 # the chosen exit's logits [N, C]

The wrapped :class:`OccamClassifier` is the one the configs build (same
backbone stages, exit neck, Occam head and losses); this module gives it
timm's calling convention (a normalised RGB tensor in, a tensor out) and the
few calls a training loop without mmengine needs.
"""
import copy
from typing import Dict, NamedTuple, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from ..config_path import get_config_path
from .utils.training_state import prepare_from_dataset, reset_epoch_state

__all__ = ['OccamOutput', 'OccamNet', 'create_occam_model']

#: the paper's exit neck and head settings (one source: the shipped config)
OCCAM_BASE_CONFIG = '_base_/models/occam_resnet18.py'
#: timm's ImageNet normalisation, for a backbone whose config names none
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class OccamOutput(NamedTuple):
    """What :meth:`OccamNet.forward_exits` returns.

    Args:
        logits (Tensor): ``[N, C]`` logits of the exit each sample takes.
        exit_idx (Tensor): ``[N]`` int64, the exit each sample takes.
        gates (Tensor): ``[N, E]`` every exit's gate (probability of
            exiting there).
        exit_logits (Tensor): ``[N, E, C]`` every exit's logits.
    """
    logits: torch.Tensor
    exit_idx: torch.Tensor
    gates: torch.Tensor
    exit_logits: torch.Tensor


class OccamNet(nn.Module):
    """An :class:`OccamClassifier` with timm's calling convention.

    ``forward(x)`` takes a normalised RGB batch ``[N, 3, H, W]``
    (:attr:`pretrained_cfg` gives the mean and std, as timm models do) and
    returns the logits of the exit that each sample takes under the exit
    rule (the first inference exit whose gate is >= ``exit_threshold``,
    else the last); every exit is computed, so the graph has no
    data-dependent branch and exports with ``torch.export`` and to ONNX.
    :meth:`forward_exits` also returns the exit index, the gates and every
    exit's logits.

    Training without mmengine: :meth:`prepare_training` once with the
    labels of the training set (it sizes the per-sample gate memory), then
    :meth:`start_epoch` at each epoch start and :meth:`loss` per batch; the
    ``sample_idx`` of a sample is its index in that training set. The state
    lives in the module's buffers, so ``state_dict()`` carries it.

    Args:
        classifier (OccamClassifier): The model to wrap (built from a
            config, or by :func:`create_occam_model`).
        pretrained_cfg (dict, optional): ``mean``, ``std`` (0-1 scale, RGB)
            and ``input_size`` of the inputs. Defaults to ImageNet's
            normalisation.
    """

    def __init__(self, classifier: nn.Module,
                 pretrained_cfg: Optional[dict] = None):
        super().__init__()
        if not hasattr(classifier, 'backbone_stages'):
            raise TypeError(
                f'OccamNet wraps an OccamClassifier, got '
                f'{type(classifier).__name__}.')
        self.classifier = classifier
        self.pretrained_cfg = dict(mean=IMAGENET_MEAN, std=IMAGENET_STD)
        self.pretrained_cfg.update(pretrained_cfg or {})

    @property
    def head(self) -> nn.Module:
        """The :class:`OccamHead` (exit rule, losses)."""
        return self.classifier.head

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    @property
    def num_exits(self) -> int:
        return self.head.num_exits

    def forward_exits(self, x: torch.Tensor) -> OccamOutput:
        """Every exit, the gates, and the exit each sample takes."""
        outs = self.head.forward_exits(self.classifier.extract_feat(x))
        exit_logits = torch.stack(outs['logits'], dim=1)  # N, E, C
        gates = torch.stack(outs['gates'], dim=1)  # N, E
        exit_idx = self.head.select_exits(gates)
        logits = exit_logits.gather(
            1, exit_idx.view(-1, 1, 1).expand(-1, 1, exit_logits.shape[2]))
        return OccamOutput(logits.squeeze(1), exit_idx, gates, exit_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The chosen exit's logits ``[N, C]``."""
        return self.forward_exits(x).logits

    # ---- training without mmengine -----------------------------------------
    def prepare_training(self, targets: Sequence[int],
                         groups: Optional[Sequence[int]] = None) -> None:
        """Size the state that follows the training set (the gate memory:
        one row per sample), as mmengine's ``TrainingStateHook`` does before
        training.

        Args:
            targets (Sequence[int]): The class of every training sample, in
                the order of their ``sample_idx``.
            groups (Sequence[int], optional): The group of every sample (for
                group-aware methods). Defaults to None.
        """
        labels = np.asarray(targets, dtype=np.int64).reshape(-1)
        if labels.size == 0:
            raise ValueError('OccamNet.prepare_training: no targets given '
                             '(one class index per training sample).')
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise ValueError(
                f'OccamNet.prepare_training: targets must lie in [0, '
                f'{self.num_classes - 1}] (num_classes={self.num_classes}), '
                f'got {labels.min()}..{labels.max()}.')
        group_idx = None if groups is None else np.asarray(
            groups, dtype=np.int64).reshape(-1)
        prepare_from_dataset(self, dict(
            num_samples=len(labels), gt_label=labels, group_idx=group_idx,
            num_groups=None if group_idx is None else int(group_idx.max()) + 1,
            dataset_name='OccamNet.prepare_training'))

    def start_epoch(self, epoch: int) -> None:
        """Restart the per-epoch statistics (running exit accuracies, the
        exit-CE running max) at the start of epoch ``epoch`` (0-based)."""
        reset_epoch_state(self, epoch)

    def loss(self, x: torch.Tensor, target: torch.Tensor,
             sample_idx: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The OccamNet losses of one batch (CAM suppression, gate-weighted
        CE and gate loss per exit) and ``loss``, their sum to call
        ``backward()`` on.

        Args:
            x (Tensor): ``[N, 3, H, W]`` normalised images.
            target (Tensor): ``[N]`` class indices.
            sample_idx (Tensor): ``[N]`` index of each sample in the
                training set given to :meth:`prepare_training`.

        Returns:
            dict[str, Tensor]: ``loss`` and every term (``loss_*_e{k}``),
            plus the per-exit train accuracies ``acc_e{k}`` (not losses).
        """
        target = torch.as_tensor(target).reshape(-1)
        sample_idx = torch.as_tensor(sample_idx).reshape(-1)
        if not (len(target) == len(sample_idx) == len(x)):
            raise ValueError(
                f'OccamNet.loss: {len(x)} images, {len(target)} targets and '
                f'{len(sample_idx)} sample indices; one of each per sample.')
        samples = [DataSample(sample_idx=int(i)).set_gt_label(int(t))
                   for t, i in zip(target.tolist(), sample_idx.tolist())]
        losses = self.classifier.loss(x, samples)
        total, _ = self.classifier.parse_losses(losses)
        return dict(losses, loss=total)


def create_occam_model(model_name: str,
                       num_classes: int,
                       pretrained: bool = False,
                       in_chans: int = 3,
                       backbone: Optional[dict] = None,
                       neck: Optional[dict] = None,
                       head: Optional[dict] = None,
                       **kwargs) -> OccamNet:
    """Create an OccamNet on a timm backbone, as ``timm.create_model``.

    The backbone is ``timm.create_model(model_name, features_only=True,
    pretrained=pretrained, in_chans=in_chans, **kwargs)`` (through
    mmpretrain's ``TIMMBackbone``): one exit on each of its main stages. The
    exit neck and the head take the paper's settings (the shipped
    ``configs/_base_/models/occam_resnet18.py``).

    Args:
        model_name (str): A timm model name (``timm.list_models()``) of a
            CNN whose ``features_only`` mode gives >= 2 stage maps.
        num_classes (int): Number of classes.
        pretrained (bool): timm's pretrained backbone weights (timm loads
            them; offline they must be in its cache). Defaults to False.
        in_chans (int): Image channels. Defaults to 3.
        backbone (dict, optional): A whole backbone config instead (any
            mmpretrain / registered backbone), e.g.
            ``dict(type='ResNet', depth=18, base_channels=58)``; then
            ``model_name``, ``pretrained``, ``in_chans`` and ``kwargs`` are
            not used and must keep their defaults.
        neck (dict, optional): Keys that replace the paper's exit-neck
            settings (e.g. ``dict(hidden_ratio=0.5)``).
        head (dict, optional): Keys that replace the paper's head settings
            (e.g. ``dict(exit_threshold=0.7, min_inference_exit=2)``).
        **kwargs: Passed to ``timm.create_model``.

    Returns:
        OccamNet: The model, in training mode (as timm returns it).
    """
    from mmengine.config import Config
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) \
            or num_classes < 2:
        raise ValueError(f'create_occam_model: num_classes must be an int '
                         f'>= 2, got {num_classes!r}')
    base = Config.fromfile(get_config_path(OCCAM_BASE_CONFIG)).model
    cfg = copy.deepcopy(base.to_dict())
    if backbone is not None:
        if kwargs or pretrained or in_chans != 3:
            raise ValueError(
                'create_occam_model: with backbone=, the timm options '
                f'(pretrained, in_chans, {sorted(kwargs)}) do not apply; put '
                'them in the backbone config.')
        cfg['backbone'] = copy.deepcopy(backbone)
    else:
        cfg['backbone'] = dict(type='TIMMBackbone', model_name=model_name,
                               features_only=True, pretrained=pretrained,
                               in_channels=in_chans, **kwargs)
    # an unknown key is refused by the neck's / head's own __init__
    cfg['neck'].update(neck or {})
    cfg['head'].update(head or {})
    cfg['head']['num_classes'] = num_classes
    classifier = MODELS.build(cfg)
    pretrained_cfg = {}
    timm_model = getattr(classifier.backbone, 'timm_model', None)
    timm_cfg = getattr(timm_model, 'pretrained_cfg', None) or {}
    for key in ('mean', 'std', 'input_size'):
        if key in timm_cfg:
            pretrained_cfg[key] = tuple(timm_cfg[key])
    return OccamNet(classifier, pretrained_cfg)

"""Run a backbone stage by stage, so inference can stop after any stage.

A *stage* here is the computation between two consecutive backbone outputs:
stage 0 runs from the image to output 0 (stem included), stage k from output
k-1 to output k. Running stages ``0..k`` gives exactly the backbone's output
``k`` (same modules, same order, same train/eval state), and layers after the
last output are never run.

Supported (the split is read from what the library exposes, not guessed):

- mmpretrain ``ResNet`` family whose ``forward`` is ``ResNet.forward`` (ResNet,
  ResNetV1c/d, ResNeXt, SEResNet, ...) or ``ResNet_CIFAR.forward``: stem
  (``stem`` when ``deep_stem`` else ``conv1-norm1-relu``), ``maxpool`` (not in
  ResNet_CIFAR), then ``res_layers``; outputs where ``i in out_indices``.
- mmpretrain ``TIMMBackbone`` wrapping timm ``FeatureDictNet`` /
  ``FeatureListNet`` (module order of the ``ModuleDict`` and its
  ``return_layers``), or ``EfficientNetFeatures`` / ``MobileNetV3Features``
  without feature hooks (stem, ``blocks`` and ``_stage_out_idx``).
- any backbone that defines ``get_exit_stages()`` returning a list of
  callables ``stage(carry) -> (carry, out)``.

Anything else (``FeatureHookNet``, ``FeatureGetterNet``, backbones with a
custom ``forward``) returns ``None`` with a one-line warning; the caller then
computes everything.
"""
import warnings
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

Carry = Union[torch.Tensor, Tuple[torch.Tensor, ...], List[torch.Tensor]]
Stage = Callable[[Carry], Tuple[Carry, torch.Tensor]]


def take_samples(carry: Carry, index: torch.Tensor) -> Carry:
    """Keep only the samples ``index`` (along dim 0) of a stage's carry."""
    if isinstance(carry, torch.Tensor):
        return carry.index_select(0, index)
    if isinstance(carry, (tuple, list)):
        return type(carry)(take_samples(c, index) for c in carry)
    raise TypeError(f'take_samples: cannot index a carry of type '
                    f'{type(carry).__name__}; expected a Tensor or a '
                    f'tuple/list of Tensors')


class _ModuleRange:
    """Stage made of modules run one after the other (plain ``x = m(x)``).

    ``tap`` converts the last module's result into the stage output (timm's
    rule for tuple outputs: concatenate or take the first element).
    """

    def __init__(self, modules: Sequence[nn.Module], concat: bool = False):
        self.modules = list(modules)
        self.concat = concat

    def __call__(self, x: Carry) -> Tuple[Carry, torch.Tensor]:
        for m in self.modules:
            x = m(x)
        out = x
        if isinstance(x, (tuple, list)):
            out = torch.cat(x, 1) if self.concat else x[0]
        return x, out


def _split_in_order(modules: Sequence[nn.Module], is_output: Sequence[bool],
                    concat: bool = False) -> List[Stage]:
    """Cut an ordered module list after every module whose output is taken."""
    stages, current = [], []
    for m, taken in zip(modules, is_output):
        current.append(m)
        if taken:
            stages.append(_ModuleRange(current, concat))
            current = []
    return stages


def _resnet_stages(bb: nn.Module, with_maxpool: bool) -> List[Stage]:
    if getattr(bb, 'deep_stem', False):
        stem = [bb.stem]
    else:
        stem = [bb.conv1, bb.norm1, bb.relu]
    if with_maxpool:
        stem.append(bb.maxpool)
    layers = [getattr(bb, name) for name in bb.res_layers]
    # the same membership test as ResNet.forward, so odd out_indices behave
    # exactly as in the backbone (e.g. negative values never match there)
    taken = [i in bb.out_indices for i in range(len(layers))]
    return _split_in_order(stem + layers, [False] * len(stem) + taken)


def _timm_stages(net: nn.Module) -> Optional[List[Stage]]:
    from timm.models._features import FeatureDictNet
    if isinstance(net, FeatureDictNet) and (
            type(net)._collect is FeatureDictNet._collect):
        names = list(net.keys())
        modules = [net[n] for n in names]
        taken = [n in net.return_layers for n in names]
        return _split_in_order(modules, taken, concat=net.concat)

    prefix = None
    try:
        from timm.models.efficientnet import EfficientNetFeatures
        if type(net).forward is EfficientNetFeatures.forward:
            prefix = ['conv_stem', 'bn1']
    except ImportError:  # pragma: no cover - timm always has it
        pass
    try:
        from timm.models.mobilenetv3 import MobileNetV3Features
        if type(net).forward is MobileNetV3Features.forward:
            prefix = ['conv_stem', 'bn1', 'act1']
    except ImportError:  # pragma: no cover
        pass
    if prefix is None or net.feature_hooks is not None:
        return None
    stem = [getattr(net, n) for n in prefix]
    blocks = list(net.blocks)
    # _stage_out_idx: 0 = stem output, i + 1 = output of blocks[i]
    taken = [i in net._stage_out_idx for i in range(len(blocks) + 1)]
    # the stem's last module carries output 0
    return _split_in_order(stem + blocks, [False] * (len(stem) - 1) + taken)


class StagedBackbone:
    """A backbone cut into stages that end at its outputs.

    Not an ``nn.Module``: it only references the backbone's own modules, so it
    adds nothing to state dicts and follows the backbone's train/eval mode.

    Args:
        backbone (nn.Module): The backbone whose modules the stages call.
        stages (list[callable]): ``stage(carry) -> (carry, out)``; stage 0
            takes the input image batch.
        kind (str): What kind of split was used (for messages).
    """

    def __init__(self, backbone: nn.Module, stages: List[Stage], kind: str):
        self.backbone = backbone
        self.stages = list(stages)
        self.kind = kind

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    def run_stage(self, k: int, carry: Carry) -> Tuple[Carry, torch.Tensor]:
        """Run stage ``k``: returns the carry for stage ``k+1`` and output
        ``k``."""
        return self.stages[k](carry)

    def forward_all(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """All outputs, stage after stage (equals ``backbone(x)``)."""
        outs = []
        for k in range(self.num_stages):
            x, out = self.run_stage(k, x)
            outs.append(out)
        return tuple(outs)

    @classmethod
    def from_backbone(cls, backbone: nn.Module,
                      warn: bool = True) -> Optional['StagedBackbone']:
        """Split ``backbone`` into stages, or ``None`` if it cannot be split.

        Args:
            backbone (nn.Module): An mmpretrain/timm backbone.
            warn (bool): Emit a one-line warning when it cannot be split.
        """
        stages, kind = None, type(backbone).__name__
        if callable(getattr(backbone, 'get_exit_stages', None)):
            stages = list(backbone.get_exit_stages())
        else:
            from mmpretrain.models.backbones import (ResNet, ResNet_CIFAR,
                                                     TIMMBackbone)
            fwd = type(backbone).forward
            if isinstance(backbone, ResNet) and fwd is ResNet.forward:
                stages = _resnet_stages(backbone, with_maxpool=True)
            elif isinstance(backbone, ResNet_CIFAR) and (
                    fwd is ResNet_CIFAR.forward):
                stages = _resnet_stages(backbone, with_maxpool=False)
            elif isinstance(backbone, TIMMBackbone) and (
                    fwd is TIMMBackbone.forward):
                kind = f'TIMMBackbone({type(backbone.timm_model).__name__})'
                stages = _timm_stages(backbone.timm_model)
        if not stages:
            if warn:
                warnings.warn(
                    f'StagedBackbone: cannot run {kind} stage by stage '
                    f'(unknown forward); falling back to compute-all.')
            return None
        return cls(backbone, stages, kind)

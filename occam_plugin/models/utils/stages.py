"""One description of a backbone's stages, asked of the backbone, not guessed.

:func:`describe_backbone` returns a :class:`BackboneStages` (in the spirit of
timm's ``FeatureInfo``): for every map the backbone returns, its channels,
reduction (input side / map side), the backbone's own index of it (what its
``out_indices`` names), the module that gives it, whether it ends a main
stage, and, when the family's ``forward`` is known, the modules of every
*stage* (stage 0: image -> map 0, stem included; stage k: map k-1 -> map k),
so the backbone can be run stage by stage. Channel inference
(``OccamClassifier``), dynamic inference (``dynamic_exit.py``) and FLOPs
(``flops.py``) all read this one description.

Extension point: one :class:`StageDescriber` per backbone family, registered
with :func:`register_describer` under the class whose ``forward`` the backbone
runs (a subclass with its own ``forward`` is never split by its parent's
rule): ``describe`` says what the built backbone gives, and
``leaves_maps_to_family`` whether its config left the choice of exits to the
default placement. Shipped: mmpretrain ``ResNet`` (and ResNetV1c/d, ResNeXt,
SEResNet..., which run ``ResNet.forward``), ``ResNet_CIFAR``,
``TIMMBackbone``; any other
backbone is read off one dry run (channels, reductions; no stage runner, so
dynamic inference computes everything).

Default exit placement (:func:`place_exits`): a config that leaves the maps
to the family (timm ``features_only=True`` without ``out_indices``) gets one
exit per main stage, as the paper puts one exit per ResNet stage: the last
map at each of the reductions 4, 8, 16 and 32 that the backbone has. The
exits are chosen from the description of the backbone as built (every map
the family gives), not from a second build.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Type, Union

import torch
from torch import nn

Carry = Union[torch.Tensor, Tuple[torch.Tensor, ...], List[torch.Tensor]]

#: reductions whose last map ends a main stage (the 4 stages of a ResNet)
MAIN_STAGE_REDUCTIONS = (4, 8, 16, 32)

_HINT = ('OccamNets need >= 2 four-dimensional stage maps (N, C, H, W) from '
         'the backbone. For mmpretrain ResNet set `out_indices=(0, 1, 2, 3)`; '
         'for TIMMBackbone set `features_only=True` (and optionally '
         '`out_indices`, e.g. `(1, 2, 3, 4)`). Token outputs (ViT, 3-D) are '
         'not supported.')


def take_samples(carry: Carry, index: torch.Tensor) -> Carry:
    """Keep only the samples ``index`` (along dim 0) of a stage's carry."""
    if isinstance(carry, torch.Tensor):
        return carry.index_select(0, index)
    if isinstance(carry, (tuple, list)):
        return type(carry)(take_samples(c, index) for c in carry)
    raise TypeError(f'take_samples: cannot index a carry of type '
                    f'{type(carry).__name__}; expected a Tensor or a '
                    f'tuple/list of Tensors')


@dataclass
class BackboneStages:
    """What a built backbone returns, and how to run it stage by stage.

    Lists have one entry per map the backbone returns, in order.

    Args:
        backbone (nn.Module): The described backbone.
        kind (str): The family, for messages (e.g. ``'ResNet'``).
        channels (list[int]): Channels of every map.
        reductions (list[int]): Input side / map side of every map.
        indices (list[int]): The backbone's own index of every map (what its
            ``out_indices`` names).
        names (list[str]): The module that gives every map.
        main (list[bool]): Whether the map ends a main stage.
        stage_modules (list[list[str]], optional): Module paths (in
            ``backbone``) run one after the other by every stage; ``None``
            when the backbone cannot be run stage by stage. Modules are looked
            up at run time, so swapped modules (e.g. SyncBN) are followed.
        concat (bool): A stage whose last module returns a tuple gives the
            concatenation of it (else its first element), as timm's
            ``FeatureDictNet(concat=...)``. Defaults to False.
        positions (list[int], optional): Where the described maps are in what
            ``backbone`` returns, when they are only some of it (see
            :meth:`select`); ``None``: every returned map, in order.
    """
    backbone: nn.Module = field(repr=False)
    kind: str
    channels: List[int]
    reductions: List[int]
    indices: List[int]
    names: List[str]
    main: List[bool]
    stage_modules: Optional[List[List[str]]] = None
    concat: bool = False
    positions: Optional[List[int]] = None

    @property
    def num_stages(self) -> int:
        return len(self.channels)

    @property
    def runnable(self) -> bool:
        """Whether the backbone can be run stage by stage."""
        return self.stage_modules is not None

    def main_stage_ends(self) -> List[int]:
        """Positions (in these lists) of the maps that end a main stage."""
        return [i for i, m in enumerate(self.main) if m]

    def select(self, keep: Sequence[int]) -> 'BackboneStages':
        """The description of the maps at positions ``keep`` (increasing) of
        this one: stage ``j`` runs every module from map ``keep[j - 1]`` to
        map ``keep[j]``, so the stages still chain."""
        keep = list(keep)
        if not keep or keep != sorted(set(keep)) or not (
                0 <= keep[0] and keep[-1] < self.num_stages):
            raise ValueError(f'BackboneStages.select: positions {keep}; '
                             'expected increasing positions in 0..'
                             f'{self.num_stages - 1}')
        stage_modules = None
        if self.stage_modules is not None:
            bounds = [-1] + keep
            stage_modules = [
                sum(self.stage_modules[a + 1:b + 1], [])
                for a, b in zip(bounds[:-1], bounds[1:])
            ]
        old = self.positions or list(range(self.num_stages))

        def pick(values):
            return [values[i] for i in keep]

        return BackboneStages(
            self.backbone, self.kind, pick(self.channels),
            pick(self.reductions), pick(self.indices), pick(self.names),
            pick(self.main), stage_modules, self.concat, pick(old))

    def pick(self, outs: Sequence[torch.Tensor]) -> Sequence[torch.Tensor]:
        """The described maps among the backbone's outputs ``outs``."""
        if self.positions is None:
            return outs
        return tuple(outs[i] for i in self.positions)

    def run_stage(self, k: int, carry: Carry) -> Tuple[Carry, torch.Tensor]:
        """Run stage ``k``: the carry for stage ``k + 1`` and map ``k``."""
        if self.stage_modules is None:
            raise RuntimeError(f'{self.kind} cannot be run stage by stage '
                               '(no describer knows its forward).')
        for path in self.stage_modules[k]:
            carry = self.backbone.get_submodule(path)(carry)
        out = carry
        if isinstance(carry, (tuple, list)):
            out = torch.cat(carry, 1) if self.concat else carry[0]
        return carry, out

    def forward_all(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """All maps, stage after stage (equals ``backbone(x)``)."""
        outs = []
        for k in range(self.num_stages):
            x, out = self.run_stage(k, x)
            outs.append(out)
        return tuple(outs)


class StageDescriber:
    """How one backbone family gives its maps; subclass and register.

    ``describe`` tells what the built backbone returns and may leave
    ``stage_modules`` as ``None`` (no stage runner). ``leaves_maps_to_family``
    is only needed by families whose configs can leave the choice of maps to
    the family; the backbone built from such a config must return every map
    it can give, and :func:`place_exits` puts the exits on some of them.
    """

    def describe(self, backbone: nn.Module, in_channels: int,
                 img_size: int) -> BackboneStages:
        raise NotImplementedError

    def leaves_maps_to_family(self, cfg: dict) -> bool:
        """Whether the backbone config ``cfg`` leaves the choice of maps to
        the family (then the built backbone gives every map)."""
        return False


_DESCRIBERS: Dict[type, StageDescriber] = {}


def register_describer(*classes: type):
    """Class decorator: describe backbones that run ``cls.forward``."""

    def wrap(describer_cls: Type[StageDescriber]) -> Type[StageDescriber]:
        for cls in classes:
            _DESCRIBERS[cls] = describer_cls()
        return describer_cls

    return wrap


def _forward_owner(cls: type) -> type:
    """The class whose ``forward`` instances of ``cls`` run."""
    return next((c for c in cls.__mro__ if 'forward' in vars(c)), cls)


def get_describer(backbone_cls: type) -> StageDescriber:
    """The registered describer of a backbone class (else the dry run)."""
    return _DESCRIBERS.get(_forward_owner(backbone_cls), _DryRun())


def image_channels(data_preprocessor) -> int:
    """Image channels a classifier's ``data_preprocessor`` config implies
    (one normalisation mean per channel; 3 when it does not say)."""
    if isinstance(data_preprocessor, dict):
        return len(data_preprocessor.get('mean', None) or [0] * 3)
    return 3


def describe_backbone(backbone: nn.Module,
                      in_channels: int = 3,
                      img_size: int = 64,
                      min_maps: int = 2) -> BackboneStages:
    """Describe the maps a built backbone returns, validated.

    Args:
        backbone (nn.Module): A built backbone.
        in_channels (int): Image channels of the dry run (backbones no
            describer knows). Defaults to 3.
        img_size (int): Side of the zero image of the dry run. Defaults to 64.
        min_maps (int): Fewest maps accepted (an OccamNet needs 2 exits, the
            plain ``DebiasImageClassifier`` 1). Defaults to 2.

    Returns:
        BackboneStages: The description (>= ``min_maps`` maps).

    Raises:
        ValueError: Fewer than ``min_maps`` maps, or maps that are not 4-D.
    """
    stages = get_describer(type(backbone)).describe(backbone, in_channels,
                                                    img_size)
    if stages.num_stages < min_maps:
        raise ValueError(
            f'{type(backbone).__name__} gives {stages.num_stages} stage '
            f'map(s) (channels {stages.channels}); {_HINT}')
    return stages


def _main_by_reduction(reductions: Sequence[int]) -> List[bool]:
    """The last map at each of the main-stage reductions."""
    last = {r: i for i, r in enumerate(reductions)}
    ends = {last[r] for r in MAIN_STAGE_REDUCTIONS if r in last}
    return [i in ends for i in range(len(reductions))]


def place_exits(stages: BackboneStages,
                cfg: Optional[dict]) -> BackboneStages:
    """The maps the exits sit on, among those the built backbone gives.

    A backbone config that chooses its maps (e.g. names ``out_indices``) gets
    an exit on every map: ``stages`` is returned as it is. One that leaves
    them to the family (timm ``features_only=True`` without ``out_indices``)
    gets one exit per main stage: the maps of ``stages`` (every map the family
    gives) that end a main stage. The weights are those of the backbone built
    with those maps named, which draws the same weights.

    Args:
        stages (BackboneStages): The description of the built backbone.
        cfg (dict, optional): Its config; ``None`` for a built backbone
            passed as a module (its maps are kept).

    Raises:
        ValueError: The backbone has fewer than 2 main stages, or its last
            map ends none (the backbone would compute past the last exit).
    """
    if not isinstance(cfg, dict) or not get_describer(
            type(stages.backbone)).leaves_maps_to_family(cfg):
        return stages
    chosen = stages.main_stage_ends()
    indices = [stages.indices[i] for i in chosen]
    if len(chosen) < 2 or chosen[-1] != stages.num_stages - 1:
        problem = (f'{len(chosen)} (< 2)' if len(chosen) < 2 else
                   f'{tuple(indices)}, which leave map '
                   f'{stages.indices[-1]} after the last exit')
        raise ValueError(
            f'{cfg.get("type")}({cfg.get("model_name", "")!r}) gives maps at '
            f'reductions {stages.reductions} (out_indices '
            f'{stages.indices}); the default exits (the last map at each of '
            f'the reductions {MAIN_STAGE_REDUCTIONS}) would be {problem}. '
            f'Set model.backbone.out_indices to >= 2 of {stages.indices}. '
            f'{_HINT}')
    from mmengine.logging import print_log
    print_log(f'OccamNet default exits: one per main stage, out_indices='
              f'{tuple(indices)} of {tuple(stages.indices)} (reductions '
              f'{[stages.reductions[i] for i in chosen]}); '
              'set model.backbone.out_indices to choose others.',
              logger='current')
    return stages.select(chosen) if len(chosen) < stages.num_stages \
        else stages


# ------------------------------------------------------------------ families
def _strides_product(modules: Sequence[nn.Module]) -> int:
    """Reduction of a chain of modules (their convs and pools)."""
    out = 1
    for m in modules:
        for sub in m.modules():
            if isinstance(sub, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
                s = sub.stride
                out *= s[0] if isinstance(s, tuple) else s
    return out


def _split_in_order(paths: Sequence[str],
                    is_output: Sequence[bool]) -> List[List[str]]:
    """Cut an ordered module list after every module whose output is taken."""
    stages, current = [], []
    for p, taken in zip(paths, is_output):
        current.append(p)
        if taken:
            stages.append(current)
            current = []
    return stages


class _ResNetFamily(StageDescriber):
    """mmpretrain ``ResNet.forward``: stem (``stem`` when ``deep_stem`` else
    ``conv1-norm1-relu``), ``maxpool``, then ``res_layers``; map ``i`` where
    ``i in out_indices``. Every map ends a main stage."""
    stem_maxpool = True

    def describe(self, bb, in_channels, img_size):
        if getattr(bb, 'deep_stem', False):
            stem = ['stem']
        else:
            stem = ['conv1', bb.norm1_name, 'relu']
        if self.stem_maxpool:
            stem.append('maxpool')
        # the same membership test as ResNet.forward, so odd out_indices
        # behave exactly as in the backbone (negative values never match)
        taken = [i in bb.out_indices for i in range(len(bb.res_layers))]
        reduction = _strides_product([bb.get_submodule(p) for p in stem])
        channels, reductions, indices = [], [], []
        for i, name in enumerate(bb.res_layers):
            reduction *= bb.strides[i]
            if taken[i]:
                channels.append(getattr(bb, name)[-1].out_channels)
                reductions.append(reduction)
                indices.append(i)
        names = [bb.res_layers[i] for i in indices]
        return BackboneStages(
            bb, type(bb).__name__, channels, reductions, indices, names,
            main=[True] * len(indices),
            stage_modules=_split_in_order(stem + list(bb.res_layers),
                                          [False] * len(stem) + taken))


class _ResNetCIFARFamily(_ResNetFamily):
    """mmpretrain ``ResNet_CIFAR.forward``: as ResNet, without maxpool."""
    stem_maxpool = False


class _TimmFamily(StageDescriber):
    """mmpretrain ``TIMMBackbone`` with ``features_only=True``: channels,
    reductions and modules from timm's ``feature_info``; main stages by
    reduction. Split into stages: ``FeatureListNet``/``FeatureDictNet``
    (module order and ``return_layers``), ``EfficientNetFeatures``/
    ``MobileNetV3Features`` without feature hooks (stem, ``blocks``,
    ``_stage_out_idx``); others (``FeatureHookNet``, ...) are not split."""

    def describe(self, bb, in_channels, img_size):
        net = bb.timm_model
        info = getattr(net, 'feature_info', None)
        # ``features_only`` models carry a FeatureInfo restricted to
        # out_indices; a classification model's feature_info is a plain list
        if info is None or not hasattr(info, 'channels'):
            raise ValueError(
                'TIMMBackbone without `features_only=True` gives one pooled '
                f'map or tokens, not stage maps; {_HINT}')
        reductions = [int(r) for r in info.reduction()]
        paths = _timm_stage_paths(net)
        return BackboneStages(
            bb, f'TIMMBackbone({type(net).__name__})',
            channels=[int(c) for c in info.channels()],
            reductions=reductions,
            indices=[int(i) for i in info.out_indices],
            names=list(info.module_name()),
            main=_main_by_reduction(reductions),
            stage_modules=(None if paths is None else
                           [['timm_model.' + p for p in s] for s in paths]),
            concat=bool(getattr(net, 'concat', False)))

    def leaves_maps_to_family(self, cfg):
        # features_only without out_indices: timm's default, every map
        return bool(cfg.get('features_only')) and cfg.get(
            'out_indices') is None


def _timm_stage_paths(net: nn.Module) -> Optional[List[List[str]]]:
    from timm.models._features import FeatureDictNet
    if isinstance(net, FeatureDictNet) and (
            type(net)._collect is FeatureDictNet._collect):
        names = list(net.keys())
        return _split_in_order(names, [n in net.return_layers for n in names])

    from timm.models.efficientnet import EfficientNetFeatures
    from timm.models.mobilenetv3 import MobileNetV3Features
    prefixes = {EfficientNetFeatures.forward: ['conv_stem', 'bn1'],
                MobileNetV3Features.forward: ['conv_stem', 'bn1', 'act1']}
    prefix = prefixes.get(type(net).forward)
    if prefix is None or net.feature_hooks is not None:
        return None
    blocks = [f'blocks.{i}' for i in range(len(net.blocks))]
    # _stage_out_idx: 0 = stem output, i + 1 = output of blocks[i]
    taken = [i in net._stage_out_idx for i in range(len(blocks) + 1)]
    # the stem's last module carries output 0
    return _split_in_order(prefix + blocks,
                           [False] * (len(prefix) - 1) + taken)


class _DryRun(StageDescriber):
    """Any other backbone: one forward of a zero image (eval mode, no grad)
    gives channels and reductions; no stage runner."""

    def describe(self, bb, in_channels, img_size):
        was_training = bb.training
        bb.eval()
        try:
            param = next(bb.parameters(), None)
            device = param.device if param is not None else 'cpu'
            x = torch.zeros(1, in_channels, img_size, img_size,
                            device=device)
            with torch.no_grad():
                outs = bb(x)
        finally:
            bb.train(was_training)
        if isinstance(outs, torch.Tensor):
            outs = (outs, )
        if not isinstance(outs, (tuple, list)) or not all(
                isinstance(o, torch.Tensor) for o in outs):
            raise ValueError(f'{type(bb).__name__} returned '
                             f'{type(outs).__name__}, not tensors; {_HINT}')
        bad = [tuple(o.shape) for o in outs if o.dim() != 4]
        if bad:
            raise ValueError(f'{type(bb).__name__} returned maps of shape '
                             f'{bad}, not 4-D; {_HINT}')
        n = len(outs)
        return BackboneStages(
            bb, type(bb).__name__,
            channels=[int(o.shape[1]) for o in outs],
            # exact for padded convs; rounded otherwise
            reductions=[max(1, round(img_size / o.shape[2])) for o in outs],
            indices=list(range(n)), names=[f'output {i}' for i in range(n)],
            main=[True] * n)


def _register_shipped() -> None:
    from mmpretrain.models.backbones import (ResNet, ResNet_CIFAR,
                                             TIMMBackbone)
    register_describer(ResNet)(_ResNetFamily)
    register_describer(ResNet_CIFAR)(_ResNetCIFARFamily)
    register_describer(TIMMBackbone)(_TimmFamily)


_register_shipped()

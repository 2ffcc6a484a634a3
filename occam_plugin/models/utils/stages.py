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
rule): ``describe`` says what the built backbone gives,
``leaves_maps_to_family`` whether its config left the choice of exits to the
default placement, ``occam_cfg`` / ``set_out_indices`` how the family is made
to give the maps the exits need. Shipped: ``TIMMBackbone`` (here) and the
mmpretrain CNN families (``stage_describers.py``: ResNet and every subclass
that runs ``ResNet.forward``, ResNet_CIFAR, RegNet, MobileNetV2/V3,
ShuffleNetV1/V2, EfficientNet(V2), ConvNeXt, DenseNet, VGG); any other
backbone is read off one dry run (channels, reductions; no stage runner, so
dynamic inference computes everything and per-exit FLOPs are unavailable).

Default exit placement (:func:`place_exits`): a config that leaves the maps
to the family (timm ``features_only=True`` without ``out_indices``; an
mmpretrain CNN without ``out_indices``) gets one exit per main stage, as the
paper puts one exit per ResNet stage: the last map at each of the reductions
4, 8, 16 and 32 that the backbone has. The exits are chosen from the
description of the backbone as built (every map the family gives), not from
a second build. :func:`backbone_with_exits` is the whole path a classifier
takes: build (:func:`build_backbone`), every map, describe, place.
"""
import inspect
import re
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Sequence, Tuple, Type, Union

import torch
from torch import nn

__all__ = [
    'take_samples', 'BackboneStages', 'StageDescriber', 'register_describer',
    'get_describer', 'image_channels', 'build_backbone', 'backbone_with_exits',
    'describe_backbone', 'place_exits', 'split_in_order', 'probe_maps',
    'check_maps', 'map_reductions'
]

Carry = Union[torch.Tensor, Tuple[torch.Tensor, ...], List[torch.Tensor]]

#: reductions whose last map ends a main stage (the 4 stages of a ResNet)
MAIN_STAGE_REDUCTIONS = (4, 8, 16, 32)

_HINT = ('OccamNets need >= 2 four-dimensional stage maps (N, C, H, W) from '
         'the backbone. For mmpretrain CNNs leave `out_indices` unset (one '
         'exit per main stage) or name >= 2 stages, e.g. ResNet '
         '`out_indices=(0, 1, 2, 3)`; for TIMMBackbone set '
         '`features_only=True` (and optionally '
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
        taps (list[str | None], optional): Per stage, a module that gives the
            map from the stage's carry while the carry goes on unchanged
            (ConvNeXt's ``norm{i}``); ``None``: the carry is the map.
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
    taps: Optional[List[Optional[str]]] = None

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
            pick(self.main), stage_modules, self.concat, pick(old),
            None if self.taps is None else pick(self.taps))

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
        if self.taps is not None and self.taps[k] is not None:
            out = self.backbone.get_submodule(self.taps[k])(carry)
        elif isinstance(carry, (tuple, list)):
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
        the family (then the built backbone gives every map, after
        :meth:`set_out_indices` ``(backbone, None)``)."""
        return False

    def occam_cfg(self, cfg: dict) -> dict:
        """The config an OccamNet builds for the user's backbone config
        ``cfg`` (a copy): keys whose family default gives no stage maps
        (e.g. ConvNeXt's ``gap_before_final_norm``). Defaults to ``cfg``."""
        return cfg

    def set_out_indices(self, backbone: nn.Module,
                        indices: Optional[Sequence[int]]) -> bool:
        """Make the built ``backbone`` return the maps ``indices`` (its own
        indices; ``None``: every map it can give), as if built with them.
        Returns False when the family cannot (its maps are fixed at build
        time; the model then picks the exits' maps among those returned).
        """
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


def _registered_class(cfg: dict) -> Optional[type]:
    from mmpretrain.registry import MODELS
    kind = cfg.get('type')
    return kind if isinstance(kind, type) else MODELS.get(kind)


def _foreign_keys(cls: Optional[type], cfg: dict, err: TypeError) -> List[str]:
    """Keys of ``cfg`` that ``cls`` does not take (from its signature, or,
    for a ``**kwargs`` constructor, the one the error names)."""
    keys = [k for k in cfg if k not in ('type', '_scope_')]
    named = re.findall(r"unexpected keyword argument '(\w+)'", str(err))
    params = inspect.signature(cls.__init__).parameters if cls else {}
    if cls is None or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return [k for k in keys if k in named]
    return [k for k in keys if k not in params]


def build_backbone(cfg: dict) -> nn.Module:
    """Build the backbone config ``cfg`` of an OccamNet: the family's
    :meth:`StageDescriber.occam_cfg` applied first.

    Raises:
        TypeError: ``cfg`` holds keys its ``type`` does not take (what a
            ``type`` swap that kept the base config's keys gives): names
            them and ``model.backbone._delete_=True``.
    """
    from mmpretrain.registry import MODELS
    cls = _registered_class(cfg)
    if cls is not None:
        cfg = get_describer(cls).occam_cfg(dict(cfg))
    try:
        return MODELS.build(cfg)
    except TypeError as err:
        foreign = _foreign_keys(cls, cfg, err)
        if not foreign:
            raise
        name = getattr(cls, '__name__', cfg.get('type'))
        raise TypeError(
            f'model.backbone: {name} does not take {foreign}. If they are '
            "keys of the base config's backbone (an OccamNet config sets "
            "ResNet's), kept when only `type` was changed, the swap must "
            'drop them: put `model.backbone._delete_=True` before the new '
            'keys in --cfg-options, or `_delete_=True` in the config\'s '
            f'`model.backbone` dict, and give only the keys of {name} '
            f'(README, "Any backbone"). Error: {err}') from err


def backbone_with_exits(backbone: Union[dict, nn.Module],
                        in_channels: int = 3,
                        img_size: int = 64
                        ) -> Tuple[nn.Module, BackboneStages]:
    """The backbone of an OccamNet and the description of the maps its
    exits sit on: built (:func:`build_backbone`) when given as a config;
    made to give every map when its config leaves them to the family;
    described (:func:`describe_backbone`, >= 2 maps); the exits placed
    (:func:`place_exits`).

    Args:
        backbone (dict | nn.Module): Backbone config, or a built backbone
            (its maps are kept).
        in_channels (int): Image channels of a dry run. Defaults to 3.
        img_size (int): Image side of a dry run. Defaults to 64.
    """
    cfg = None
    if not isinstance(backbone, nn.Module):
        cfg, backbone = backbone, build_backbone(backbone)
    if isinstance(cfg, dict) and get_describer(
            type(backbone)).leaves_maps_to_family(cfg):
        get_describer(type(backbone)).set_out_indices(backbone, None)
    stages = describe_backbone(backbone, in_channels=in_channels,
                               img_size=img_size)
    return backbone, place_exits(stages, cfg)


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
            ``PlainClassifier`` 1). Defaults to 2.

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
    them to the family (timm ``features_only=True`` without ``out_indices``,
    an mmpretrain CNN without ``out_indices``) gets one exit per main stage:
    the maps of ``stages`` (every map the family gives) that end a main
    stage; the backbone is then made to return only those where the family
    can (:meth:`StageDescriber.set_out_indices`), else the model picks them.
    The weights are those of the backbone built with those maps named, which
    draws the same weights.

    Args:
        stages (BackboneStages): The description of the built backbone.
        cfg (dict, optional): Its config; ``None`` for a built backbone
            passed as a module (its maps are kept).

    Raises:
        ValueError: The backbone has fewer than 2 main stages, or its last
            map ends none (the backbone would compute past the last exit).
    """
    describer = get_describer(type(stages.backbone))
    if not isinstance(cfg, dict) or not describer.leaves_maps_to_family(cfg):
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
    if len(chosen) == stages.num_stages:
        return stages
    if describer.set_out_indices(stages.backbone, indices):
        # the backbone now returns exactly the chosen maps
        return replace(stages.select(chosen), positions=None)
    return stages.select(chosen)


# ------------------------------------------------------------------ families
def split_in_order(paths: Sequence[str],
                   is_output: Sequence[bool]) -> List[List[str]]:
    """Cut an ordered module list after every module whose output is taken."""
    stages, current = [], []
    for p, taken in zip(paths, is_output):
        current.append(p)
        if taken:
            stages.append(current)
            current = []
    return stages


class _TimmFamily(StageDescriber):
    """mmpretrain ``TIMMBackbone`` with ``features_only=True``: channels,
    reductions and modules from timm's ``feature_info``; main stages by
    reduction. Split into stages: ``FeatureListNet``/``FeatureDictNet``
    (module order and ``return_layers``), ``EfficientNetFeatures``/
    ``MobileNetV3Features`` without feature hooks (stem, ``blocks``, the
    ``stage`` of each ``feature_info`` entry); others (``FeatureHookNet``,
    ...) are not split."""

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
    from timm.models import FeatureDictNet, FeatureListNet
    # timm's own feature nets run their modules in order (a subclass may
    # collect its outputs otherwise)
    if type(net) in (FeatureDictNet, FeatureListNet):
        names = list(net.keys())
        return split_in_order(names, [n in net.return_layers for n in names])

    from timm.models.efficientnet import EfficientNetFeatures
    from timm.models.mobilenetv3 import MobileNetV3Features
    prefixes = {EfficientNetFeatures.forward: ['conv_stem', 'bn1'],
                MobileNetV3Features.forward: ['conv_stem', 'bn1', 'act1']}
    prefix = prefixes.get(type(net).forward)
    if prefix is None or net.feature_hooks is not None:
        return None
    blocks = [f'blocks.{i}' for i in range(len(net.blocks))]
    # a taken map's ``stage``: 0 = stem output, i + 1 = output of blocks[i]
    stages = set(net.feature_info.get('stage'))
    taken = [i in stages for i in range(len(blocks) + 1)]
    # the stem's last module carries output 0
    return split_in_order(prefix + blocks,
                          [False] * (len(prefix) - 1) + taken)


def probe_maps(bb: nn.Module, run, in_channels: int,
               img_size: int) -> Sequence[torch.Tensor]:
    """``run(x)`` on a zero image ``1 x in_channels x img_size x img_size``
    on ``bb``'s device, in eval mode without grad (``bb``'s mode restored,
    no BN statistics touched): the maps a backbone gives, shapes only."""
    was_training = bb.training
    bb.eval()
    try:
        param = next(bb.parameters(), None)
        device = param.device if param is not None else 'cpu'
        x = torch.zeros(1, in_channels, img_size, img_size, device=device)
        with torch.no_grad():
            return run(x)
    finally:
        bb.train(was_training)


def check_maps(kind: str, outs) -> Sequence[torch.Tensor]:
    """``outs`` as a tuple of 4-D maps, else a ValueError with the hint."""
    if isinstance(outs, torch.Tensor):
        outs = (outs, )
    if not isinstance(outs, (tuple, list)) or not all(
            isinstance(o, torch.Tensor) for o in outs):
        raise ValueError(f'{kind} returned {type(outs).__name__}, not '
                         f'tensors; {_HINT}')
    bad = [tuple(o.shape) for o in outs if o.dim() != 4]
    if bad:
        raise ValueError(f'{kind} returned maps of shape {bad}, not 4-D; '
                         f'{_HINT}')
    return tuple(outs)


def map_reductions(outs: Sequence[torch.Tensor], img_size: int) -> List[int]:
    """Input side / map side of maps of an ``img_size`` image (exact for
    padded convs; rounded otherwise)."""
    return [max(1, round(img_size / o.shape[2])) for o in outs]


class _DryRun(StageDescriber):
    """Any other backbone: one forward of a zero image (eval mode, no grad)
    gives channels and reductions; no stage runner."""

    def describe(self, bb, in_channels, img_size):
        outs = check_maps(type(bb).__name__,
                          probe_maps(bb, bb, in_channels, img_size))
        n = len(outs)
        return BackboneStages(
            bb, type(bb).__name__,
            channels=[int(o.shape[1]) for o in outs],
            reductions=map_reductions(outs, img_size),
            indices=list(range(n)), names=[f'output {i}' for i in range(n)],
            main=[True] * n)


def _register_shipped() -> None:
    from mmpretrain.models.backbones import TIMMBackbone
    register_describer(TIMMBackbone)(_TimmFamily)


_register_shipped()
# the mmpretrain CNN families (ResNet, MobileNet, ...) register themselves
from . import stage_describers  # noqa: E402,F401

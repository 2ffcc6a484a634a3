"""Stage describers of the mmpretrain CNN backbone families.

Every family here returns, from its ``forward``, the output of layer ``i``
of an ordered list of layers when ``i in self.out_indices`` (after a stem
that gives no map), so an OccamNet swaps to it by backbone keys alone:

- without ``out_indices`` in the config the family gives every map
  (:meth:`StageDescriber.set_out_indices` ``(bb, None)``) and the exits go
  one per main stage (:func:`~.stages.place_exits`: the last map at each of
  the reductions 4, 8, 16, 32), the backbone then returning only those;
- an explicit ``out_indices`` is kept, one exit per named map;
- the stages are the family's own modules, so dynamic inference really skips
  the later ones and the FLOPs are measured per exit.

``out_indices`` is read by these ``forward``s only (no parameter depends on
it), so setting it on the built backbone gives the backbone (and the
weights) of a build with those indices, except ConvNeXt (one ``norm{i}`` per
index): there :meth:`_ConvNeXtFamily.occam_cfg` asks for every stage at
build time.

Families: ``ResNet`` (and every subclass running ``ResNet.forward``: ResNetV1c/
V1d, ResNeXt, Res2Net, ResNeSt, SEResNet, SEResNeXt), ``ResNet_CIFAR``,
``RegNet``, ``MobileNetV2``, ``MobileNetV3``, ``ShuffleNetV1``,
``ShuffleNetV2``, ``EfficientNet``, ``EfficientNetV2``, ``ConvNeXt``,
``DenseNet``, ``VGG``. Not here: ``HRNet`` (its maps all come out of its last
stage at once, so there is nothing to stop early; it is described by the dry
run: exits train and predict, per-exit FLOPs are unavailable).
"""
from typing import List, Optional, Sequence, Tuple

from torch import nn

from .stages import (BackboneStages, StageDescriber, _main_by_reduction,
                     check_maps, map_reductions, probe_maps,
                     register_describer, split_in_order)

#: the describers register themselves (``register_describer``); none is
#: imported by name
__all__ = []


class _OutIndicesFamily(StageDescriber):
    """A family whose ``forward`` returns layer ``i`` when
    ``i in self.out_indices``; the config leaves the maps to the family
    when it names no ``out_indices``."""

    def num_maps(self, bb: nn.Module) -> int:
        raise NotImplementedError

    def leaves_maps_to_family(self, cfg):
        return 'out_indices' not in cfg

    def set_out_indices(self, bb, indices):
        bb.out_indices = tuple(
            range(self.num_maps(bb)) if indices is None else indices)
        return True


def _strides_product(modules: Sequence[nn.Module]) -> int:
    """Reduction of a chain of modules (their convs and pools)."""
    out = 1
    for m in modules:
        for sub in m.modules():
            if isinstance(sub, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
                s = sub.stride
                out *= s[0] if isinstance(s, tuple) else s
    return out


class _ResNetFamily(_OutIndicesFamily):
    """mmpretrain ``ResNet.forward``: stem (``stem`` when ``deep_stem`` else
    ``conv1-norm1-relu``), ``maxpool``, then ``res_layers``; map ``i`` where
    ``i in out_indices``. Every map ends a main stage. Channels and
    reductions are read off the modules (no dry run)."""
    stem_maxpool = True

    def num_maps(self, bb):
        return len(bb.res_layers)

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
            stage_modules=split_in_order(stem + list(bb.res_layers),
                                         [False] * len(stem) + taken))


class _ResNetCIFARFamily(_ResNetFamily):
    """mmpretrain ``ResNet_CIFAR.forward`` and ``RegNet.forward``: as
    ResNet, without maxpool."""
    stem_maxpool = False


class _LayerListFamily(_OutIndicesFamily):
    """``forward``: the ``prefix`` modules, then layer after layer (each a
    list of module paths), map ``i`` the output of layer ``i`` (or of its
    ``tap``) when ``i in out_indices``. Channels and reductions come from
    one run of those stages on a zero image; main stages by reduction."""

    def layers(self, bb) -> Tuple[List[str], List[List[str]]]:
        """``(prefix, layers)``: module paths in ``bb``."""
        raise NotImplementedError

    def taps(self, bb) -> Optional[List[str]]:
        """Per layer, the module giving its map (None: the layer output)."""
        return None

    def num_maps(self, bb):
        return len(self.layers(bb)[1])

    def describe(self, bb, in_channels, img_size):
        prefix, layers = self.layers(bb)
        taken = [i in bb.out_indices for i in range(len(layers))]
        ends = [False] * len(prefix)
        for layer, t in zip(layers, taken):
            ends += [False] * (len(layer) - 1) + [t]
        indices = [i for i, t in enumerate(taken) if t]
        taps = self.taps(bb)
        n, kind = len(indices), type(bb).__name__
        stages = BackboneStages(
            bb, kind, channels=[0] * n, reductions=[1] * n, indices=indices,
            names=[layers[i][-1] for i in indices], main=[True] * n,
            stage_modules=split_in_order(prefix + sum(layers, []), ends),
            taps=None if taps is None else [taps[i] for i in indices])
        outs = check_maps(kind, probe_maps(bb, stages.forward_all,
                                           in_channels, img_size))
        stages.channels = [int(o.shape[1]) for o in outs]
        stages.reductions = map_reductions(outs, img_size)
        stages.main = _main_by_reduction(stages.reductions)
        return stages


class _NamedLayersFamily(_LayerListFamily):
    """MobileNetV2 (after ``conv1``) and MobileNetV3: ``self.layers`` is the
    list of the layers' attribute names."""

    def layers(self, bb):
        prefix = ['conv1'] if hasattr(bb, 'conv1') else []
        return prefix, [[name] for name in bb.layers]


class _ModuleListFamily(_LayerListFamily):
    """ShuffleNetV1/V2 (after ``conv1``, ``maxpool``), EfficientNet and
    EfficientNetV2 (stem in ``layers[0]``): ``self.layers`` is a
    ModuleList."""

    def layers(self, bb):
        prefix = [p for p in ('conv1', 'maxpool') if hasattr(bb, p)]
        return prefix, [[f'layers.{i}'] for i in range(len(bb.layers))]


class _DenseNetFamily(_LayerListFamily):
    """DenseNet: ``stem``, then ``stages[i]``, ``transitions[i]``."""

    def layers(self, bb):
        return ['stem'], [[f'stages.{i}', f'transitions.{i}']
                          for i in range(bb.num_stages)]


class _VGGFamily(_LayerListFamily):
    """VGG: stage ``i`` runs ``features[j]`` for ``j`` in
    ``range_sub_modules[i]``; a classifier (``num_classes > 0``) gives no
    map."""

    def layers(self, bb):
        if bb.num_classes > 0:
            raise ValueError(
                f'VGG(num_classes={bb.num_classes}) ends in its classifier '
                '(a 2-D output); an OccamNet needs its stage maps: set '
                'model.backbone.num_classes=-1 (the default).')
        return [], [[f'{bb.module_name}.{j}' for j in range(*r)]
                    for r in bb.range_sub_modules]


class _ConvNeXtFamily(_LayerListFamily):
    """ConvNeXt: stage ``i`` runs ``downsample_layers[i]``, ``stages[i]``;
    its map is ``norm{i}`` of that (the carry goes on un-normed). Needs
    ``gap_before_final_norm=False`` (else every map is pooled to 2-D);
    ``norm{i}`` exists only for the indices named at build time, so
    :meth:`occam_cfg` names every stage when the config names none."""

    def layers(self, bb):
        if bb.gap_before_final_norm:
            raise ValueError(
                'ConvNeXt(gap_before_final_norm=True) pools every map to '
                '2-D; an OccamNet needs the stage maps: set '
                'model.backbone.gap_before_final_norm=False (the default '
                'OccamClassifier gives ConvNeXt when the key is unset).')
        return [], [[f'downsample_layers.{i}', f'stages.{i}']
                    for i in range(len(bb.stages))]

    def taps(self, bb):
        return [f'norm{i}' if i in bb.out_indices else None
                for i in range(len(bb.stages))]

    def occam_cfg(self, cfg):
        cfg.setdefault('gap_before_final_norm', False)
        # every stage of ConvNeXt's at most 4 (it reads -1 as stage 3)
        cfg.setdefault('out_indices', [0, 1, 2, 3])
        return cfg

    def set_out_indices(self, bb, indices):
        return False  # norm{i} are built for the indices of the config


def _register() -> None:
    from mmpretrain.models import backbones as b
    for classes, describer in (
            ((b.ResNet, ), _ResNetFamily),
            ((b.ResNet_CIFAR, b.RegNet), _ResNetCIFARFamily),
            ((b.MobileNetV2, b.MobileNetV3), _NamedLayersFamily),
            ((b.ShuffleNetV1, b.ShuffleNetV2, b.EfficientNet,
              b.EfficientNetV2), _ModuleListFamily),
            ((b.DenseNet, ), _DenseNetFamily),
            ((b.VGG, ), _VGGFamily),
            ((b.ConvNeXt, ), _ConvNeXtFamily)):
        register_describer(*classes)(describer)


_register()

"""Ask a backbone which stage maps it gives, so exits never need channel lists.

Three ways, cheapest first:

1. timm ``TIMMBackbone(features_only=True)``: ``timm_model.feature_info``
   already knows the channels of the chosen ``out_indices``.
2. mmpretrain ``ResNet`` family (incl. ``ResNet_CIFAR``, ``ResNetV1c/d``,
   ``ResNeXt``): the last block of every ``res_layers`` stage in
   ``out_indices``.
3. Anything else: a dry run with a tiny zero image (eval mode, no grad).
"""
from typing import List, Sequence

import torch
import torch.nn as nn

_HINT = ('OccamNets need >= 2 four-dimensional stage maps (N, C, H, W) from '
         'the backbone. For mmpretrain ResNet set `out_indices=(0, 1, 2, 3)`; '
         'for TIMMBackbone set `features_only=True` and `out_indices` (e.g. '
         '`(1, 2, 3, 4)`). Token outputs (ViT, 3-D) are not supported.')


def _check_count(channels: Sequence[int], backbone: nn.Module,
                 min_maps: int = 2) -> List[int]:
    if len(channels) < min_maps:
        raise ValueError(
            f'{type(backbone).__name__} gives {len(channels)} stage map(s) '
            f'(channels {list(channels)}); {_HINT}')
    return [int(c) for c in channels]


def _timm_channels(backbone: nn.Module) -> List[int]:
    info = getattr(backbone.timm_model, 'feature_info', None)
    # ``features_only`` models carry a FeatureInfo restricted to out_indices;
    # a classification model's feature_info is a plain list (not usable).
    if info is None or not hasattr(info, 'channels'):
        raise ValueError(
            'TIMMBackbone without `features_only=True` gives one pooled map or '
            f'tokens, not stage maps; {_HINT}')
    return info.channels()


def _mmpretrain_resnet_channels(backbone: nn.Module) -> List[int]:
    channels = []
    for i, name in enumerate(backbone.res_layers):
        if i in backbone.out_indices:
            channels.append(getattr(backbone, name)[-1].out_channels)
    return channels


def _dry_run_channels(backbone: nn.Module, in_channels: int,
                      img_size: int) -> List[int]:
    was_training = backbone.training
    backbone.eval()
    try:
        param = next(backbone.parameters(), None)
        device = param.device if param is not None else 'cpu'
        x = torch.zeros(1, in_channels, img_size, img_size, device=device)
        with torch.no_grad():
            outs = backbone(x)
    finally:
        backbone.train(was_training)
    if isinstance(outs, torch.Tensor):
        outs = (outs, )
    if not isinstance(outs, (tuple, list)) or not all(
            isinstance(o, torch.Tensor) for o in outs):
        raise ValueError(f'{type(backbone).__name__} returned '
                         f'{type(outs).__name__}, not tensors; {_HINT}')
    bad = [tuple(o.shape) for o in outs if o.dim() != 4]
    if bad:
        raise ValueError(f'{type(backbone).__name__} returned maps of shape '
                         f'{bad}, not 4-D; {_HINT}')
    return [o.shape[1] for o in outs]


def stage_channels(backbone: nn.Module,
                   in_channels: int = 3,
                   img_size: int = 64,
                   min_maps: int = 2) -> List[int]:
    """Channels of every stage map a backbone returns, validated.

    Args:
        backbone (nn.Module): A built backbone.
        in_channels (int): Image channels for the dry run. Defaults to 3.
        img_size (int): Side of the zero image used by the dry run.
            Defaults to 64.
        min_maps (int): Fewest maps accepted (an OccamNet needs 2 exits, a
            plain classifier 1). Defaults to 2.

    Returns:
        list[int]: One channel count per returned stage map.

    Raises:
        ValueError: Fewer than ``min_maps`` maps, or maps that are not 4-D.
    """
    if hasattr(backbone, 'timm_model'):
        channels = _timm_channels(backbone)
    elif (hasattr(backbone, 'res_layers') and hasattr(backbone, 'out_indices')
          and all(hasattr(getattr(backbone, n)[-1], 'out_channels')
                  for n in backbone.res_layers)):
        channels = _mmpretrain_resnet_channels(backbone)
    else:
        channels = _dry_run_channels(backbone, in_channels, img_size)
    return _check_count(channels, backbone, min_maps)

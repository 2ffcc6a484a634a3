from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule

from mmpretrain.registry import MODELS

__all__ = ['ExitNeck']


@MODELS.register_module()
class ExitNeck(BaseModule):
    """The exit blocks of an OccamNet, one per backbone stage.

    Exit ``k`` maps stage map ``f_k`` to ``h_k`` with
    conv3x3 (``C_k -> C_k * hidden_ratio``) -> BN -> ReLU ->
    conv3x3 (``-> C_k * out_ratio``) -> ReLU. The input of the exits in
    ``detach_exits`` is detached, so their losses never reach the trunk
    (exit 0 in the paper: it only learns from the earliest features).

    Args:
        in_channels (Sequence[int]): Channels of every stage map. Filled by
            ``OccamClassifier`` from the backbone; set it only when building
            the neck alone.
        hidden_ratio (float): Width of the hidden conv relative to the stage
            width. Defaults to 0.25.
        out_ratio (float): Width of the exit feature (the CAM input) relative
            to the stage width. Defaults to 1.0.
        detach_exits (Sequence[int]): Exits whose input is detached from the
            trunk. Defaults to ``(0, )``.
        norm_cfg (dict): Norm layer of the hidden conv.
            Defaults to ``dict(type='BN')``.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: Optional[Sequence[int]] = None,
                 hidden_ratio: float = 0.25,
                 out_ratio: float = 1.0,
                 detach_exits: Sequence[int] = (0, ),
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if in_channels is None or isinstance(in_channels, int) or len(
                in_channels) < 2:
            raise ValueError(
                f'ExitNeck: in_channels={in_channels!r}; expected a list of '
                '>= 2 stage widths (OccamClassifier fills it from the '
                'backbone, so leave it unset in configs).')
        if hidden_ratio <= 0 or out_ratio <= 0:
            raise ValueError(f'ExitNeck: hidden_ratio={hidden_ratio}, '
                             f'out_ratio={out_ratio}; expected both > 0.')
        self.in_channels = [int(c) for c in in_channels]
        self.num_exits = len(self.in_channels)
        bad = [k for k in detach_exits if not 0 <= k < self.num_exits]
        if bad:
            raise ValueError(f'ExitNeck: detach_exits={tuple(detach_exits)} '
                             f'names exits {bad} outside 0..'
                             f'{self.num_exits - 1}.')
        self.detach_exits = tuple(detach_exits)
        self.out_channels: List[int] = []
        self.exits = nn.ModuleList()
        for c in self.in_channels:
            hidden = max(1, int(round(c * hidden_ratio)))
            out = max(1, int(round(c * out_ratio)))
            self.exits.append(
                nn.Sequential(
                    ConvModule(c, hidden, 3, padding=1, norm_cfg=norm_cfg,
                               act_cfg=dict(type='ReLU')),
                    ConvModule(hidden, out, 3, padding=1, norm_cfg=None,
                               act_cfg=dict(type='ReLU'))))
            self.out_channels.append(out)

    def forward_exit(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """Run exit ``k`` alone on its stage map (used by dynamic
        inference)."""
        if k in self.detach_exits:
            x = x.detach()
        return self.exits[k](x)

    def forward(self, inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor]:
        if len(inputs) != self.num_exits:
            raise ValueError(f'ExitNeck: got {len(inputs)} stage maps, built '
                             f'for {self.num_exits} (in_channels='
                             f'{self.in_channels}).')
        return tuple(self.forward_exit(k, x) for k, x in enumerate(inputs))

import copy
import numbers
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from ...errors import MissingKeyError
from .method_plug_point import MethodPlugPoint

__all__ = ['OccamHead']


@MODELS.register_module()
class OccamHead(BaseModule, MethodPlugPoint):
    """The exits' predictors and gates of an OccamNet.

    For every exit feature ``h_k`` (from ``ExitNeck``):

    - suppressed-CAM predictor: ``CAM_k = conv1x1(h_k)`` (``num_classes``
      maps);
    - output predictor: ``logits_k = GAP(CAM_k)``;
    - exit decision gate: ``gate_k = sigmoid(Linear(C_k, 16) -> BN1d -> ReLU
      -> Linear(16, 1))`` on ``GAP(h_k.detach())``, so the gates never change
      the features.

    ``predict()`` takes the first exit ``k >= min_inference_exit`` with
    ``gate_k >= exit_threshold``, else the last.

    Args:
        num_classes (int): Number of classes.
        in_channels (Sequence[int]): Channels of every exit feature. Filled by
            ``OccamClassifier`` from the neck; leave unset in configs.
        min_inference_exit (int): Earliest exit used at inference (exit 0
            only amplifies the bias). Defaults to 1.
        exit_threshold (float): Gate value at which a sample exits, in
            [0, 1] (checked whenever it is set). For "always the last exit"
            set ``min_inference_exit`` to ``num_exits - 1`` instead: gates
            saturate to exactly 1.0, so no threshold in [0, 1] means
            "never". Defaults to 0.5.
        use_gates (bool): False: no gates, no gate loss, always the last exit
            (``exit_gates`` reads 0 for every exit but the last, 1).
            Defaults to True.
        gate_hidden (int): Hidden width of the gate MLP. Defaults to 16.
        cam_suppression (dict, optional): CAM suppression loss; None
            disables it. Defaults to ``CAMSuppressionLoss`` with weight 0.1.
        exit_ce (dict): The per-exit CE loss. Defaults to
            ``GateWeightedCELoss(gamma0=3, gamma=1, offset=0.1)``.
        gate_weighting (bool): False: plain, unweighted CE per exit.
            Defaults to True.
        gate_loss (dict): The exit-gate loss. Defaults to ``ExitGateLoss``
            with weight 1, thresholds ``(0.5, 0.6, 0.7, 0.8)``,
            ``min_epochs=1``.
        method (dict, optional): Bias-mitigation method reducing each exit's
            per-sample CE (see above). Defaults to None (mean).
        init_cfg (dict, optional): Initialisation config. Defaults to the
            reference's: CAM convs drawn from N(0, sqrt(2 / (k * k * C_out)))
            (Kaiming normal, fan_out), zero bias.

    Note:
        The losses, the method plug point (``sample_weight`` and ``method``,
        once per exit, :class:`MethodPlugPoint`) and the training state of
        ``gate_loss`` / ``exit_ce`` / ``method`` are described in
        docs/architecture.md.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: Optional[Sequence[int]] = None,
                 min_inference_exit: int = 1,
                 exit_threshold: float = 0.5,
                 use_gates: bool = True,
                 gate_hidden: int = 16,
                 cam_suppression: Optional[dict] = dict(
                     type='CAMSuppressionLoss', loss_weight=0.1),
                 exit_ce: dict = dict(
                     type='GateWeightedCELoss', gamma0=3.0, gamma=1.0,
                     offset=0.1),
                 gate_weighting: bool = True,
                 gate_loss: dict = dict(
                     type='ExitGateLoss', loss_weight=1.0,
                     thresholds=(0.5, 0.6, 0.7, 0.8), min_epochs=1),
                 method: Optional[dict] = None,
                 init_cfg: Optional[dict] = dict(
                     type='Kaiming', layer='Conv2d', mode='fan_out',
                     nonlinearity='relu')):
        super().__init__(init_cfg=init_cfg)
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(
                f'OccamHead: num_classes={num_classes!r}; '
                'expected a positive int (model.head.num_classes).')
        if in_channels is None or isinstance(in_channels, int) or len(
                in_channels) < 2:
            raise ValueError(
                f'OccamHead: in_channels={in_channels!r}; expected a list of '
                '>= 2 exit widths (OccamClassifier fills it from the neck).')
        self.num_classes = num_classes
        self.in_channels = [int(c) for c in in_channels]
        self.num_exits = len(self.in_channels)
        if not 0 <= min_inference_exit < self.num_exits:
            raise ValueError(
                f'OccamHead: min_inference_exit={min_inference_exit} with '
                f'{self.num_exits} exits; expected 0..{self.num_exits - 1}.')
        self.min_inference_exit = min_inference_exit
        self.exit_threshold = exit_threshold
        self.use_gates = use_gates
        self.gate_weighting = gate_weighting

        self.cam_convs = nn.ModuleList(
            nn.Conv2d(c, num_classes, 1) for c in self.in_channels)
        if use_gates:
            self.gates = nn.ModuleList(
                nn.Sequential(
                    nn.Linear(c, gate_hidden), nn.BatchNorm1d(gate_hidden),
                    nn.ReLU(inplace=True), nn.Linear(gate_hidden, 1))
                for c in self.in_channels)

        self.cam_suppression = (
            MODELS.build(cam_suppression)
            if cam_suppression is not None else None)
        self.exit_ce = MODELS.build(
            dict(copy.deepcopy(exit_ce), num_exits=self.num_exits))
        self.gate_loss = MODELS.build(
            dict(copy.deepcopy(gate_loss), num_exits=self.num_exits,
                 num_classes=num_classes)) if use_gates else None
        self.method = self.build_method(method)

    @property
    def exit_threshold(self) -> float:
        """Gate value at which a sample exits (see the class Args)."""
        return self._exit_threshold

    @exit_threshold.setter
    def exit_threshold(self, value: float) -> None:
        # refuse a value outside [0, 1] (and NaN, which compares False) and
        # name the supported way
        if isinstance(value, bool) or not isinstance(
                value, numbers.Real) or not 0 <= value <= 1:
            raise ValueError(
                f'OccamHead: model.head.exit_threshold={value!r}; expected a '
                'number in [0, 1] (a sample exits at the first exit whose '
                'gate is >= it). To always use the last exit, set '
                f'model.head.min_inference_exit={self.num_exits - 1} instead.')
        self._exit_threshold = value

    # ---- forward ------------------------------------------------------------
    def pre_logits(self, feats: Sequence[torch.Tensor]) -> Tuple[torch.Tensor]:
        """The exit features themselves."""
        return tuple(feats)

    def forward_exit(self, k: int,
                     h: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Exit ``k`` alone: ``cam`` ``[N, C, h, w]``, ``logits`` ``[N, C]``,
        ``gate`` ``[N]`` (used by dynamic inference)."""
        cam = self.cam_convs[k](h)
        logits = cam.mean(dim=(2, 3))
        if self.use_gates:
            # detached: the gate decides, it never shapes the features
            gate = torch.sigmoid(self.gates[k](h.detach().mean(
                dim=(2, 3)))).squeeze(1)
        else:
            # no gates: "continue" everywhere but the last exit
            gate = h.new_full((h.shape[0], ), float(k == self.num_exits - 1))
        return dict(cam=cam, logits=logits, gate=gate)

    def forward_exits(self, feats: Sequence[torch.Tensor]
                      ) -> Dict[str, List[torch.Tensor]]:
        """Every exit's CAM ``[N, C, h, w]``, logits ``[N, C]``, gate
        ``[N]``."""
        if len(feats) != self.num_exits:
            raise ValueError(f'OccamHead: got {len(feats)} exit features, '
                             f'built for {self.num_exits}.')
        outs = [self.forward_exit(k, h) for k, h in enumerate(feats)]
        return dict(cams=[o['cam'] for o in outs],
                    logits=[o['logits'] for o in outs],
                    gates=[o['gate'] for o in outs])

    def forward(self, feats: Sequence[torch.Tensor]) -> Tuple[torch.Tensor]:
        """Every exit's logits."""
        return tuple(self.forward_exits(feats)['logits'])

    def forward_for_loss(self, feats: Sequence[torch.Tensor]
                         ) -> Tuple[torch.Tensor, dict]:
        """The last exit's logits and ``dict(outs=...)``, one pass over the
        exits that :meth:`loss` reuses (MethodPlugPoint)."""
        outs = self.forward_exits(feats)
        return outs['logits'][-1], dict(outs=outs)

    # ---- training -----------------------------------------------------------
    def loss(self,
             feats: Sequence[torch.Tensor],
             data_samples: List[DataSample],
             sample_weight: Optional[torch.Tensor] = None,
             outs: Optional[dict] = None,
             **kwargs) -> Dict[str, torch.Tensor]:
        """Per-exit losses.

        Args:
            feats (Sequence[Tensor]): Exit features from the neck.
            data_samples (list[DataSample]): With ``gt_label`` and (for the
                gate loss) ``sample_idx``.
            sample_weight (Tensor, optional): ``[N]`` weights multiplied into
                every exit's per-sample CE (e.g. LfF). Defaults to None.
            outs (dict, optional): Result of :meth:`forward_exits` when the
                caller already computed it (avoids a second pass).

        Returns:
            dict[str, Tensor]: ``loss_cam_supp_e{k}``, ``loss_ce_e{k}``,
            ``loss_gate_e{k}`` and the non-loss logs ``acc_e{k}``.
        """
        if outs is None:
            outs = self.forward_exits(feats)
        device = outs['logits'][0].device
        gt = torch.cat([ds.gt_label.reshape(-1) for ds in data_samples
                        ]).long().to(device)
        sample_idx = None
        if self.use_gates and self.training:
            missing = [i for i, ds in enumerate(data_samples)
                       if 'sample_idx' not in ds]
            if missing:
                raise MissingKeyError(
                    'OccamHead.loss: data samples lack `sample_idx` (needed '
                    "by the gate memory); keep 'sample_idx' in the meta_keys "
                    'of PackInputs/PackBiasInputs.')
            sample_idx = torch.as_tensor(
                [int(ds.sample_idx) for ds in data_samples], device=device)
        elif self.use_gates:
            sample_idx = torch.zeros_like(gt)  # eval: memory is not used

        losses = dict()
        for k in range(self.num_exits):
            cam, logits, gate = (outs['cams'][k], outs['logits'][k],
                                 outs['gates'][k])
            if self.cam_suppression is not None:
                losses[f'loss_cam_supp_e{k}'] = self.cam_suppression(cam, gt)
            if self.gate_weighting:
                ce = self.exit_ce(
                    logits, gt, k,
                    prev_gate=outs['gates'][k - 1] if k > 0 else None,
                    reduction='none')
            else:
                ce = F.cross_entropy(logits, gt, reduction='none')
            losses[f'loss_ce_e{k}'] = self.reduce_per_sample(
                ce, logits, gt, data_samples, sample_weight, exit_idx=k,
                exit_logits=outs['logits'])
            if self.use_gates:
                losses[f'loss_gate_e{k}'] = self.gate_loss(
                    gate, logits.detach(), gt, sample_idx, k)
            with torch.no_grad():
                losses[f'acc_e{k}'] = (logits.argmax(1) == gt).float().mean()
        return losses

    # ---- inference ----------------------------------------------------------
    def select_exits(self, gates: torch.Tensor) -> torch.Tensor:
        """Exit rule on gates ``[N, E]`` -> chosen exit per sample ``[N]``."""
        n, e = gates.shape
        if not self.use_gates:
            return gates.new_full((n, ), e - 1, dtype=torch.long)
        can_exit = gates >= self.exit_threshold
        can_exit[:, :self.min_inference_exit] = False
        can_exit[:, -1] = True
        return can_exit.float().argmax(dim=1)  # first True

    def predict(self,
                feats: Sequence[torch.Tensor],
                data_samples: Optional[List[Optional[DataSample]]] = None,
                **kwargs) -> List[DataSample]:
        """Exit-aware prediction.

        Sets on every DataSample: ``pred_label``, ``pred_score`` (softmax of
        the chosen exit), ``exit_idx`` (int), ``exit_scores`` (``[E, C]``
        softmax of every exit) and ``exit_gates`` (``[E]``).
        """
        outs = self.forward_exits(feats)
        scores = torch.stack([F.softmax(x, dim=1) for x in outs['logits']],
                             dim=1).detach()  # N, E, C
        gates = torch.stack(outs['gates'], dim=1).detach()  # N, E
        return self.pack_predictions(scores, gates, self.select_exits(gates),
                                     data_samples)

    @staticmethod
    def pack_predictions(scores: torch.Tensor,
                         gates: torch.Tensor,
                         exit_idx: torch.Tensor,
                         data_samples: Optional[List[Optional[DataSample]]]
                         = None) -> List[DataSample]:
        """Write the chosen exit's prediction and every exit's scores/gates
        into DataSamples (shared by compute-all and dynamic inference).

        Args:
            scores (Tensor): ``[N, E, C]`` softmax of every exit.
            gates (Tensor): ``[N, E]``.
            exit_idx (Tensor): ``[N]`` exit taken by each sample.
            data_samples (list, optional): Samples to fill; new ones if None.
        """
        n = scores.shape[0]
        chosen = scores[torch.arange(n, device=scores.device), exit_idx]
        labels = chosen.argmax(dim=1)
        if data_samples is None:
            data_samples = [None] * n
        results = []
        for i, ds in enumerate(data_samples):
            ds = DataSample() if ds is None else ds
            ds.set_pred_score(chosen[i]).set_pred_label(labels[i])
            ds.set_field(int(exit_idx[i]), 'exit_idx', field_type='metainfo')
            ds.exit_scores = scores[i]
            ds.exit_gates = gates[i]
            results.append(ds)
        return results

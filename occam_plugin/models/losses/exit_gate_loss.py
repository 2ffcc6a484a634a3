from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import all_reduce, get_world_size

from mmpretrain.registry import MODELS
from ..utils.training_state import (TrainingState, drop_per_sample_state,
                                    resize_on_load, resize_per_sample)

__all__ = ['ExitGateLoss']


@MODELS.register_module()
class ExitGateLoss(nn.Module, TrainingState):
    """Exit-gate loss of OccamNets: BCE toward "exit k was right".

    Target of exit ``k``'s gate for a sample: 1 when exit ``k`` predicts its
    class correctly, else 0. The target is *refreshed* (recomputed from the
    current prediction and remembered per training sample) while the exit's
    mean per-class running train accuracy of this epoch, including the
    current batch, is ``<= thresholds[k]``, or while ``epoch < min_epochs``.
    Afterwards the remembered per-sample target is reused (a sample never
    seen before falls back to the current correctness and is remembered).
    This stops the gates from chasing an exit that has started to overfit.

    The BCE is balanced between "exit" (1) and "continue" (0): the two counts
    of the batch are divided by the larger one and each sample's BCE is
    multiplied by ``(1 / its normalised count) ** 0.5``; the loss is the mean
    over the batch times ``loss_weight``.

    State (all registered buffers, so checkpoints carry it): ``memory``
    ``[N_train, E]`` remembered targets, ``valid`` ``[N_train, E]`` whether a
    target was remembered, ``written`` ``[N_train, E]`` written by this rank
    this epoch (for :meth:`sync_state`), ``correct``/``total`` ``[E, C]``
    running per-class counts of this epoch, ``epoch``. The ``[N_train, ...]``
    buffers take a loaded checkpoint's number of rows (``TrainingState``). In
    distributed training the per-class counts are all-reduced inside the
    step and :meth:`sync_state` merges every rank's remembered targets.

    Args:
        num_classes (int): Number of classes.
        num_exits (int): Number of exits. ``OccamHead`` sets it.
            Defaults to 4.
        thresholds (Sequence[float]): Train-accuracy threshold per exit. A
            shorter list is padded with its last value (backbones with more
            stages). Defaults to ``(0.5, 0.6, 0.7, 0.8)``.
        min_epochs (int): Targets are always refreshed during the first
            ``min_epochs`` epochs. Defaults to 1.
        balance_power (float): Exponent of the exit/continue balance weight.
            Defaults to 0.5.
        num_samples (int): Initial training-set size of the memory; the
            ``TrainingStateHook`` sizes it to the training set. Defaults
            to 0.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 num_classes: int,
                 num_exits: int = 4,
                 thresholds: Sequence[float] = (0.5, 0.6, 0.7, 0.8),
                 min_epochs: int = 1,
                 balance_power: float = 0.5,
                 num_samples: int = 0,
                 loss_weight: float = 1.0):
        super().__init__()
        thresholds = list(thresholds)
        if not thresholds:
            raise ValueError('ExitGateLoss: thresholds is empty; expected one '
                             'train-accuracy threshold per exit.')
        if len(thresholds) < num_exits:
            thresholds += [thresholds[-1]] * (num_exits - len(thresholds))
        self.thresholds = thresholds[:num_exits]
        self.num_classes = num_classes
        self.num_exits = num_exits
        self.min_epochs = min_epochs
        self.balance_power = balance_power
        self.loss_weight = loss_weight
        self.register_buffer('memory', torch.zeros(num_samples, num_exits))
        self.register_buffer('valid',
                             torch.zeros(num_samples, num_exits, dtype=bool))
        self.register_buffer('written',
                             torch.zeros(num_samples, num_exits, dtype=bool))
        self.register_buffer('correct', torch.zeros(num_exits, num_classes))
        self.register_buffer('total', torch.zeros(num_exits, num_classes))
        self.register_buffer('epoch', torch.zeros((), dtype=torch.long))
        resize_on_load(self)

    # ---- TrainingState (driven by TrainingStateHook) -----------------------
    #: ``[N_train, E]`` rows each rank writes for its own samples
    RANK_LOCAL_BUFFERS = ('memory', 'valid', 'written')
    PER_SAMPLE_BUFFERS = RANK_LOCAL_BUFFERS

    def prepare_from_dataset(self, info: dict) -> None:
        """Size the per-sample memory to the training set."""
        self.resize_memory(int(info['num_samples']))

    def resize_memory(self, num_samples: int) -> None:
        """Size the per-sample memory to a training set: kept when it has
        that size, else forgotten (its rows would belong to other samples)."""
        if self.memory.shape[0] != num_samples:
            drop_per_sample_state(self)
            resize_per_sample(self, num_samples)

    def reset_epoch_state(self, epoch: int) -> None:
        """Restart the running accuracy at an epoch start."""
        self.epoch.fill_(int(epoch))
        self.correct.zero_()
        self.total.zero_()
        self.written.zero_()

    def sync_state(self) -> None:
        """Merge the targets every rank wrote this epoch (no-op alone)."""
        if get_world_size() < 2:
            return
        written = self.written.float()
        summed = self.memory * written
        all_reduce(summed)
        all_reduce(written)
        hit = written > 0
        # each sample is written by one rank per epoch, so summed/count is
        # that rank's 0/1 target (rounded against duplicated samples)
        self.memory[hit] = (summed[hit] / written[hit]).round()
        self.valid |= hit
        self.written.zero_()

    def mean_class_accuracy(self, exit_idx: int) -> float:
        """Mean over seen classes of the running train accuracy of an exit."""
        seen = self.total[exit_idx] > 0
        if not seen.any():
            return 0.0
        return (self.correct[exit_idx][seen] /
                self.total[exit_idx][seen]).mean().item()

    # ---- the loss -----------------------------------------------------------
    @torch.no_grad()
    def gate_targets(self, logits: torch.Tensor, gt_label: torch.Tensor,
                     sample_idx: torch.Tensor, exit_idx: int) -> torch.Tensor:
        """Targets of exit ``exit_idx``'s gate; updates the state in
        training."""
        correct = (logits.argmax(dim=1) == gt_label).float()
        if not self.training:
            return correct
        n_mem = self.memory.shape[0]
        if sample_idx.numel() and (sample_idx.min() < 0
                                   or sample_idx.max() >= n_mem):
            raise IndexError(
                f'ExitGateLoss: sample_idx {sample_idx.max().item()} outside '
                f'the gate memory of size {n_mem}. Train with SafeRunner (the '
                "default runner_type of occam-plugin's configs), whose "
                'TrainingStateHook sizes the memory to the training set, or '
                'call `head.gate_loss.resize_memory(len(train_set))`.')
        # running per-class accuracy of this epoch, incl. this batch
        onehot = F.one_hot(gt_label, self.num_classes).float()
        counts = torch.stack([correct @ onehot, onehot.sum(0)])
        all_reduce(counts)
        self.correct[exit_idx] += counts[0]
        self.total[exit_idx] += counts[1]
        refresh = (int(self.epoch) < self.min_epochs
                   or self.mean_class_accuracy(exit_idx) <=
                   self.thresholds[exit_idx])
        if refresh:
            target = correct
        else:
            known = self.valid[sample_idx, exit_idx]
            target = torch.where(known, self.memory[sample_idx, exit_idx],
                                 correct)
        self.memory[sample_idx, exit_idx] = target
        self.valid[sample_idx, exit_idx] = True
        self.written[sample_idx, exit_idx] = True
        return target

    def forward(self, gate: torch.Tensor, logits: torch.Tensor,
                gt_label: torch.Tensor, sample_idx: torch.Tensor,
                exit_idx: int) -> torch.Tensor:
        """
        Args:
            gate (Tensor): Gate probabilities of exit ``exit_idx``, ``[N]``.
            logits (Tensor): Logits of the same exit, ``[N, C]``.
            gt_label (Tensor): Class indices, ``[N]``.
            sample_idx (Tensor): Index of each sample in the training set.
            exit_idx (int): Which exit.

        Returns:
            Tensor: The scalar loss.
        """
        if not 0 <= exit_idx < self.num_exits:
            raise ValueError(f'ExitGateLoss: exit_idx={exit_idx} outside '
                             f'0..{self.num_exits - 1}.')
        gate = gate.reshape(-1)
        gt_label = gt_label.reshape(-1).long()
        sample_idx = sample_idx.reshape(-1).long().to(self.memory.device)
        target = self.gate_targets(logits, gt_label, sample_idx,
                                   exit_idx).to(gate.dtype)
        with torch.no_grad():
            n_exit, n_cont = target.sum(), (1 - target).sum()
            larger = torch.maximum(n_exit, n_cont).clamp_min(1)
            frac = torch.where(target > 0.5, n_exit, n_cont) / larger
            weight = (1 / frac.clamp_min(1e-12))**self.balance_power
        # torch's BCE, written out because F.binary_cross_entropy refuses
        # autocast (--amp) and raises on a NaN gate (the loss guard names
        # non-finite losses). Its value clamps the logs at -100, its gradient
        # (g - t) / max(g (1 - g), 1e-12) stays finite where a gate is
        # exactly 0 or 1 (a bf16 sigmoid is 1 from a logit of about 6);
        # the gradient of the clamped logs would be 0/0 = NaN there
        g, t = gate.float(), target.float()
        with torch.no_grad():
            value = -(t * g.log().clamp_min(-100) +
                      (1 - t) * (1 - g).log().clamp_min(-100))
            slope = (g - t) / (g * (1 - g)).clamp_min(1e-12)
        bce = value + slope * (g - g.detach())
        return self.loss_weight * (weight * bce).mean()

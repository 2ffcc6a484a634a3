"""The protocol of state that follows the training set and the epochs.

OccamNets' per-sample gate targets, the exit-CE running max, LfF's per-sample
loss EMAs and GroupDRO's / group upweighting's group statistics all live in
module buffers (so checkpoints carry them) and are driven by the same three
events. A module declares that by subclassing :class:`TrainingState`; the
``TrainingStateHook`` (a default hook of ``SafeRunner``) finds every such
module of the model and drives it, and the DDP ignore list is built from the
declared rank-local buffers. Nothing else needs wiring: a method or model
that declares the protocol works in any config.
"""
from typing import Iterator, List, Tuple

import torch.nn as nn


class TrainingState:
    """Mixin for modules whose state follows the training set or the epochs.

    Override what applies; the defaults do nothing.

    - :meth:`prepare_from_dataset` before training, with
      ``training_set_info(train_dataset)`` (``num_samples``, ``gt_label``,
      ``group_idx``, ``num_groups``, ``dataset_name``). It must keep state
      restored from a checkpoint (it runs after resuming).
    - :meth:`reset_epoch_state` at each epoch start.
    - :meth:`sync_state` at each epoch end: merge what each rank wrote
      (a no-op in one process).

    ``RANK_LOCAL_BUFFERS`` names the module's own buffers that each rank
    writes for its own samples between syncs: DDP must not overwrite them
    with rank 0's copy every step. ``PER_SAMPLE_BUFFERS`` names the buffers
    with one row per training sample: training-only state, which
    ``tools/publish_model.py`` empties (the module must accept a checkpoint
    with 0 rows, e.g. by resizing in ``_load_from_state_dict``).
    """

    RANK_LOCAL_BUFFERS: Tuple[str, ...] = ()
    PER_SAMPLE_BUFFERS: Tuple[str, ...] = ()

    def prepare_from_dataset(self, info: dict) -> None:
        """Size per-sample state / take group statistics (before training)."""

    def reset_epoch_state(self, epoch: int) -> None:
        """Restart per-epoch statistics (each epoch start)."""

    def sync_state(self) -> None:
        """Merge rank-local state across ranks (each epoch end)."""


def stateful_modules(model: nn.Module) -> Iterator[TrainingState]:
    """Every sub-module of ``model`` (itself included) that declares the
    protocol, parents before children."""
    return (m for m in model.modules() if isinstance(m, TrainingState))


def prepare_from_dataset(model: nn.Module, info: dict) -> List[str]:
    """Call :meth:`TrainingState.prepare_from_dataset` on every declaring
    module; returns their class names (for the log)."""
    names = []
    for m in stateful_modules(model):
        m.prepare_from_dataset(info)
        names.append(type(m).__name__)
    return names


def reset_epoch_state(model: nn.Module, epoch: int) -> None:
    """Epoch start on every declaring module of ``model``."""
    for m in stateful_modules(model):
        m.reset_epoch_state(epoch)


def sync_state(model: nn.Module) -> None:
    """Epoch end on every declaring module of ``model``."""
    for m in stateful_modules(model):
        m.sync_state()


def drop_per_sample_state(model: nn.Module) -> List[str]:
    """Empty every declared per-sample buffer (0 rows, same trailing shape
    and dtype); returns their full names. For publishing trained weights:
    inference never reads them, and they grow with the training set."""
    names = []
    for prefix, m in model.named_modules():
        if isinstance(m, TrainingState):
            for b in m.PER_SAMPLE_BUFFERS:
                setattr(m, b, getattr(m, b)[:0].clone())
                names.append(f'{prefix}.{b}' if prefix else b)
    return names


def rank_local_buffers(model: nn.Module) -> List[str]:
    """Full names of the declared rank-local buffers (the DDP ignore list)."""
    names = []
    for prefix, m in model.named_modules():
        if isinstance(m, TrainingState):
            names += [f'{prefix}.{b}' if prefix else b
                      for b in m.RANK_LOCAL_BUFFERS]
    return names

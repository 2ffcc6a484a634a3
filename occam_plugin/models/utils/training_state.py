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
from typing import Iterator, List, Mapping, Optional, Tuple

import torch.nn as nn

__all__ = [
    'TrainingStateMismatch', 'TrainingState', 'stateful_modules',
    'prepare_from_dataset', 'reset_epoch_state', 'sync_state',
    'resize_per_sample', 'resize_on_load', 'drop_per_sample_state',
    'rank_local_buffers'
]


class TrainingStateMismatch(ValueError):
    """State restored from a checkpoint that does not fit this training set:
    another size, other samples or other groups (``prepare_from_dataset``
    and ``TrainingStateHook`` raise it; the tools end the run with its
    message). The message names both sides and what to do."""


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
    with one row per training sample (row ``i``: sample ``sample_idx == i``):
    training-only state, which ``tools/publish_model.py`` empties to 0 rows.
    ``PER_SAMPLE_FILL`` gives the value of a row no sample has written yet
    (0 for a buffer it does not name). ``DATA_SHAPED_BUFFERS`` names the
    other buffers whose shape the data decides (number of groups, of exits
    reached), not the config.

    Resize on load (:func:`resize_on_load`, which such a module registers in
    its ``__init__``): before ``load_state_dict`` copies, the per-sample
    buffers take the checkpoint's number of rows (their trailing shape stays
    the model's, so a checkpoint of another width is still torch's size
    mismatch) and the data-shaped buffers take the checkpoint's shape. A
    checkpoint of another training-set size, or a published one with 0
    rows, therefore loads; ``TrainingStateHook`` then stops a run resumed on
    a training set of another size, naming both sizes (or re-initialises
    that state with ``on_new_train_size='reinit'``).

    Per-sample buffers change size only through :func:`resize_per_sample`.
    """

    RANK_LOCAL_BUFFERS: Tuple[str, ...] = ()
    PER_SAMPLE_BUFFERS: Tuple[str, ...] = ()
    PER_SAMPLE_FILL: Mapping[str, float] = {}
    DATA_SHAPED_BUFFERS: Tuple[str, ...] = ()

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


def resize_per_sample(module: TrainingState, num_rows: int) -> None:
    """Give every per-sample buffer of ``module`` exactly ``num_rows`` rows.

    The one way per-sample state changes size: rows that stay keep their
    values, new rows hold the buffer's ``PER_SAMPLE_FILL`` (a sample not
    written yet); dtype, device and trailing shape are kept. Whether a new
    size keeps or forgets the state is the caller's choice (forgetting is
    :func:`drop_per_sample_state` first).
    """
    for name in module.PER_SAMPLE_BUFFERS:
        buf = getattr(module, name)
        if buf.shape[0] == num_rows:
            continue
        new = buf.new_full((num_rows, ) + tuple(buf.shape[1:]),
                           module.PER_SAMPLE_FILL.get(name, 0))
        keep = min(num_rows, buf.shape[0])
        new[:keep] = buf[:keep]
        setattr(module, name, new)


def _take_checkpoint_shapes(module: TrainingState, state_dict: dict,
                            prefix: str, *args) -> None:
    # load-state-dict pre-hook: the rule of the TrainingState docstring;
    # load_state_dict copies the values right after
    rows: Optional[int] = next(
        (state_dict[prefix + name].shape[0]
         for name in module.PER_SAMPLE_BUFFERS if prefix + name in state_dict),
        None)
    if rows is not None:
        resize_per_sample(module, rows)
    for name in module.DATA_SHAPED_BUFFERS:
        src, cur = state_dict.get(prefix + name), getattr(module, name)
        if src is not None and src.shape != cur.shape:
            setattr(module, name, cur.new_zeros(src.shape))


def resize_on_load(module: nn.Module) -> None:
    """Apply the protocol's resize-on-load rule to ``module`` (call once in
    its ``__init__``), through torch's public load-state-dict pre-hook."""
    module.register_load_state_dict_pre_hook(_take_checkpoint_shapes)


def drop_per_sample_state(model: nn.Module) -> List[str]:
    """Empty every declared per-sample buffer (0 rows, same trailing shape
    and dtype); returns their full names. For publishing trained weights:
    inference never reads them, and they grow with the training set."""
    names = []
    for prefix, m in model.named_modules():
        if isinstance(m, TrainingState):
            resize_per_sample(m, 0)
            names += [f'{prefix}.{b}' if prefix else b
                      for b in m.PER_SAMPLE_BUFFERS]
    return names


def rank_local_buffers(model: nn.Module) -> List[str]:
    """Full names of the declared rank-local buffers (the DDP ignore list)."""
    names = []
    for prefix, m in model.named_modules():
        if isinstance(m, TrainingState):
            names += [f'{prefix}.{b}' if prefix else b
                      for b in m.RANK_LOCAL_BUFFERS]
    return names

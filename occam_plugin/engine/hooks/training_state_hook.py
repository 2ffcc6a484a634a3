import numpy as np
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmpretrain.registry import HOOKS
from ...models.utils.training_state import (TrainingStateMismatch,
                                            drop_per_sample_state,
                                            prepare_from_dataset,
                                            reset_epoch_state,
                                            stateful_modules, sync_state)
from ..runner.work_dir import CheckpointError


def training_set_info(dataset) -> dict:
    """What training-state modules need from the training set.

    Returns ``num_samples``, ``gt_label`` ``[S]``, ``group_idx`` ``[S]`` (-1
    where a sample has none; None when no sample has one), ``num_groups``
    (from ``metainfo``, or None) and ``dataset_name``. Reads the annotations
    with ``get_data_info`` only (no image is loaded).
    """
    n = len(dataset)
    labels = np.full(n, -1, dtype=np.int64)
    groups = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        info = dataset.get_data_info(i)
        if info.get('gt_label') is not None:
            labels[i] = int(np.asarray(info['gt_label']).reshape(-1)[0])
        if info.get('group_idx') is not None:
            groups[i] = int(info['group_idx'])
    metainfo = getattr(dataset, 'metainfo', {}) or {}
    return dict(num_samples=n, gt_label=labels,
                group_idx=groups if (groups >= 0).any() else None,
                num_groups=metainfo.get('num_groups'),
                dataset_name=type(dataset).__name__)


@HOOKS.register_module()
class TrainingStateHook(Hook):
    """Drives every module of the model that declares ``TrainingState``.

    The schedule only; the state lives in the modules' buffers (so
    checkpoints carry it), as mmengine's ``EMAHook`` keeps its state in the
    model. Before training each declaring module gets
    :func:`training_set_info` of the train dataset (``prepare_from_dataset``:
    Occam gate memory sized to the training set, GroupDRO's number of groups,
    group upweighting's counts, LfF's per-sample EMAs); at each epoch start
    ``reset_epoch_state(epoch)``; at each epoch end ``sync_state()`` (merges
    rank-local per-sample state; a no-op in one process).

    ``SafeRunner`` adds it to every run (``default_hooks.training_state``);
    no config needs to name it. A model without declaring modules costs
    nothing.

    A resumed run whose training set has another size than the one its
    checkpoint's per-sample state (``PER_SAMPLE_BUFFERS``: Occam gate
    memory, LfF's loss EMAs) was built for stops, naming both sizes: the
    rows would belong to other samples. ``on_new_train_size='reinit'``
    re-initialises that state instead, with a warning on the console.

    Args:
        on_new_train_size (str): ``'error'`` or ``'reinit'``. Defaults to
            ``'error'``.
    """

    priority = 'NORMAL'  # before CheckpointHook, so saved state is synced
    SIZE_MODES = ('error', 'reinit')
    on_new_train_size = 'error'

    def __init__(self, on_new_train_size: str = 'error'):
        if on_new_train_size not in self.SIZE_MODES:
            raise ValueError(
                f'TrainingStateHook: on_new_train_size='
                f'{on_new_train_size!r}; expected one of {self.SIZE_MODES}.')
        self.on_new_train_size = on_new_train_size

    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def before_train(self, runner) -> None:
        model = self._model(runner)
        if next(stateful_modules(model), None) is None:
            return
        info = training_set_info(runner.train_dataloader.dataset)
        if runner.iter > 0:  # resumed: the state is the checkpoint's
            self._check_train_size(runner, model, info['num_samples'])
        try:
            names = prepare_from_dataset(model, info)
        except TrainingStateMismatch as err:  # one line, naming the fix
            raise CheckpointError(str(err)) from err
        runner.logger.info(
            f'TrainingStateHook: prepared {names} from '
            f'{info["num_samples"]} training samples')

    def _check_train_size(self, runner, model, num_samples: int) -> None:
        sizes = {}
        stateful = set(stateful_modules(model))
        for prefix, m in model.named_modules():
            if m in stateful:
                for b in getattr(m, 'PER_SAMPLE_BUFFERS', ()):
                    rows = getattr(m, b).shape[0]
                    if rows != num_samples:
                        sizes[f'{prefix}.{b}' if prefix else b] = rows
        if not sizes:
            return
        found = ', '.join(f'{k} ({v} rows)' for k, v in sizes.items())
        if self.on_new_train_size == 'error':
            raise CheckpointError(
                f'resume: the checkpoint\'s per-sample training state was '
                f'built for a training set of '
                f'{" / ".join(map(str, sorted(set(sizes.values()))))} '
                f'samples ({found}), but this run\'s training set has '
                f'{num_samples} samples: its rows would belong to other '
                'samples. Resume on the training set the run started with, '
                'or re-initialise that state with --cfg-options '
                'default_hooks.training_state.on_new_train_size=reinit.')
        drop_per_sample_state(model)
        runner.logger.warning(
            f'resume: the training set has {num_samples} samples, the '
            f'checkpoint\'s per-sample state another size ({found}): that '
            'state is re-initialised (on_new_train_size=reinit).')

    def before_train_epoch(self, runner) -> None:
        reset_epoch_state(self._model(runner), runner.epoch)

    def after_train_epoch(self, runner) -> None:
        sync_state(self._model(runner))


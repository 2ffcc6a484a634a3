from mmengine.hooks import Hook

from mmpretrain.registry import HOOKS
from mmpretrain.utils import get_ori_model
from ...models.utils.training_state import (TrainingStateMismatch,
                                            drop_per_sample_state,
                                            prepare_from_dataset,
                                            reset_epoch_state,
                                            stateful_modules, sync_state)
from ...datasets.training_set_info import training_set_info

__all__ = ['TrainingStateHook']


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
    rows would belong to other samples. So does one whose training set has
    the size but not the samples of the checkpoint's (reordered, replaced or
    relabelled: the per-sample rows are keyed by ``sample_idx``, the
    position): each checkpoint's ``meta`` records the training set's
    ``sample_digest`` (:func:`training_set_info`), and a resume compares it
    (a checkpoint without it is checked by size only).
    ``on_new_train_size='reinit'`` re-initialises that state instead, in
    both cases, with a warning on the console.

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
        self._sample_digest = None  # this run's training set
        self._resumed_digest = None  # the checkpoint's

    #: key of ``checkpoint['meta']`` holding the training set's digest
    META_KEY = 'occam_train_sample_digest'

    @staticmethod
    def _model(runner):
        return get_ori_model(runner.model)

    def before_train(self, runner) -> None:
        model = self._model(runner)
        if next(stateful_modules(model), None) is None:
            return
        info = training_set_info(runner.train_dataloader.dataset)
        self._sample_digest = info['sample_digest']
        if runner.iter > 0:  # resumed: the state is the checkpoint's
            if not self._check_train_size(runner, model,
                                          info['num_samples']):
                self._check_same_samples(runner, model, info)
        names = prepare_from_dataset(model, info)
        runner.logger.info(
            f'TrainingStateHook: prepared {names} from '
            f'{info["num_samples"]} training samples')

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._resumed_digest = (checkpoint.get('meta') or {}).get(
            self.META_KEY)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._sample_digest is not None:
            checkpoint.setdefault('meta', {})[self.META_KEY] = \
                self._sample_digest

    def _check_same_samples(self, runner, model, info: dict) -> None:
        """Same size: the same samples in the same order as the
        checkpoint's training set, or its per-sample rows go to others."""
        resumed, now = self._resumed_digest, info['sample_digest']
        if resumed is None or resumed == now:
            return
        stateful = set(stateful_modules(model))
        names = [f'{prefix}.{b}' if prefix else b
                 for prefix, m in model.named_modules() if m in stateful
                 for b in getattr(m, 'PER_SAMPLE_BUFFERS', ())
                 if getattr(m, b).shape[0] > 0]
        if not names:
            return  # no per-sample state: the order does not matter
        if self.on_new_train_size == 'error':
            raise TrainingStateMismatch(
                f'resume: the checkpoint\'s per-sample training state '
                f'({", ".join(names)}) was built for a training set of '
                f'{info["num_samples"]} samples with digest {resumed[:12]}; '
                f'this run\'s training set has the same size but digest '
                f'{now[:12]} (sha256 of each sample\'s image path, label and '
                'group, in order): its samples were reordered, replaced or '
                'relabelled, and the rows (keyed by sample_idx) would belong '
                'to other samples. Resume on the training set the run '
                'started with, in its order, or re-initialise that state '
                'with --cfg-options '
                'default_hooks.training_state.on_new_train_size=reinit.')
        drop_per_sample_state(model)
        runner.logger.warning(
            'resume: the training set holds other samples, or the same in '
            f'another order, than the checkpoint\'s (digest {now[:12]}, '
            f'was {resumed[:12]}): its per-sample state ({", ".join(names)})'
            ' is re-initialised (on_new_train_size=reinit).')

    def _check_train_size(self, runner, model, num_samples: int) -> bool:
        """True when the size differed (refused, or the state dropped)."""
        sizes = {}
        stateful = set(stateful_modules(model))
        for prefix, m in model.named_modules():
            if m in stateful:
                for b in getattr(m, 'PER_SAMPLE_BUFFERS', ()):
                    rows = getattr(m, b).shape[0]
                    if rows != num_samples:
                        sizes[f'{prefix}.{b}' if prefix else b] = rows
        if not sizes:
            return False
        found = ', '.join(f'{k} ({v} rows)' for k, v in sizes.items())
        if self.on_new_train_size == 'error':
            raise TrainingStateMismatch(
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
        return True

    def before_train_epoch(self, runner) -> None:
        reset_epoch_state(self._model(runner), runner.epoch)

    def after_train_epoch(self, runner) -> None:
        sync_state(self._model(runner))

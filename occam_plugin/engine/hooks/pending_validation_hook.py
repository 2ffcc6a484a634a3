import bisect
import json
import os.path as osp
from typing import Dict, List, Optional

from mmengine.dist import broadcast_object_list, get_world_size, \
    is_main_process
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop

from mmpretrain.registry import HOOKS
from ...fileio import write_json

__all__ = ['validated_epochs', 'PendingValidationHook']

#: the work dir's record of the epochs whose validation finished
MARKER = '.occam_validated'


def _read_marker(work_dir: str) -> Dict[str, List[int]]:
    try:
        with open(osp.join(work_dir, MARKER), encoding='utf-8') as f:
            runs = json.load(f).get('runs', {})
        return {str(k): [int(e) for e in v] for k, v in runs.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def validated_epochs(work_dir: str, run_id: Optional[str]) -> List[int]:
    """The epochs of run ``run_id`` whose validation finished in
    ``work_dir`` (the marker file ``.occam_validated``; ``[]`` when there is
    none)."""
    return _read_marker(work_dir).get(str(run_id), [])


def _run_id(runner) -> Optional[str]:
    """The run's id (``WorkDirGuardHook.run_id``), or None."""
    for hook in runner.hooks:
        if type(hook).__name__ == 'WorkDirGuardHook':
            return hook.run_id
    return None


@HOOKS.register_module()
class PendingValidationHook(Hook):
    """Validate, on resume, the epoch whose validation was cut off.

    The checkpoint of epoch N is written before epoch N is validated, so a
    run killed during that validation resumes at epoch N + 1: epoch N would
    never be validated and the best checkpoint chosen without it. This hook
    records each finished validation of a training run in
    ``<work_dir>/.occam_validated``, by run id (``WorkDirGuardHook``), after
    CheckpointHook has saved the
    best checkpoint) and in the meta of the checkpoints saved after it
    (``meta.occam_validated_epoch``: a best checkpoint, an ``epoch_N.pth``
    saved again with a new best), and when a run resumes at an epoch whose
    validation was due but is recorded in neither, runs that validation
    first (with a warning on the console), before training continues. The
    validation uses the random state the checkpoint restored
    (``RandomStateHook``), so the resumed run continues as the
    uninterrupted one.

    ``SafeRunner`` adds it to every run (``default_hooks.
    pending_validation``). Epoch-based training loops only.
    """

    priority = 'LOWEST'  # after CheckpointHook and RandomStateHook
    META_KEY = 'occam_validated_epoch'

    def __init__(self):
        self._training = False
        self._validating = False
        self._loaded_validated: int = -1

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta') or {}
        self._loaded_validated = int(meta.get(self.META_KEY, -1))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # a save during after_val_epoch (the best checkpoint, epoch_N.pth
        # again) comes after the metrics: this epoch is validated
        if self._validating:
            checkpoint.setdefault('meta', {})[self.META_KEY] = runner.epoch

    def before_val_epoch(self, runner) -> None:
        self._validating = self._training

    @staticmethod
    def _due(loop: EpochBasedTrainLoop, epoch: int) -> bool:
        interval = loop.val_interval
        milestones = getattr(loop, 'dynamic_milestones', None)
        intervals = getattr(loop, 'dynamic_intervals', None)
        if milestones and intervals:
            step = bisect.bisect(milestones, epoch)
            interval = intervals[step - 1]
        return epoch >= loop.val_begin and (
            epoch % interval == 0 or epoch == loop.max_epochs)

    def before_train(self, runner) -> None:
        self._training = True
        loop = runner.train_loop
        epoch = runner.epoch
        if epoch == 0 or not isinstance(loop, EpochBasedTrainLoop) or \
                runner.val_loop is None or not self._due(loop, epoch):
            return
        pending = [epoch != self._loaded_validated
                   and epoch not in validated_epochs(runner.work_dir,
                                                     _run_id(runner))]
        if get_world_size() > 1:  # rank 0 decides for every rank
            broadcast_object_list(pending)
        if not pending[0]:
            return
        runner.logger.warning(
            f'epoch {epoch} was saved but no finished validation of it is '
            f'recorded (in {MARKER} or the checkpoint: the run stopped '
            'during it, or the checkpoint was copied without its work dir):'
            f' validating epoch {epoch} now, before training continues, so '
            'that the best checkpoint is chosen with it.')
        runner.val_loop.run()

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._validating = False
        if not self._training or not is_main_process():
            return
        runs = _read_marker(runner.work_dir)
        epochs = runs.setdefault(str(_run_id(runner)), [])
        if runner.epoch in epochs:
            return
        epochs.append(runner.epoch)
        epochs.sort()
        path = osp.join(runner.work_dir, MARKER)
        write_json(path, dict(runs=runs))

    def after_train(self, runner) -> None:
        self._training = False

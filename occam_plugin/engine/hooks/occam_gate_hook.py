from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop

from mmpretrain.registry import HOOKS


def _occam_head(runner):
    model = runner.model
    if is_model_wrapper(model):
        model = model.module
    head = getattr(model, 'head', None)
    if head is None or not hasattr(head, 'reset_epoch_state'):
        raise TypeError(
            'OccamGateHook: the model has no OccamHead-like head (with '
            'reset_epoch_state/resize_memory/sync_state); got '
            f'{type(head).__name__}. Use it with '
            "model=dict(type='OccamClassifier', head=dict(type='OccamHead'))."
        )
    return head


def _train_dataset(runner):
    # only when training: in test/val runs the train loop is a bare config
    loop = getattr(runner, '_train_loop', None)
    if not isinstance(loop, BaseLoop):
        return None
    return loop.dataloader.dataset


@HOOKS.register_module()
class OccamGateHook(Hook):
    """Epoch schedule of the OccamNet gate/exit-CE state.

    The state lives in the head (so checkpoints carry it); this hook only
    drives it: sizes the per-sample gate memory to the training set
    (``before_run``/``before_train``), restarts the running accuracy and
    running max at each epoch start (``head.reset_epoch_state(epoch)``) and
    merges the per-sample memory of all ranks at each epoch end
    (``head.sync_state()``; a no-op in one process).

    (The class count is checked for every model by ``TrainGuardHook``.)
    """

    priority = 'NORMAL'  # before CheckpointHook, so saved state is synced

    def _resize(self, runner):
        dataset = _train_dataset(runner)
        if dataset is not None:
            _occam_head(runner).resize_memory(len(dataset))

    def before_run(self, runner) -> None:
        self._resize(runner)

    def before_train(self, runner) -> None:
        self._resize(runner)  # no-op unless the size changed

    def before_train_epoch(self, runner) -> None:
        _occam_head(runner).reset_epoch_state(runner.epoch)

    def after_train_epoch(self, runner) -> None:
        _occam_head(runner).sync_state()

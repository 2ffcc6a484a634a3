from mmengine.hooks import Hook
from mmengine.logging import print_log
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
    (``before_run``/``before_train``), checks ``model.head.num_classes``
    against the dataset's classes, restarts the running accuracy and
    running max at each epoch start (``head.reset_epoch_state(epoch)``) and
    merges the per-sample memory of all ranks at each epoch end
    (``head.sync_state()``; a no-op in one process).

    Args:
        check_num_classes (bool): Compare ``model.head.num_classes`` with
            ``len(dataset.metainfo['classes'])``. Defaults to True.
    """

    priority = 'NORMAL'  # before CheckpointHook, so saved state is synced

    def __init__(self, check_num_classes: bool = True):
        self.check_num_classes = check_num_classes

    def _resize(self, runner):
        dataset = _train_dataset(runner)
        if dataset is not None:
            _occam_head(runner).resize_memory(len(dataset))

    def before_run(self, runner) -> None:
        self._resize(runner)

    def before_train(self, runner) -> None:
        self._resize(runner)  # no-op unless the size changed
        if not self.check_num_classes:
            return
        head = _occam_head(runner)
        dataset = runner.train_dataloader.dataset
        classes = getattr(dataset, 'metainfo', {}).get('classes', None)
        if classes is None:
            print_log(
                'OccamGateHook: the training set has no '
                "metainfo['classes']; model.head.num_classes not checked.",
                logger='current')
            return
        if head.num_classes != len(classes):
            raise ValueError(
                f'model.head.num_classes is {head.num_classes} but the '
                f'training set has {len(classes)} classes ({list(classes)}); '
                f'set `model.head.num_classes={len(classes)}`.')

    def before_train_epoch(self, runner) -> None:
        _occam_head(runner).reset_epoch_state(runner.epoch)

    def after_train_epoch(self, runner) -> None:
        _occam_head(runner).sync_state()

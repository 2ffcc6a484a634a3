from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmpretrain.registry import HOOKS
from ...models.utils.finite import check_finite_losses, non_finite_losses


def model_num_classes(model):
    """The class count a classifier predicts (``head.num_classes``), or None
    when its head does not say (e.g. a custom head)."""
    if is_model_wrapper(model):
        model = model.module
    head = getattr(model, 'head', None)
    num = getattr(head, 'num_classes', None)
    return num if isinstance(num, int) else None


@HOOKS.register_module()
class TrainGuardHook(Hook):
    """Stop a run whose model cannot learn what the data asks, for any model.

    Added to every run by ``SafeRunner`` (``default_hooks.guard``), so plain
    baselines get the same guards as OccamNets:

    - ``before_train``: ``model.head.num_classes`` must equal the number of
      classes of the training set (``metainfo['classes']``);
    - ``after_train_iter``: every loss of the step must be finite; a NaN or
      inf stops the run with the loss, epoch, iteration and learning rate,
      before any checkpoint of the diverged weights is written (checkpoints
      are saved at epoch ends, and this hook runs before CheckpointHook's
      iteration saves).

    Args:
        check_num_classes (bool): Compare the head's class count with the
            dataset's. Defaults to True.
        check_finite (bool): Stop on non-finite losses. Defaults to True.
    """

    priority = 'VERY_HIGH'

    def __init__(self, check_num_classes: bool = True,
                 check_finite: bool = True):
        self.check_num_classes = check_num_classes
        self.check_finite = check_finite

    def before_train(self, runner) -> None:
        if not self.check_num_classes:
            return
        num = model_num_classes(runner.model)
        dataset = runner.train_dataloader.dataset
        classes = getattr(dataset, 'metainfo', {}).get('classes', None)
        if num is None or classes is None:
            print_log(
                'TrainGuardHook: the model head has no num_classes or the '
                "training set no metainfo['classes']; class count not "
                'checked.', logger='current')
            return
        if num != len(classes):
            raise ValueError(
                f'model.head.num_classes is {num} but the training set '
                f'has {len(classes)} classes ({list(classes)}); set '
                f'`model.head.num_classes={len(classes)}`.')

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if not self.check_finite or not outputs:
            return
        bad = non_finite_losses(outputs)
        if not bad:
            return
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        # the lr is read only when the run stops, not every step
        check_finite_losses(
            bad,
            f'{type(model).__name__}, epoch {runner.epoch + 1}, iter '
            f'{runner.iter + 1}',
            'the run stops here (checkpoints written so far are intact). '
            f'Check the learning rate (now {runner.optim_wrapper.get_lr()}),'
            ' the input normalisation and the labels.')

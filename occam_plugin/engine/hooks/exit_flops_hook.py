from typing import Optional, Sequence

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmpretrain.registry import HOOKS

from ...evaluation.metrics.exit_metric import EXIT_FLOPS_INFO_KEY
from ...models.utils.flops import exit_flops


@HOOKS.register_module()
class ExitFlopsHook(Hook):
    """Measure an OccamNet's FLOPs per exit once and hand them to
    ``ExitMetric``.

    Before the first validation/test it measures the built model with
    mmengine's ``FlopAnalyzer`` (``occam_plugin.models.utils.flops.
    exit_flops``) and stores the cumulative FLOPs per exit in the runner's
    MessageHub runtime info under ``'occam_exit_flops'``, where
    ``ExitMetric`` reads them. The per-exit numbers are logged once.

    Args:
        input_shape (Sequence[int], optional): One image ``(C, H, W)``.
            Defaults to None: the shape of the first sample of the
            val/test dataset.
        include_unused_exits (bool): Count exits below
            ``min_inference_exit`` too. Defaults to False.
    """
    priority = 'LOW'

    def __init__(self,
                 input_shape: Optional[Sequence[int]] = None,
                 include_unused_exits: bool = False):
        if input_shape is not None and len(input_shape) != 3:
            raise ValueError(f'ExitFlopsHook: input_shape={input_shape!r}; '
                             'expected (C, H, W)')
        self.input_shape = input_shape
        self.include_unused_exits = include_unused_exits
        self._done = False

    def _publish(self, runner, dataloader) -> None:
        if self._done:
            return
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        shape = self.input_shape
        if shape is None:
            shape = tuple(dataloader.dataset[0]['inputs'].shape)
        result = exit_flops(model, shape, self.include_unused_exits)
        runner.message_hub.update_info(
            EXIT_FLOPS_INFO_KEY, dict(exit=result['exit'], full=result['full']))
        print_log(
            f'ExitFlopsHook: input {tuple(shape)}, GFLOPs to reach exit k '
            f'{[round(f / 1e9, 4) for f in result["exit"]]}, whole network '
            f'{result["full"] / 1e9:.4f}', logger='current')
        self._done = True

    def before_val(self, runner) -> None:
        self._publish(runner, runner.val_dataloader)

    def before_test(self, runner) -> None:
        self._publish(runner, runner.test_dataloader)

from typing import Optional, Sequence

from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class ExitFlopsHook(Hook):
    """Deprecated, does nothing: kept so configs that list it still run.

    ``OccamClassifier.predict`` now puts the per-exit FLOPs on every
    prediction (``exit_flops``, ``full_flops`` metainfo), where
    ``ExitMetric`` reads them; remove ``dict(type='ExitFlopsHook')`` from
    ``custom_hooks``. Building it logs a warning once per process.

    Args:
        input_shape (Sequence[int], optional): Ignored (FLOPs are measured
            for the shape of the inputs the model predicts on).
        include_unused_exits (bool): Ignored; give ``ExitMetric`` your own
            ``exit_flops`` to count exits below ``min_inference_exit``.
    """
    _warned = False

    def __init__(self,
                 input_shape: Optional[Sequence[int]] = None,
                 include_unused_exits: bool = False):
        if not ExitFlopsHook._warned:
            ExitFlopsHook._warned = True
            print_log(
                "ExitFlopsHook is deprecated and does nothing: the OccamNet's "
                'predictions carry their per-exit FLOPs, which ExitMetric '
                "reads. Remove dict(type='ExitFlopsHook') from custom_hooks.",
                logger='current', level=30)

import numpy as np
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


def training_set_info(dataset) -> dict:
    """What the bias-mitigation modules need from the training set.

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
class BiasMethodHook(Hook):
    """Prepares the bias-mitigation modules from the training set.

    Before training, every sub-module of the model that defines
    ``prepare_from_dataset(info)`` receives :func:`training_set_info` of the
    train dataset: ``GroupUpweighting`` counts the groups, ``GroupDRO`` takes
    the number of groups, ``LfFClassifier`` sizes its per-sample EMA memory.
    Modules keep that state in buffers, so a resumed run is unchanged (the
    modules do not overwrite state restored from a checkpoint).

    Add it with ``custom_hooks = [dict(type='BiasMethodHook')]``.
    """

    priority = 'NORMAL'

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        targets = [m for m in model.modules()
                   if callable(getattr(m, 'prepare_from_dataset', None))]
        if not targets:
            return
        info = training_set_info(runner.train_dataloader.dataset)
        for m in targets:
            m.prepare_from_dataset(info)
        runner.logger.info(
            f'BiasMethodHook: prepared {[type(m).__name__ for m in targets]} '
            f'from {info["num_samples"]} training samples')

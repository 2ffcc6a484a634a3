"""Class names of a config's dataset, read without building the dataset."""
import os.path as osp
from typing import List, Optional

__all__ = ['dataset_class_names']


def dataset_class_names(ds_cfg) -> Optional[List[str]]:
    """The class names a dataset config declares, without building it.

    Looks at ``metainfo.classes`` (or ``classes``) of the config, then at the
    ``METAINFO`` of its registered ``type``; a wrapper that names no classes
    itself (``ClassBalancedDataset``, ``UpsampledDataset``, ...) is looked
    through to its ``dataset``. No split is opened (only a ``classes`` file
    of names, when the config names one that exists).

    Args:
        ds_cfg (dict): A dataset config, e.g. ``cfg.test_dataloader.dataset``.

    Returns:
        list[str] | None: The names, or None when the config declares none
        (e.g. a folder dataset whose classes come from its sub-folders).
    """
    from mmpretrain.registry import DATASETS
    while ds_cfg is not None:
        classes = (ds_cfg.get('metainfo') or {}).get(
            'classes', ds_cfg.get('classes'))
        if classes is None:
            ds_type = ds_cfg.get('type')
            ds_cls = (DATASETS.get(ds_type) if isinstance(ds_type, str) else
                      ds_type if isinstance(ds_type, type) else None)
            classes = getattr(ds_cls, 'METAINFO', {}).get('classes')
        if isinstance(classes, str):  # mmengine's file of names, a line each
            from mmengine import list_from_file
            return list_from_file(classes) if osp.isfile(classes) else None
        if classes is not None:
            return [str(c) for c in classes]
        ds_cfg = ds_cfg.get('dataset')
    return None

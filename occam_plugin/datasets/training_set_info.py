"""What the training-state modules, the samplers and DFR read off a
training set: its labels, groups and sample identities, from the
annotations alone (no image is loaded)."""
import hashlib
import os.path as osp

import numpy as np

__all__ = ['training_set_info']


def training_set_info(dataset) -> dict:
    """What training-state modules need from the training set.

    Returns ``num_samples``, ``gt_label`` ``[S]``, ``group_idx`` ``[S]`` (-1
    where a sample has none; None when no sample has one), ``num_groups``
    (from ``metainfo``, or None), ``dataset_name`` and ``sample_digest``
    (sha256 of every sample's identity in order: its ``img_path`` relative
    to the dataset's ``data_root``, label and group; it tells a reordered,
    replaced or relabelled training set of the same size). Reads the
    annotations with ``get_data_info`` only (no image is loaded).
    """
    n = len(dataset)
    labels = np.full(n, -1, dtype=np.int64)
    groups = np.full(n, -1, dtype=np.int64)
    root = getattr(dataset, 'data_root', '') or ''
    digest = hashlib.sha256()
    for i in range(n):
        info = dataset.get_data_info(i)
        if info.get('gt_label') is not None:
            labels[i] = int(np.asarray(info['gt_label']).reshape(-1)[0])
        if info.get('group_idx') is not None:
            groups[i] = int(info['group_idx'])
        path = info.get('img_path') or ''
        if path and root:  # a dataset folder moved elsewhere is the same
            path = osp.relpath(path, root)
        digest.update(f'{path}\t{labels[i]}\t{groups[i]}\n'.encode())
    metainfo = getattr(dataset, 'metainfo', {}) or {}
    return dict(num_samples=n, gt_label=labels,
                group_idx=groups if (groups >= 0).any() else None,
                num_groups=metainfo.get('num_groups'),
                dataset_name=type(dataset).__name__,
                sample_digest=digest.hexdigest())

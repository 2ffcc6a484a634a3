"""JTT's error set (Liu et al., ICML 2021): the training samples that the
identification model misclassifies, as a JSON file.

Plain functions: :func:`error_set_record` builds the document from the
identification model's predictions, :func:`read_error_set` reads and checks
one (``UpsampledDataset`` reads it; ``tools/jtt.py`` writes it with
``occam_plugin.fileio.write_json``).

The file (``FORMAT`` 1)::

    {"format": "occam-jtt-error-set", "version": 1,
     "identification_epochs": T, "checkpoint": ".../epoch_T.pth",
     "config": "...", "dataset": {"type": ..., "num_samples": N,
     "data_root": ..., "ann_file": ..., "digest": ...},
     "num_errors": k, "error_rate": k / N,
     "indices": [...],               # sample indices, ascending
     "img_paths": [...],             # the same samples' images, relative to
                                     # data_root (where the dataset has them)
     "errors_per_group": {...}}      # group name -> errors (biased data)

``dataset.digest`` (:func:`annotation_digest`) is the identity of the
training set the identification run read: every sample's image path
(relative to ``data_root``), label and group, in order. A training set with
another digest is refused (another data_root, ann file or split), naming
both; the same annotations in a moved or copied folder are accepted.
"""
import hashlib
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

from ..fileio import read_json

__all__ = [
    'relative_img_path', 'annotation_digest', 'dataset_identity',
    'error_set_record', 'read_error_set'
]

FORMAT = 'occam-jtt-error-set'
VERSION = 1


def relative_img_path(info: dict, data_root: Optional[str]) -> Optional[str]:
    """A sample's ``img_path`` relative to ``data_root`` when inside it (so
    a moved data folder still matches), else as given; None without one."""
    path = info.get('img_path')
    if path is None:
        return None
    if data_root:
        rel = osp.relpath(osp.abspath(path), osp.abspath(data_root))
        if not rel.startswith('..'):
            return rel
    return str(path)


def _abs(path) -> Optional[str]:
    return osp.abspath(str(path)) if path else None


def _sample_key(info: dict, data_root: Optional[str]) -> str:
    group = info.get('group_idx')
    return json.dumps([relative_img_path(info, data_root),
                       _first(info['gt_label']) if info.get('gt_label')
                       is not None else None,
                       None if group is None else int(group)])


def annotation_digest(dataset) -> str:
    """sha256 of the samples of ``dataset`` in order (image path relative to
    its ``data_root``, label, group; from ``get_data_info``, no image
    loaded): the same data in another folder has the same digest.

    Args:
        dataset (BaseDataset): The training set.
    """
    data_root = getattr(dataset, 'data_root', None) or None
    h = hashlib.sha256()
    for i in range(len(dataset)):
        h.update(_sample_key(dataset.get_data_info(i), data_root).encode())
        h.update(b'\n')
    return h.hexdigest()


def dataset_identity(dataset) -> Dict:
    """What the error set records of the training set it was made on:
    ``type``, ``num_samples``, ``data_root``, ``ann_file`` (absolute, or
    None) and ``digest`` (:func:`annotation_digest`).

    Args:
        dataset (BaseDataset): The training set.
    """
    return dict(type=type(dataset).__name__, num_samples=len(dataset),
                data_root=_abs(getattr(dataset, 'data_root', None)),
                ann_file=_abs(getattr(dataset, 'ann_file', None)),
                digest=annotation_digest(dataset))


def error_set_record(dataset, sample_idx: Sequence[int],
                     pred_label: Sequence[int], **provenance) -> Dict:
    """The error-set document of ``dataset`` given the identification
    model's predictions.

    Args:
        dataset (BaseDataset): The training set (``get_data_info`` read;
            no image is loaded).
        sample_idx (Sequence[int]): Index of each prediction; every sample
            of ``dataset`` exactly once.
        pred_label (Sequence[int]): The predicted class of each.
        **provenance: Written as they are (``identification_epochs``,
            ``checkpoint``, ``config``).

    Returns:
        dict: The document (see the module docstring).
    """
    n = len(dataset)
    pred = {}
    for i, p in zip(sample_idx, pred_label):
        pred[int(i)] = int(p)
    missing = sorted(set(range(n)) - set(pred))
    if missing or len(pred) != n:
        raise ValueError(
            f'error set: predictions cover {len(pred)} of the {n} training '
            f'samples (e.g. sample {missing[0] if missing else "?"} has '
            'none); every sample needs exactly one prediction.')
    data_root = getattr(dataset, 'data_root', None) or None
    metainfo = getattr(dataset, 'metainfo', {}) or {}
    group_names = metainfo.get('group_names')
    indices: List[int] = []
    paths: List[Optional[str]] = []
    per_group: Dict[str, int] = {}
    for i in range(n):
        info = dataset.get_data_info(i)
        label = int(_first(info['gt_label']))
        if pred[i] == label:
            continue
        indices.append(i)
        paths.append(relative_img_path(info, data_root))
        group = info.get('group_idx')
        if group is not None:
            name = (str(group_names[int(group)]) if group_names is not None
                    else str(int(group)))
            per_group[name] = per_group.get(name, 0) + 1
    record = dict(format=FORMAT, version=VERSION, **provenance,
                  dataset=dataset_identity(dataset),
                  num_errors=len(indices),
                  error_rate=len(indices) / n if n else 0.0,
                  indices=indices)
    if indices and all(p is not None for p in paths):
        record['img_paths'] = paths
    if per_group:
        record['errors_per_group'] = per_group
    return record


def _first(value) -> int:
    import numpy as np
    return int(np.asarray(value).reshape(-1)[0])


def read_error_set(path: str, dataset=None) -> Dict:
    """Read an error-set file and check it against ``dataset``.

    Args:
        path (str): The JSON file ``tools/jtt.py`` wrote.
        dataset (BaseDataset, optional): The training set it must describe:
            the same number of samples and, where the file records them, the
            same image at every index.

    Raises:
        ValueError: The file is not an error set, or does not describe
            ``dataset`` (the message names the file, the key and both
            values).
    """
    if not osp.isfile(str(path)):
        raise FileNotFoundError(
            f'error set {path!r} does not exist (tools/jtt.py writes '
            '<work_dir>/error_set.json after the identification run).')
    record = read_json(path)
    if not isinstance(record, dict) or record.get('format') != FORMAT:
        raise ValueError(f'{path}: not a JTT error set (expected "format": '
                         f'"{FORMAT}")')
    indices = record.get('indices')
    if not isinstance(indices, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in indices):
        raise ValueError(f'{path}: "indices" must be a list of integers')
    if len(set(indices)) != len(indices):
        raise ValueError(f'{path}: "indices" repeats a sample')
    if dataset is None:
        return record
    n = len(dataset)
    recorded = (record.get('dataset') or {}).get('num_samples')
    if recorded is not None and recorded != n:
        raise ValueError(
            f'{path}: made on a training set of {recorded} samples, but the '
            f'dataset given has {n} ({type(dataset).__name__}); the indices '
            'would point at other samples. Identify the errors on this '
            'training set (tools/jtt.py).')
    bad = [i for i in indices if not 0 <= i < n]
    if bad:
        raise ValueError(f'{path}: index {bad[0]} outside the training set '
                         f'(0..{n - 1})')
    paths = record.get('img_paths')
    if paths is not None:
        data_root = getattr(dataset, 'data_root', None) or None
        for i, want in zip(indices, paths):
            got = relative_img_path(dataset.get_data_info(i), data_root)
            if got != want:
                raise ValueError(
                    f'{path}: sample {i} was {want!r} when the error set was '
                    f'made, but is {got!r} in this dataset: another training '
                    'set or another order. Identify the errors on this '
                    'training set (tools/jtt.py).')
    _check_identity(path, record.get('dataset') or {}, dataset)
    return record


def _check_identity(path: str, made_on: dict, dataset) -> None:
    """Refuse a training set whose annotations differ from the recorded
    ones (files of version 1 without a digest are not checked)."""
    want = made_on.get('digest')
    if want is None:
        return
    now = dataset_identity(dataset)
    if now['digest'] == want:
        return  # the same samples (perhaps in a moved folder)

    def which(d):
        return (f'data_root {d.get("data_root")!r}, ann_file '
                f'{d.get("ann_file")!r}, annotation digest '
                f'{str(d.get("digest"))[:12]}')
    raise ValueError(
        f'{path}: made on the training set of {which(made_on)}, but this '
        f'training set is {which(now)}: other samples, labels or groups, '
        'so the indices would name other samples. Identify the errors on '
        'this training set (tools/jtt.py into a new --work-dir).')

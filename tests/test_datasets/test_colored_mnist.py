"""Colored MNIST (LfF protocol)."""
import gzip
import os
import os.path as osp

import numpy as np
import pytest

import occam_plugin  # noqa: F401  (registers)
from mmpretrain.registry import DATASETS
from occam_plugin.datasets.colored_mnist import PALETTE
from occam_plugin.datasets.mnist_source import load_mnist


def build(**kwargs):
    return DATASETS.build(dict(type='ColoredMNIST', **kwargs))


def infos(ds):
    return [ds.get_data_info(i) for i in range(len(ds))]


def write_idx(path, arr, magic):
    header = magic.to_bytes(4, 'big') + b''.join(
        int(d).to_bytes(4, 'big') for d in arr.shape)
    with gzip.open(path, 'wb') as f:
        f.write(header + np.ascontiguousarray(arr, np.uint8).tobytes())


@pytest.mark.parametrize('ratio', [0.005, 0.01, 0.02, 0.05])
def test_conflict_fraction(ratio):
    ds = build(split='train', conflict_ratio=ratio, num_samples=2000)
    items = infos(ds)
    assert len(items) == 2000
    conflicting = [not d['bias_aligned'] for d in items]
    assert sum(conflicting) == round(ratio * 2000)  # 10, 20, 40, 100
    for d in items:
        assert d['bias_aligned'] == (d['bias_label'] == d['gt_label'])
        assert d['group_idx'] == 10 * d['gt_label'] + d['bias_label']
        assert d['bias_factors'] == {'color': d['bias_label']}
    # conflicting samples spread over the other colours
    other = {d['bias_label'] for d in items if not d['bias_aligned']}
    assert len(other) >= 5 if ratio >= 0.02 else len(other) >= 2


def test_colours_are_the_palette():
    ds = build(split='train',
               conflict_ratio=0.05,
               color_std=0.0,
               num_samples=300)
    for d in infos(ds)[:300:7]:
        rgb = d['img'][..., ::-1].astype(float)  # stored BGR
        assert d['img'].shape == (28, 28, 3)
        brightest = rgb.reshape(-1, 3)[rgb.sum(-1).argmax()]
        colour = PALETTE[d['bias_label']]
        # the digit's white core takes exactly the palette colour
        assert np.abs(brightest - colour).max() <= 1.0, (brightest, colour)
        assert rgb.sum(-1).min() == 0  # black background


def test_colour_noise():
    ds = build(split='train',
               conflict_ratio=0.0,
               color_std=0.05,
               num_samples=200)
    cores = {}
    for d in infos(ds):
        rgb = d['img'][..., ::-1].astype(float).reshape(-1, 3)
        core = rgb[rgb.sum(-1).argmax()]
        cores.setdefault(d['bias_label'], []).append(core)
    spread = np.mean([np.std(v, axis=0).mean() for v in cores.values()])
    # std 0.05 of a [0, 1] colour ~ 12.75 levels (a bit less where clipped)
    assert 5 < spread < 20, spread
    for c, v in cores.items():
        assert np.abs(np.mean(v, axis=0) - PALETTE[c]).max() < 15


def test_test_split_unbiased_and_balanced():
    ds = build(split='test')
    items = infos(ds)
    assert len(items) == 1000
    aligned = np.mean([d['bias_aligned'] for d in items])
    assert aligned == pytest.approx(0.1, abs=1e-9)
    table = np.zeros((10, 10), int)
    for d in items:
        table[d['gt_label'], d['bias_label']] += 1
    assert (table == 10).all()  # 100 per class dealt over 10 colours


def test_deterministic_and_seeded():
    a = infos(build(split='train', num_samples=100, conflict_ratio=0.2,
                    seed=5))
    b = infos(build(split='train', num_samples=100, conflict_ratio=0.2,
                    seed=5))
    c = infos(build(split='train', num_samples=100, conflict_ratio=0.2,
                    seed=6))
    assert all(np.array_equal(x['img'], y['img']) for x, y in zip(a, b))
    assert [x['bias_label'] for x in a] == [y['bias_label'] for y in b]
    assert [x['bias_label'] for x in a] != [y['bias_label'] for y in c]


def test_digits_from_source_and_disjoint():
    train = infos(build(split='train'))
    test = infos(build(split='test'))
    tr = {d['digit_source_idx'] for d in train}
    te = {d['digit_source_idx'] for d in test}
    assert len(tr) == 4000 and len(te) == 1000 and not tr & te
    src = load_mnist('train')
    row = {int(s): i for i, s in enumerate(src.source_idx)}
    d = train[0]
    digit = src.images[row[d['digit_source_idx']]]
    assert d['gt_label'] == src.labels[row[d['digit_source_idx']]]
    assert np.array_equal(d['img'].max(-1) > 0, digit > 0)


def test_pipeline_resize_and_grouping():
    ds = build(split='train',
               num_samples=50,
               image_size=32,
               group_by='class_x_aligned',
               conflict_ratio=0.1,
               pipeline=[dict(type='PackBiasInputs')])
    assert ds.metainfo['num_groups'] == 20
    assert ds.metainfo['classes'] == tuple('0123456789')
    for i in range(len(ds)):
        out = ds[i]
        s = out['data_samples']
        assert tuple(out['inputs'].shape) == (3, 32, 32)
        y = int(s.gt_label)
        assert s.group_idx == 2 * y + (0 if s.bias_aligned else 1)
        assert s.bias_factors_aligned == {'color': s.bias_aligned}


def test_local_mnist_root(tmp_path):
    raw = tmp_path / 'MNIST' / 'raw'
    os.makedirs(raw)
    for prefix, n in (('train', 12), ('t10k', 6)):
        imgs = np.full((n, 28, 28), 255, np.uint8)
        write_idx(str(raw / f'{prefix}-images-idx3-ubyte.gz'), imgs, 2051)
        write_idx(str(raw / f'{prefix}-labels-idx1-ubyte.gz'),
                  np.arange(n) % 10, 2049)
    ds = build(split='test', mnist_root=str(tmp_path), color_std=0.0)
    assert len(ds) == 6
    for d in infos(ds):  # all-white digits -> flat palette colour
        assert (d['img'][..., ::-1] == PALETTE[d['bias_label']]).all()


def test_redraws_give_fresh_colours_and_keep_the_share():
    # LfF's 60,000-image protocol from 4,000 digits: each digit drawn
    # num_draws times, the conflicting share exact over all copies
    one = build(split='train', conflict_ratio=0.01, num_samples=400)
    three = build(split='train', conflict_ratio=0.01, num_samples=400,
                  num_draws=3)
    a, b = infos(one), infos(three)
    assert len(b) == 3 * len(a) == 1200
    assert sum(not d['bias_aligned'] for d in b) == 12
    # copy k of digit i sits at k * n + i: same digit, same label
    for k in range(3):
        for i in (0, 57, 399):
            assert b[k * 400 + i]['digit_source_idx'] == \
                a[i]['digit_source_idx']
            assert b[k * 400 + i]['gt_label'] == a[i]['gt_label']
    # the copies' images differ only by their colour noise (fresh draws)
    assert not np.array_equal(b[0]['img'], b[400]['img'])
    assert np.array_equal(b[0]['img'] > 0, b[400]['img'] > 0)
    # the test split stays balanced per class over all copies
    t = infos(build(split='test', num_samples=200, num_draws=2))
    for c in range(10):
        colours = [d['bias_label'] for d in t if d['gt_label'] == c]
        counts = np.bincount(colours, minlength=10)
        assert counts.max() - counts.min() <= 1
    with pytest.raises(ValueError, match=r'num_draws must be a positive '
                       r'int .* got 0'):
        build(num_draws=0)


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError,
                       match=r'conflict_ratio must be a share in '
                       r'\[0, 1\] .* got 5'):
        build(conflict_ratio=5)
    with pytest.raises(ValueError,
                       match=r"split must be one of \('train', "
                       r"'test'\), got 'val'"):
        build(split='val')
    with pytest.raises(ValueError, match='color_std'):
        build(color_std=-1)
    with pytest.raises(ValueError, match='group_by'):
        build(group_by='colour')
    with pytest.raises(FileNotFoundError,
                       match=r'train-images-idx3-ubyte.*not found under'):
        build(mnist_root=str(tmp_path))
    assert osp.isdir(tmp_path)

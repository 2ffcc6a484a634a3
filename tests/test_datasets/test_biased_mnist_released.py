"""``BiasedMNIST`` on data in the released layout (erobic/occam-nets-v1),
written here by hand, not by our generator: reading every split, the
released alignment rule, groups, the pipeline, and clear errors for partial
downloads."""
import json
import os
import os.path as osp
import re
import shutil

import numpy as np
import pytest
from PIL import Image

import occam_plugin  # noqa: F401  (registers)
from mmpretrain.registry import DATASETS

FACTORS = ('digit_color', 'digit_scale', 'digit_position', 'texture',
           'texture_color', 'letter', 'letter_color')
# (digit, values of FACTORS): digit_position_ix repeats the scale index, as
# the reference's json does
TRAINVAL_095 = [
    (0, (0, 0, 0, 0, 0, 0, 0)),  # all aligned
    (1, (1, 1, 1, 1, 1, 1, 1)),
    (2, (7, 2, 2, 2, 2, 2, 2)),  # digit colour conflicting
    (3, (3, 5, 5, 3, 3, 3, 3)),  # scale (and position) conflicting
    (4, (4, 4, 4, 9, 9, 4, 4)),  # texture + its colour conflicting
    (5, (5, 5, 5, 5, 5, 0, 0)),  # letter + its colour conflicting
    (6, (6, 6, 6, 6, 6, 6, 6)),
    (7, (7, 7, 7, 7, 7, 7, 7)),
    (8, (8, 8, 8, 8, 2, 8, 8)),  # texture colour conflicting
    (9, (9, 9, 9, 9, 9, 9, 9)),
]
# same digits, the val set's bias (0.5): other values
TRAINVAL_05 = [(d, tuple((d + k) % 10 for k in range(7)))
               for d, _ in TRAINVAL_095]
TEST = [(3, (1, 2, 3, 4, 5, 6, 7)), (8, (8, 0, 0, 8, 1, 8, 2)),
        (0, (0, 0, 0, 0, 0, 0, 0)), (5, (9, 9, 9, 9, 9, 9, 9)),
        (1, (1, 1, 1, 2, 2, 1, 1))]
TRAIN_IXS = [5, 0, 7, 2, 9, 1, 3]  # shuffled, as released
VAL_IXS = [4, 8, 6]


def _record(i, digit, values):
    rec = dict(index=i, digit=digit)
    rec.update({f'{f}_ix': v for f, v in zip(FACTORS, values)})
    # the extra keys the reference writes: the reader ignores them
    scale = 1 + values[1] / 3
    side = int(32 * scale)
    rec.update(digit_color=[200, 200, 200], digit_scale=scale,
               digit_position=[0, 0, side, side], texture='-',
               texture_color=[0.0, 170.0, 0.0], letter='a',
               letter_color=[0, 255, 0])
    return rec


def _write_set(root, folder, subset, rows, size):
    os.makedirs(osp.join(root, folder, subset))
    recs = [_record(i, d, v) for i, (d, v) in enumerate(rows)]
    with open(osp.join(root, folder, f'{subset}.json'), 'w') as f:
        json.dump(recs, f, indent=4, sort_keys=True)
    for i, (d, _) in enumerate(rows):
        img = np.zeros((size, size, 3), np.uint8)
        img[..., 0] = 25 * d  # recognisable: red channel = 25 * digit
        Image.fromarray(img).save(osp.join(root, folder, subset, f'{i}.jpg'),
                                  quality=95)


def write_release(root):
    os.makedirs(root)
    for name, ixs in (('train_ixs.json', TRAIN_IXS),
                      ('val_ixs.json', VAL_IXS)):
        with open(osp.join(root, name), 'w') as f:
            json.dump(ixs, f)
    _write_set(root, 'full_0.95', 'trainval', TRAINVAL_095, 32)
    _write_set(root, 'full_0.5', 'trainval', TRAINVAL_05, 32)
    _write_set(root, 'full', 'test', TEST, 160)
    return root


@pytest.fixture(scope='module')
def release(tmp_path_factory):
    return write_release(str(tmp_path_factory.mktemp('rel') / 'biased_mnist'))


@pytest.fixture
def copy_of_release(release, tmp_path):
    dst = str(tmp_path / 'biased_mnist')
    shutil.copytree(release, dst)
    return dst


def build(root, **kw):
    cfg = dict(type='BiasedMNIST', data_root=root, p_bias=0.95,
               generate=None)
    cfg.update(kw)
    return DATASETS.build(cfg)


def rewrite_json(path, fn):
    with open(path) as f:
        obj = json.load(f)
    obj = fn(obj)
    with open(path, 'w') as f:
        json.dump(obj, f)


@pytest.mark.parametrize('split', ['train', 'val', 'test'])
def test_released_splits(release, split):
    rows, ixs, folder = dict(
        train=(TRAINVAL_095, TRAIN_IXS, osp.join('full_0.95', 'trainval')),
        val=(TRAINVAL_05, VAL_IXS, osp.join('full_0.5', 'trainval')),
        test=(TEST, list(range(len(TEST))), osp.join('full', 'test')))[split]
    ds = build(release, split=split)
    assert len(ds) == len(ixs)
    assert ds.metainfo['num_groups'] == 100
    assert ds.metainfo['bias_factors'] == FACTORS
    # the released position value is the scale index: 10 values
    assert ds.metainfo['bias_factor_values']['digit_position'] == \
        [f'scale{i}' for i in range(10)]
    for i, ix in enumerate(ixs):
        digit, values = rows[ix]
        info = ds.get_data_info(i)
        assert info['img_path'] == osp.join(release, folder, f'{ix}.jpg')
        assert info['gt_label'] == digit
        assert info['bias_factors'] == dict(zip(FACTORS, values))
        # released rule: aligned iff the value equals the digit
        assert info['bias_factors_aligned'] == {
            f: v == digit for f, v in zip(FACTORS, values)}
        assert info['bias_label'] == values[0]
        assert info['bias_aligned'] == (values[0] == digit)
        assert info['group_idx'] == 10 * digit + values[0]


def test_released_values_by_hand(release):
    train = build(release)
    # train position 6 is image 3: digit 3, scale/position 5, texture 3
    info = train.get_data_info(6)
    assert info['gt_label'] == 3 and info['group_idx'] == 33
    assert info['bias_factors_aligned'] == dict(
        digit_color=True, digit_scale=False, digit_position=False,
        texture=True, texture_color=True, letter=True, letter_color=True)
    # train position 3 is image 2: digit colour 7 -> group 27, conflicting
    info = train.get_data_info(3)
    assert (info['gt_label'], info['group_idx'], info['bias_aligned']) == \
        (2, 27, False)
    # test image 0: digit 3, colour 1
    info = build(release, split='test').get_data_info(0)
    assert (info['gt_label'], info['group_idx']) == (3, 31)
    assert [k for k, v in info['bias_factors_aligned'].items() if v] == \
        ['digit_position']  # value 3


def test_released_groups(release):
    ds = build(release, group_by='class_x_aligned')
    assert ds.metainfo['num_groups'] == 20
    assert [ds.get_data_info(i)['group_idx'] for i in range(len(ds))] == \
        [10, 0, 14, 5, 18, 2, 6]  # only image 2 (train position 3) conflicts
    ds = build(release, split='test', primary_factor='letter_color',
               group_by='class_x_aligned')
    # letter colours 7, 2, 0, 9, 1 for digits 3, 8, 0, 5, 1
    assert [ds.get_data_info(i)['group_idx'] for i in range(5)] == \
        [7, 17, 0, 11, 2]
    ds = build(release, split='test', primary_factor='digit_position')
    assert ds.metainfo['num_groups'] == 100
    assert [ds.get_data_info(i)['group_idx'] for i in range(5)] == \
        [33, 80, 0, 59, 11]


def test_index_files_in_the_set_folder_take_precedence(copy_of_release):
    root = copy_of_release
    with open(osp.join(root, 'full_0.95', 'train_ixs.json'), 'w') as f:
        json.dump([8, 4], f)
    with open(osp.join(root, 'full_0.95', 'val_ixs.json'), 'w') as f:
        json.dump([0], f)
    ds = build(root)
    assert [ds.get_data_info(i)['gt_label'] for i in range(len(ds))] == [8, 4]
    # val reads full_0.5, which has no index files: the root's
    assert len(build(root, split='val')) == 3


def test_released_through_the_pipeline(release):
    pipeline = [dict(type='LoadImageFromFileChecked'),
                dict(type='PackBiasInputs')]
    ds = build(release, pipeline=pipeline)
    packed = ds[0]  # image 5: digit 5, letter and its colour conflicting
    assert tuple(packed['inputs'].shape) == (3, 32, 32)
    # BGR: red channel (25 * 5) is the last one; JPEG: approximately
    assert abs(int(packed['inputs'][2].float().mean()) - 125) <= 3
    assert int(packed['inputs'][0].float().mean()) <= 3
    s = packed['data_samples']
    assert s.gt_label.tolist() == [5]
    assert s.group_idx == 55
    assert s.bias_label == 5 and s.bias_aligned
    assert s.bias_factors == dict(zip(FACTORS, (5, 5, 5, 5, 5, 0, 0)))
    assert s.bias_factors_aligned == dict(
        digit_color=True, digit_scale=True, digit_position=True,
        texture=True, texture_color=True, letter=False, letter_color=False)
    test = build(release, split='test', pipeline=pipeline)
    assert tuple(test[1]['inputs'].shape) == (3, 160, 160)
    assert test[1]['data_samples'].group_idx == 88


# ------------------------------------------------------- partial downloads
def test_missing_test_json(copy_of_release):
    root = copy_of_release
    os.remove(osp.join(root, 'full', 'test.json'))
    with pytest.raises(FileNotFoundError,
                       match=re.escape(osp.join('full', 'test.json'))):
        build(root, split='test')
    assert len(build(root, split='train')) == 7  # the others still read


def test_missing_image(copy_of_release):
    root = copy_of_release
    os.remove(osp.join(root, 'full_0.95', 'trainval', '9.jpg'))
    with pytest.raises(FileNotFoundError,
                       match=r"1 of 7 images.*missing \(e\.g\. \['9\.jpg'\]"):
        build(root)
    assert len(build(root, split='val')) == 3  # full_0.5 is complete


def test_missing_set_or_index_file(copy_of_release):
    root = copy_of_release
    with pytest.raises(FileNotFoundError, match=re.escape(
            osp.join('full_0.9', 'trainval.json'))):
        build(root, p_bias=0.9)  # no full_0.9 downloaded
    os.remove(osp.join(root, 'val_ixs.json'))
    with pytest.raises(FileNotFoundError, match='val_ixs.json'):
        build(root, split='val')
    shutil.rmtree(osp.join(root, 'full_0.95', 'trainval'))
    with pytest.raises(FileNotFoundError, match=re.escape(
            osp.join('full_0.95', 'trainval'))):
        build(root)


def test_index_out_of_range(copy_of_release):
    root = copy_of_release
    path = osp.join(root, 'train_ixs.json')
    rewrite_json(path, lambda ixs: ixs + [10])
    with pytest.raises(ValueError, match=r'train_ixs.json: 1 indices outside '
                       r'the 10 images'):
        build(root)
    rewrite_json(path, lambda ixs: [-1])
    with pytest.raises(ValueError, match='indices outside'):
        build(root)


def test_record_missing_a_key(copy_of_release):
    root = copy_of_release
    path = osp.join(root, 'full_0.95', 'trainval.json')

    def drop(recs):
        del recs[5]['texture_ix']  # image 5 is in train_ixs
        return recs

    rewrite_json(path, drop)
    with pytest.raises(ValueError, match=r"lacks the keys \['texture_ix'\]"):
        build(root)


def test_unreadable_json(copy_of_release):
    root = copy_of_release
    with open(osp.join(root, 'full', 'test.json'), 'w') as f:
        f.write('[{"index": 0,')  # truncated
    with pytest.raises(ValueError, match='cannot read it as JSON'):
        build(root, split='test')
    with open(osp.join(root, 'full', 'test.json'), 'w') as f:
        json.dump([], f)
    with pytest.raises(ValueError, match='non-empty list'):
        build(root, split='test')


def test_released_root_refuses_generation(copy_of_release):
    root = copy_of_release
    before = sorted(os.listdir(root))
    with pytest.raises(ValueError, match='generate=None'):
        build(root, generate=dict(image_size=32, num_trainval=20))
    assert sorted(os.listdir(root)) == before  # nothing generated


@pytest.mark.parametrize('key,value,n', [
    ('digit', 12, 10), ('digit', -1, 10), ('digit', 2.5, 10),
    ('digit', True, 10), ('digit', '3', 10), ('digit_color_ix', 10, 10),
    ('letter_ix', 22, 10), ('digit_position_ix', -3, 10)])
def test_label_or_factor_out_of_range_names_file_entry_and_value(
        copy_of_release, key, value, n):
    """It ended in cross_entropy's IndexError (train) or in BiasMetric's
    group_idx check after the whole test loop (test)."""
    root = copy_of_release
    for split, rel, pos in (('train', 'full_0.95/trainval.json', 7),
                            ('test', 'full/test.json', 3)):
        path = osp.join(root, rel)

        def edit(recs):
            recs[pos][key] = value
            return recs

        rewrite_json(path, edit)
        with pytest.raises(ValueError) as err:
            build(root, split=split)
        msg = str(err.value)
        assert path in msg
        assert f'entry {pos} (index {pos}): {key}={value!r}, expected an ' \
            f'integer in [0, {n})' in msg
    # val reads full_0.5 at val_ixs: an entry it does not use is not checked
    rewrite_json(osp.join(root, 'full_0.5', 'trainval.json'),
                 lambda recs: [dict(r, digit=99) if r['index'] == 0 else r
                               for r in recs])
    assert len(build(root, split='val')) == len(VAL_IXS)


def test_integral_floats_are_accepted(copy_of_release):
    root = copy_of_release
    rewrite_json(osp.join(root, 'full', 'test.json'),
                 lambda recs: [dict(r, digit=float(r['digit'])) for r in recs])
    assert [build(root, split='test').get_data_info(i)['gt_label']
            for i in range(len(TEST))] == [d for d, _ in TEST]


def test_image_link_out_of_the_data_root_is_refused(copy_of_release,
                                                    tmp_path):
    """An image of the released json that is a link to a file
    outside the data root is not read without a word; a linked image
    folder is fine."""
    root = copy_of_release
    image = osp.join(root, 'full_0.95', 'trainval', '9.jpg')
    outside = str(tmp_path / 'outside.jpg')
    shutil.move(image, outside)
    os.symlink(outside, image)
    with pytest.raises(ValueError) as err:
        build(root)
    msg = str(err.value)
    assert 'symbolic links to files outside the data root' in msg
    assert f'9.jpg -> {osp.realpath(outside)}' in msg
    assert 'allow_outside_root=True' in msg
    assert len(build(root, allow_outside_root=True)) == 7
    # the image back in place, its folder a link to another disk
    os.remove(image)
    shutil.move(outside, image)
    moved = str(tmp_path / 'disk' / 'trainval')
    shutil.move(osp.join(root, 'full_0.95', 'trainval'), moved)
    os.symlink(moved, osp.join(root, 'full_0.95', 'trainval'))
    assert len(build(root)) == 7

"""COCO-on-Places loader on tiny h5py files in the official layout."""
import os.path as osp

import h5py
import numpy as np
import pytest

import occam_plugin  # noqa: F401  (registers)
from mmpretrain.registry import DATASETS
from occam_plugin.datasets.coco_on_places import (COCO_ON_PLACES_CLASSES,
                                                  COCO_ON_PLACES_SPLITS)

N, S = 6, 16  # 6 images of 16 px (the real files: 64 px)


def official_arrays(seed=0, n=N):
    rng = np.random.default_rng(seed)
    images = rng.random((n, 3, S, S)).astype(np.float32)  # N x 3 x H x W
    images[0] = 1.0  # exact extremes
    images[1] = 0.0
    images[2, :, 0, 0] = (0.5, 0.75, 0.2)  # -> 127, 191, 51 (truncated)
    y = np.array([0, 8, 3, 3, 5, 1][:n], dtype=np.int64)
    g = np.array([0, 1, 0, 1, 0, 0][:n], dtype=np.int64)
    masks = (rng.random((n, 3, S, S)) > 0.5).astype(np.float32)
    return dict(images=images, y=y, g=g, masks=masks)


def write_h5(path, **datasets):
    with h5py.File(path, 'w') as f:
        for k, v in datasets.items():
            f.create_dataset(k, data=v)
    return str(path)


def build(root, split='train', **kwargs):
    return DATASETS.build(
        dict(type='COCOOnPlaces', data_root=str(root), split=split, **kwargs))


def test_official_split_names_and_classes():
    assert COCO_ON_PLACES_SPLITS == ('train', 'idtest', 'validtest', 'oodtest',
                                     'valoodtest', 'sgtest', 'valsgtest',
                                     'anotest')
    assert COCO_ON_PLACES_CLASSES == ('boat', 'airplane', 'truck', 'dog',
                                      'zebra', 'horse', 'bird', 'train', 'bus')


@pytest.mark.parametrize('split', COCO_ON_PLACES_SPLITS)
def test_every_split_official_layout(tmp_path, split):
    arr = official_arrays(seed=len(split))
    write_h5(tmp_path / f'{split}.h5py', **arr)
    ds = build(tmp_path, split, pipeline=[dict(type='PackBiasInputs')])
    assert len(ds) == N
    assert ds.metainfo['classes'] == COCO_ON_PLACES_CLASSES
    assert ds.metainfo['num_groups'] == 18
    assert ds.metainfo['group_names'][3] == 'airplane minority'
    for i in range(N):
        d = ds.get_data_info(i)
        y, g = int(arr['y'][i]), int(arr['g'][i])
        assert d['gt_label'] == y
        assert d['group_idx'] == 2 * y + g
        assert d['bias_label'] == g and d['bias_aligned'] == (g == 0)
        rgb = arr['images'][i].transpose(1, 2, 0) * 255
        assert d['img'].dtype == np.uint8 and d['img'].shape == (S, S, 3)
        assert np.abs(d['img'][..., ::-1] - rgb).max() < 1.0
        assert 'gt_mask' not in d
    assert ds.get_data_info(0)['img'].min() == 255
    assert ds.get_data_info(1)['img'].max() == 0
    # stored BGR: (R, G, B) = (127, 191, 51) -> (51, 191, 127)
    assert ds.get_data_info(2)['img'][0, 0].tolist() == [51, 191, 127]
    packed = ds[1]
    assert tuple(packed['inputs'].shape) == (3, S, S)
    s = packed['data_samples']
    assert s.gt_label.tolist() == [8] and s.group_idx == 17
    assert s.bias_aligned is False and s.sample_idx == 1


def test_hwc_uint8_h5_extension_and_masks(tmp_path):
    arr = official_arrays()
    hwc = np.round(arr['images'].transpose(0, 2, 3, 1) * 255).astype(np.uint8)
    write_h5(tmp_path / 'sgtest.h5',
             images=hwc,
             y=arr['y'],
             g=arr['g'],
             masks=arr['masks'][:, 0])  # N x H x W float masks
    ds = build(tmp_path, 'sgtest', with_masks=True)
    for i in range(N):
        d = ds.get_data_info(i)
        assert np.array_equal(d['img'], hwc[i][..., ::-1])
        assert np.array_equal(d['gt_mask'] > 0, arr['masks'][i, 0] > 0)
        assert d['gt_mask'].shape == (S, S)


def test_without_g_or_y(tmp_path):
    arr = official_arrays()
    write_h5(tmp_path / 'oodtest.h5py', images=arr['images'], y=arr['y'])
    d = build(tmp_path, 'oodtest').get_data_info(2)
    assert d['gt_label'] == 3
    assert not {'group_idx', 'bias_label', 'bias_aligned'} & set(d)
    write_h5(tmp_path / 'anotest.h5py', images=arr['images'])
    d = build(tmp_path, 'anotest').get_data_info(0)
    assert 'gt_label' not in d and d['img'].shape == (S, S, 3)
    write_h5(tmp_path / 'idtest.h5py', images=arr['images'], g=arr['g'])
    with pytest.raises(ValueError,
                       match=r'idtest.h5py: no dataset "y" \(found '
                       r"\['g', 'images'\]\); expected an h5py file"):
        build(tmp_path, 'idtest')


def test_bad_inputs(tmp_path):
    arr = official_arrays()
    with pytest.raises(FileNotFoundError,
                       match=r'train.h5py, .*train.h5 exists; expected an '
                       r'h5py file with datasets "images"'):
        build(tmp_path, 'train')
    with pytest.raises(ValueError,
                       match=r"split must be one of \('train', "
                       r"'idtest'.*got 'test'"):
        build(tmp_path, 'test')
    path = tmp_path / 'train.h5py'
    path.write_bytes(b'this is not hdf5')
    with pytest.raises(ValueError,
                       match=r'train.h5py: cannot open it as an '
                       r'h5py file'):
        build(tmp_path, 'train')

    bad = [
        (dict(y=arr['y'], g=arr['g']), ValueError, r'no dataset "images"'),
        (dict(images=arr['images'][:, 0], y=arr['y']), ValueError,
         r'"images" has shape \(6, 16, 16\); expected an h5py file'),
        (dict(images=arr['images'] * 255, y=arr['y']), ValueError,
         r'"images" holds floats in \[0, 255\]; expected \[0, 1\]'),
        (dict(images=arr['images'].astype(np.int32),
              y=arr['y']), ValueError, r'dtype int32'),
        (dict(images=arr['images'], y=arr['y'][:4]), ValueError,
         r'"y" has shape \(4,\); expected \(6,\)'),
        (dict(images=arr['images'], y=arr['y'] + 4), ValueError,
         r'"y" holds labels in \[4, 12\]; expected \[0, 9\)'),
        (dict(images=arr['images'], y=arr['y'], g=arr['g'] * 2), ValueError,
         r'"g" must hold 0 \(majority\) or 1 \(minority\), found values '
         r'\[0, 2\]'),
        (dict(images=arr['images'],
              y=arr['y'] + 0.5), ValueError, r'"y" must hold integer ids'),
        (dict(images=arr['images'], y=arr['y'], masks=arr['masks'][:3]),
         ValueError, r'"masks" has shape \(3, 3, 16, 16\), which does not '
         r'match "images" \(6, 3, 16, 16\)'),
    ]
    for datasets, exc, msg in bad:
        write_h5(path, **datasets)
        with pytest.raises(exc, match=msg):
            build(tmp_path, 'train', with_masks=True)
    assert osp.isfile(path)


@pytest.mark.parametrize('value', [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_name_the_file_and_the_images(tmp_path, value):
    """NaN used to become 0 with numpy's cast warning only."""
    arr = official_arrays()
    arr['images'][2, 1, 3, 4] = value
    arr['images'][5, 0, 0, 0] = value
    path = write_h5(tmp_path / 'train.h5py', images=arr['images'], y=arr['y'])
    with pytest.raises(ValueError) as err:
        build(tmp_path, 'train')
    msg = str(err.value)
    assert path in msg and '"images"' in msg
    assert 'non-finite pixels' in msg
    assert 'in 2 of 6 images, at indices [2, 5]' in msg
    assert ('NaN' if np.isnan(value) else str(value)) in msg
    # masks too
    arr = official_arrays()
    arr['masks'][4, 0, 0, 0] = value
    write_h5(tmp_path / 'train.h5py', **arr)
    build(tmp_path, 'train')  # masks not read
    with pytest.raises(ValueError, match=r'"masks" holds non-finite .*'
                       r'at indices \[4\]'):
        build(tmp_path, 'train', with_masks=True)


def test_labels_outside_the_classes_name_the_entries(tmp_path):
    arr = official_arrays()
    y = arr['y'].copy()
    y[3] = 9
    y[4] = -1
    path = write_h5(tmp_path / 'train.h5py', images=arr['images'], y=y)
    with pytest.raises(ValueError) as err:
        build(tmp_path, 'train')
    msg = str(err.value)
    assert path in msg and 'expected [0, 9)' in msg
    assert '2 of 6 outside, entry 3: 9, entry 4: -1' in msg
    for bad_y in (np.nan, np.inf):
        y = arr['y'].astype(np.float32)
        y[1] = bad_y
        write_h5(tmp_path / 'train.h5py', images=arr['images'], y=y)
        with pytest.raises(ValueError, match='"y" must hold integer ids'):
            build(tmp_path, 'train')
    g = arr['g'].copy()
    g[5] = 3
    write_h5(tmp_path / 'train.h5py', images=arr['images'], y=arr['y'], g=g)
    with pytest.raises(ValueError, match=r'1 of 6 outside, entry 5: 3'):
        build(tmp_path, 'train')

"""BAR loader: official layout, class from the file-name prefix, clear
errors."""
import logging
import os
import os.path as osp

import pytest
import torch
from mmpretrain.registry import DATASETS, TRANSFORMS

import occam_plugin  # noqa: F401  (registers BAR, LoadImageFromFileChecked)
from occam_plugin.datasets.bar import BAR, BAR_CLASSES
from tests.helpers import REPO, write_bar_folder

PIPELINE = [dict(type='LoadImageFromFileChecked'),
            dict(type='PackBiasInputs')]


def build(root, split='trainval', **kwargs):
    return DATASETS.build(dict(type='BAR', data_root=root, split=split,
                               pipeline=PIPELINE, **kwargs))


def test_layout_labels_and_samples(tiny_bar_root):
    train = build(tiny_bar_root, 'trainval')
    test = build(tiny_bar_root, 'test')
    assert train.metainfo['classes'] == BAR_CLASSES
    assert len(BAR_CLASSES) == 6 and len(train) == 12 and len(test) == 12
    # each file labelled by its prefix: climbing_0 -> 0, pole vaulting_* -> 3
    by_name = {osp.basename(train.get_data_info(i)['img_path']):
               train.get_data_info(i)['gt_label'] for i in range(len(train))}
    assert by_name['climbing_0.jpg'] == 0
    assert by_name['pole vaulting_6.jpg'] == 3
    assert by_name['throwing_11.jpg'] == 5
    assert sorted(by_name.values()) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    # test files are not mixed into train
    assert not set(by_name) & {osp.basename(test.get_data_info(i)['img_path'])
                               for i in range(len(test))}
    # a packed sample: real decoded 32x32 image, label, index; no bias keys
    out = train[0]
    assert out['inputs'].shape == (3, 32, 32)
    assert out['inputs'].dtype == torch.uint8
    sample = out['data_samples']
    assert int(sample.gt_label) == train.get_data_info(0)['gt_label']
    assert sample.sample_idx == 0
    assert 'bias_label' not in sample and 'group_idx' not in sample


def test_alternative_spellings(tmp_path):
    prefixes = ('climbing', 'diving', 'fishing', 'polevaulting', 'racing',
                'throwing')
    root = write_bar_folder(tmp_path / 'BAR', per_class=1, splits=('train', ),
                            prefixes=prefixes)
    os.rename(osp.join(root, 'train', 'fishing_2.jpg'),
              osp.join(root, 'train', 'Fishing_2.JPG'))
    os.rename(osp.join(root, 'train', 'polevaulting_3.jpg'),
              osp.join(root, 'train', 'pole_vaulting_3.jpg'))
    ds = build(root)
    labels = sorted(ds.get_data_info(i)['gt_label'] for i in range(len(ds)))
    assert labels == [0, 1, 2, 3, 4, 5]
    assert BAR.class_of('polevaulting_9.jpg') == 'pole vaulting'
    assert BAR.class_of('vaulting_9.jpg') == 'pole vaulting'
    assert BAR.class_of('swimming_1.jpg') is None


def test_missing_data_root(tmp_path):
    missing = str(tmp_path / 'nowhere' / 'BAR')
    with pytest.raises(FileNotFoundError) as err:
        build(missing)
    msg = str(err.value)
    assert missing in msg
    assert 'github.com/alinlab/BAR' in msg and 'Learning from Failure' in msg
    assert 'data/BAR/{train,test}/<class>_<id>.jpg' in msg


def test_missing_split_folder(tmp_path):
    root = write_bar_folder(tmp_path / 'BAR', per_class=1, splits=('train', ))
    with pytest.raises(FileNotFoundError, match='split folder') as err:
        build(root, 'test')
    assert osp.join(root, 'test') in str(err.value)
    with pytest.raises(ValueError, match="split must be one of"):
        build(root, 'valid')


def test_empty_split_folder(tmp_path):
    root = tmp_path / 'BAR'
    (root / 'train').mkdir(parents=True)
    (root / 'train' / 'notes.txt').write_text('not an image')
    with pytest.raises(FileNotFoundError, match='holds no images') as err:
        build(str(root))
    assert str(root / 'train') in str(err.value)


def test_unknown_class_prefix(tmp_path):
    root = write_bar_folder(tmp_path / 'BAR', per_class=1, splits=('train', ))
    os.rename(osp.join(root, 'train', 'racing_4.jpg'),
              osp.join(root, 'train', 'swimming_4.jpg'))
    with pytest.raises(ValueError) as err:
        build(root)
    msg = str(err.value)
    assert 'swimming_4.jpg' in msg and "'swimming'" in msg
    for cls in BAR_CLASSES:
        assert cls in msg


def test_class_without_images(tmp_path):
    root = write_bar_folder(tmp_path / 'BAR', per_class=1, splits=('train', ))
    os.remove(osp.join(root, 'train', 'diving_1.jpg'))
    with pytest.raises(ValueError,
                       match=r"no images of class\(es\) \['diving'\]"):
        build(root)


def test_corrupt_image_names_the_file(tmp_path):
    root = write_bar_folder(tmp_path / 'BAR', per_class=1, splits=('train', ))
    bad = osp.join(root, 'train', 'fishing_2.jpg')
    with open(bad, 'wb') as f:
        f.write(b'\xff\xd8 this is no JPEG')
    ds = build(root, verify_images=False)  # the loader's own message
    idx = [osp.basename(ds.get_data_info(i)['img_path'])
           for i in range(len(ds))].index('fishing_2.jpg')
    ds[0 if idx else 1]  # intact files still load
    with pytest.raises(ValueError, match='Corrupt image') as err:
        ds[idx]
    assert bad in str(err.value)
    # an empty file too
    open(bad, 'wb').close()
    load = TRANSFORMS.build(dict(type='LoadImageFromFileChecked'))
    with pytest.raises(ValueError, match='Corrupt image'):
        load(dict(img_path=bad))


def test_unsupported_image_extension_is_an_error(tmp_path):
    """A real image the loader does not list (here a GIF) is not skipped
    without a word: its class would silently lose samples."""
    from PIL import Image
    root = write_bar_folder(tmp_path / 'BAR', per_class=1, splits=('train', ))
    for name in ('diving_7.gif', 'racing_8.TIFF'):
        Image.new('RGB', (8, 8), (200, 0, 0)).save(
            osp.join(root, 'train', name))
    with pytest.raises(ValueError) as err:
        build(root)
    msg = str(err.value)
    assert osp.join(root, 'train') in msg
    assert 'diving_7.gif' in msg and 'racing_8.TIFF' in msg
    assert '.jpg' in msg and '.png' in msg  # the supported extensions


def test_stray_non_image_files_are_listed_in_a_warning(tmp_path,
                                                       monkeypatch):
    from occam_plugin.datasets import bar
    logged = []
    monkeypatch.setattr(bar, 'print_log',
                        lambda msg, logger=None, level=None:
                        logged.append((msg, level)))
    root = write_bar_folder(tmp_path / 'BAR', per_class=1, splits=('train', ))
    for name in ('.DS_Store', 'README.txt'):
        (tmp_path / 'BAR' / 'train' / name).write_text('x')
    os.mkdir(osp.join(root, 'train', 'old'))
    ds = build(root)
    assert len(ds) == 6  # the images are still all read
    warnings = [m for m, level in logged if level == logging.WARNING]
    assert len(warnings) == 1
    for name in ('.DS_Store', 'README.txt', 'old'):
        assert name in warnings[0]
    assert osp.join(root, 'train') in warnings[0]


def _corrupt(path, data=b'\xff\xd8 this is no JPEG'):
    with open(path, 'wb') as f:
        f.write(data)
    return str(path)


def test_corrupt_images_are_reported_when_the_split_is_built(tmp_path):
    """Every image is decoded once when the dataset is built, so a bad file
    stops the run before training, not when a batch (or validation) first
    reads it; all bad files are named at once."""
    root = write_bar_folder(tmp_path / 'BAR', per_class=1)
    bad = [_corrupt(osp.join(root, 'test', 'diving_7.jpg')),
           _corrupt(osp.join(root, 'test', 'racing_10.jpg'), b'')]
    # a truncated JPEG (half of a real file) too
    with open(osp.join(root, 'test', 'throwing_11.jpg'), 'rb') as f:
        half = f.read()
    bad.append(_corrupt(osp.join(root, 'test', 'throwing_11.jpg'),
                        half[:len(half) // 2]))
    build(root, 'trainval')  # intact split: fine
    with pytest.raises(ValueError) as err:
        build(root, 'test')
    msg = str(err.value)
    assert '3 of 6' in msg
    for path in bad:
        assert path in msg
    assert 'verify_images=False' in msg  # how to defer the check
    build(root, 'test', verify_images=False)


def test_corrupt_val_image_stops_training_before_the_first_iteration(
        tmp_path):
    """mmengine builds the val dataloader before the first iteration, so a
    bad val image (held out of train/) stops training at once: no
    iteration, no checkpoint."""
    import argparse
    from mmengine.config import Config, DictAction
    from mmengine.runner import Runner
    from tests.helpers import (REPO, TINY_BAR_OPTIONS, TINY_RESNET_OPTIONS,
                               bar_data_options)
    root = write_bar_folder(tmp_path / 'BAR', per_class=2)
    # fishing_4 and fishing_5: the first is the class's val image
    bad = _corrupt(osp.join(root, 'train', 'fishing_4.jpg'))
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    options = parser.parse_args(
        ['--cfg-options', *TINY_BAR_OPTIONS, *TINY_RESNET_OPTIONS,
         *bar_data_options(root), 'train_cfg.max_epochs=1',
         'train_cfg.val_interval=1',
         'train_dataloader.persistent_workers=False',
         'val_dataloader.persistent_workers=False',
         'test_dataloader.persistent_workers=False']).cfg_options
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'occam_resnet18_bar.py'))
    cfg.merge_from_dict(options)
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match='Corrupt image') as err:
        runner.train()
    assert bad in str(err.value)
    assert runner.iter == 0
    assert not [f for f in os.listdir(cfg.work_dir) if f.endswith('.pth')]


def _names(ds):
    return [osp.basename(ds.get_data_info(i)['img_path'])
            for i in range(len(ds))]


def test_val_split_is_every_tenth_image_of_each_class_by_id(tmp_path):
    """val = the 1st, 11th, 21st, ... image of each class in the order of the
    ids in the names (numeric, not lexical); train = the rest of train/;
    trainval = all of train/; no randomness, so every user gets the same."""
    root = write_bar_folder(tmp_path / 'BAR', per_class=12,
                            splits=('train', ))
    # ids run on across classes: climbing 0-11, diving 12-23, ...
    train, val, trainval = (build(root, s) for s in
                            ('train', 'val', 'trainval'))
    assert len(trainval) == 72 and len(val) == 12 and len(train) == 60
    expected_val = {f'{p}_{12 * c + k}.jpg'
                    for c, p in enumerate(('climbing', 'diving', 'fishing',
                                           'pole vaulting', 'racing',
                                           'throwing'))
                    for k in (0, 10)}
    assert set(_names(val)) == expected_val
    assert not set(_names(val)) & set(_names(train))
    assert set(_names(val)) | set(_names(train)) == set(_names(trainval))
    # stratified: two val images per class, labels as in trainval
    assert sorted(val.get_data_info(i)['gt_label']
                  for i in range(len(val))) == sorted(list(range(6)) * 2)
    # numeric order: climbing_10 is the 11th climbing image (val), although
    # it sorts lexically right after climbing_1
    assert 'climbing_10.jpg' in _names(val)
    assert 'climbing_1.jpg' in _names(train)
    # val is evaluation data: no refetch of a failed sample
    assert val.test_mode and not train.test_mode
    # a coarser rule on request
    assert len(build(root, 'val', val_every=4)) == 18
    with pytest.raises(ValueError, match='val_every must be an integer'):
        build(root, 'val', val_every=1)


def test_val_split_on_the_official_counts():
    """The rule gives the numbers the docs quote, for the official class
    sizes of train/ (326 / 520 / 163 / 279 / 336 / 317)."""
    counts = (326, 520, 163, 279, 336, 317)
    val = [sum(1 for k in range(n) if k % 10 == 0) for n in counts]
    assert val == [33, 52, 17, 28, 34, 32] and sum(val) == 196
    assert sum(counts) - sum(val) == 1745


def test_train_split_needs_two_images_per_class(tmp_path):
    root = write_bar_folder(tmp_path / 'BAR', per_class=1, splits=('train', ))
    with pytest.raises(ValueError) as err:
        build(root, 'train')  # the only image of each class is a val image
    msg = str(err.value)
    assert "split 'train'" in msg and 'at least 2' in msg
    assert len(build(root, 'val')) == 6


def test_decompression_bomb_is_refused_by_the_check_pass(tmp_path):
    """The check pass reads the pipeline loader's max_pixels and refuses an
    image above it from the header, naming the file (no 3 GB decode)."""
    from tests.helpers import write_png_header
    root = write_bar_folder(tmp_path / 'BAR', per_class=1, splits=('test', ))
    bomb = write_png_header(osp.join(root, 'test', 'diving_99.png'),
                            20_000, 20_000)
    with pytest.raises(ValueError) as err:
        build(root, 'test')
    msg = str(err.value)
    assert 'Image too large' in msg and bomb in msg
    assert '1 of 7 images' in msg
    # the limit is the loader's: 32 px images pass 1024, not 1023
    pipeline = [dict(type='LoadImageFromFileChecked', max_pixels=1023),
                dict(type='PackBiasInputs')]
    os.remove(bomb)
    with pytest.raises(ValueError, match=r'(?s)6 of 6 .*32 x 32 px'):
        DATASETS.build(dict(type='BAR', data_root=root, split='test',
                            pipeline=pipeline))
    pipeline[0]['max_pixels'] = 1024
    assert len(DATASETS.build(dict(type='BAR', data_root=root, split='test',
                                   pipeline=pipeline))) == 6


def test_broken_symlink_is_an_error_naming_the_link(tmp_path):
    """A link whose image is gone is a missing sample, not a folder to skip
    (it was listed as ``'climbing_998.jpg/'`` among the stray entries)."""
    root = write_bar_folder(tmp_path / 'BAR', per_class=1, splits=('train', ))
    target = str(tmp_path / 'elsewhere' / 'climbing_998.jpg')
    os.symlink(target, osp.join(root, 'train', 'climbing_998.jpg'))
    with pytest.raises(FileNotFoundError) as err:
        build(root)
    msg = str(err.value)
    assert osp.join(root, 'train') in msg
    assert '1 broken symbolic link(s)' in msg
    assert f'climbing_998.jpg -> {target}' in msg
    assert 'climbing_998.jpg/' not in msg
    # a link to an existing image outside the data root is read as the
    # image when allow_outside_root says so
    os.makedirs(osp.dirname(target))
    os.rename(osp.join(root, 'train', 'climbing_0.jpg'), target)
    ds = build(root, allow_outside_root=True)
    assert len(ds) == 6
    assert osp.basename(ds.get_data_info(0)['img_path']) == \
        'climbing_998.jpg'


def test_link_out_of_the_data_root_is_refused(tmp_path):
    """A link in the split folder to a file outside the data
    root (here /etc/hostname renamed as an image) is not read without a
    word; a data root that is itself a link, or a linked split folder, is
    fine."""
    root = write_bar_folder(tmp_path / 'BAR', per_class=1, splits=('train', ))
    outside = tmp_path / 'outside.jpg'
    os.rename(osp.join(root, 'train', 'climbing_0.jpg'), outside)
    os.symlink(str(outside), osp.join(root, 'train', 'climbing_0.jpg'))
    with pytest.raises(ValueError) as err:
        build(root)
    msg = str(err.value)
    assert '1 symbolic link(s) to files outside the data root' in msg
    assert f'climbing_0.jpg -> {osp.realpath(outside)}' in msg
    assert 'allow_outside_root=True' in msg
    assert len(build(root, allow_outside_root=True)) == 6
    # the images where they were, the folders linked from elsewhere
    os.remove(osp.join(root, 'train', 'climbing_0.jpg'))
    os.rename(outside, osp.join(root, 'train', 'climbing_0.jpg'))
    linked = tmp_path / 'linked'
    linked.mkdir()
    os.symlink(osp.join(root, 'train'), str(linked / 'train'))
    assert len(build(str(linked))) == 6
    os.symlink(root, str(tmp_path / 'root_link'))
    assert len(build(str(tmp_path / 'root_link'))) == 6


@pytest.mark.parametrize('config', [
    'configs/resnet/resnet18-w16_1xb64_60e_bar-small.py',
    'configs/resnet/resnet18_1xb128_90e_bar.py'])
def test_bar_baseline_classifier_has_the_reference_init(config):
    """The plain ResNet's classifier starts as the reference's nn.Linear
    (kaiming-uniform weights, std 1/sqrt(3 fan_in), and a uniform bias),
    not mmpretrain's N(0, 0.01) with a zero bias."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO, config))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    fc = model.head.fc
    fan_in = fc.weight.shape[1]
    assert fc.weight.std().item() == pytest.approx(
        (3 * fan_in) ** -0.5, rel=0.1)
    assert fc.bias.abs().max().item() > 0.01
    assert fc.bias.abs().max().item() <= fan_in ** -0.5

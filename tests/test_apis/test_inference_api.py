"""mmpretrain's inference APIs on our configs, end to end on real JPEGs.

``ImageClassificationInferencer``, ``get_model`` and ``inference_model`` from
mmpretrain, and ``occam_plugin.apis`` (``OccamInferencer``,
``init_occam_model``: strict checkpoints, the exits in the results). Models
are tiny (width 8, 32 px); the reference prediction is the one
``tools/test.py`` makes (the config's test pipeline read from the file, then
``model.test_step``), or ``tools/test.py --out`` itself after one epoch.
"""
import argparse
import os
import os.path as osp

import mmcv
import mmpretrain
import numpy as np
import pytest
import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import Compose, pseudo_collate

import occam_plugin  # noqa: F401  (registers; checkpoint allow-list)
from tests.helpers import (REPO, TINY_BAR_OPTIONS, TINY_RESNET_OPTIONS,
                           bar_data_options, load_tool)
from occam_plugin.apis import OccamInferencer, init_occam_model
from occam_plugin.datasets.bar import BAR_CLASSES
from occam_plugin.engine.runner import CheckpointError
from occam_plugin.errors import MissingKeyError
from occam_plugin.evaluation import load_predictions
from occam_plugin.models.utils.training_state import prepare_from_dataset

OCCAM_BAR = osp.join(REPO, 'configs', 'occam_resnet18_bar.py')
PLAIN_BAR = osp.join(REPO, 'configs', 'resnet',
                     'resnet18_1xb128_90e_bar.py')
# the debiased model is a copy of the biased one
LFF_WIDTH = ('model.biased_model.backbone.stem_channels=8',
             'model.biased_model.backbone.base_channels=8')

#: config -> (--cfg-options making it tiny, whether it is an OccamNet)
CONFIGS = {
    'resnet/resnet18_1xb128_90e_bar.py': (
        TINY_BAR_OPTIONS + TINY_RESNET_OPTIONS, False),
    'occam_resnet18_bar.py': (TINY_BAR_OPTIONS + TINY_RESNET_OPTIONS, True),
    'occamnets/occamnets_resnet18-w16_1xb64_10e_biased-mnist-small.py': (
        TINY_RESNET_OPTIONS, True),
    'lff/lff_resnet18_1xb256_100e_colored-mnist.py': (LFF_WIDTH, False),
    'lff/lff_occamnets-resnet18_1xb256_100e_colored-mnist.py': (
        LFF_WIDTH, True),
}


def options(*pairs):
    """``--cfg-options`` strings as the dict ``Config.merge_from_dict``
    takes (parsed as tools/train.py parses them)."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(['--cfg-options', *pairs]).cfg_options


def tiny_config(name):
    cfg = Config.fromfile(osp.join(REPO, 'configs', name))
    cfg.merge_from_dict(options(*CONFIGS[name][0]))
    return cfg


def save_checkpoint(model, path, classes=None):
    """What the Runner writes, reduced to what inference reads."""
    meta = {'dataset_meta': {'classes': list(classes)}} if classes else {}
    torch.save({'state_dict': model.state_dict(), 'meta': meta}, path)
    return str(path)


def predict_like_test_py(model, cfg, path):
    """The prediction tools/test.py makes for the image file ``path``: the
    config's test pipeline (reading the file, or given the decoded image as
    in-memory datasets do), then ``model.test_step``."""
    from mmpretrain.registry import TRANSFORMS
    pipeline = Compose([TRANSFORMS.build(t)
                        for t in cfg.test_dataloader.dataset.pipeline])
    data = pipeline(dict(img_path=path, img=mmcv.imread(path)))
    with torch.no_grad():
        return model.test_step(pseudo_collate([data]))[0]


def check_exits(result, num_classes, num_exits=4):
    assert isinstance(result['exit_idx'], int)
    assert 0 <= result['exit_idx'] < num_exits
    scores = result['exit_scores']
    assert scores.shape == (num_exits, num_classes)
    np.testing.assert_allclose(scores.sum(1), 1, rtol=1e-5)
    assert result['exit_gates'].shape == (num_exits, )
    # the reported prediction is the one of the exit taken
    np.testing.assert_allclose(result['pred_scores'],
                               scores[result['exit_idx']], rtol=1e-6)


@pytest.fixture(scope='module')
def images(bar_root):
    folder = osp.join(bar_root, 'test')
    return sorted(osp.join(folder, f) for f in os.listdir(folder))


def test_stock_inferencer_reads_our_loading_step(images):
    """The user's report: mmpretrain's inferencer strips only a step named
    'LoadImageFromFile'; ours stays and takes the decoded image as it is."""
    cfg = tiny_config('occam_resnet18_bar.py')
    assert cfg.test_dataloader.dataset.pipeline[0].type == \
        'LoadImageFromFileChecked'
    inferencer = mmpretrain.ImageClassificationInferencer(cfg,
                                                          pretrained=False)
    results = inferencer(images[:2])
    assert len(results) == 2
    for result in results:
        assert result['pred_class'] in BAR_CLASSES
        assert 0 <= result['pred_label'] < 6


def test_loading_step_passes_decoded_images_and_names_missing_keys():
    from occam_plugin.datasets.transforms import LoadImageFromFileChecked
    img = np.zeros((5, 7, 3), np.uint8)
    out = LoadImageFromFileChecked(to_float32=True).transform(dict(img=img))
    assert out['img'].dtype == np.float32
    assert out['img_shape'] == out['ori_shape'] == (5, 7)
    with pytest.raises(MissingKeyError, match='neither `img_path`.*nor `img`'):
        LoadImageFromFileChecked().transform(dict(sample_idx=0))


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_inferencer_matches_test_py_prediction(name, images, tmp_path):
    """Every kind of config: plain, OccamNet, LfF (plain and Occam), BAR
    and MNIST pipelines; a strictly loaded checkpoint whose training-set
    sized buffers (gate memory, LfF EMAs) differ from a fresh model's."""
    cfg = tiny_config(name)
    num_classes, is_occam = 6 if 'bar' in name else 10, CONFIGS[name][1]
    model = init_occam_model(cfg)
    # size the per-sample buffers to a 5-image training set, as
    # TrainingStateHook does before training
    prepare_from_dataset(model, dict(num_samples=5, gt_label=np.zeros(5, int),
                                     group_idx=np.zeros(5, int)))
    ckpt = save_checkpoint(model, tmp_path / 'model.pth',
                           classes=[f'c{i}' for i in range(num_classes)])

    inferencer = OccamInferencer(cfg, pretrained=ckpt)
    results = inferencer(images[:2])
    for path, result in zip(images, results):
        expected = predict_like_test_py(inferencer.model, cfg, path)
        assert result['pred_label'] == int(expected.pred_label)
        assert result['pred_class'] == f'c{result["pred_label"]}'  # ckpt's
        np.testing.assert_allclose(result['pred_scores'],
                                   expected.pred_score.numpy(), rtol=1e-5)
        if is_occam:
            check_exits(result, num_classes)
            assert result['exit_idx'] == expected.exit_idx
        else:
            assert 'exit_idx' not in result and 'exit_scores' not in result


@pytest.mark.slow
def test_occam_bar_trained_inference_equals_tools_test(bar_root, images,
                                                       tmp_path):
    """One epoch through tools/train.py, then tools/test.py --out and every
    inference entry point on the same JPEGs: the same predictions."""
    opts = [*TINY_BAR_OPTIONS, *TINY_RESNET_OPTIONS,
            *bar_data_options(bar_root), 'train_cfg.max_epochs=1',
            'train_cfg.val_interval=1']
    load_tool('train.py').main([OCCAM_BAR, '--work-dir', str(tmp_path / 'w'),
                                '--cfg-options', *opts])
    ckpt = str(tmp_path / 'w' / 'epoch_1.pth')
    out = str(tmp_path / 'preds.pkl')
    load_tool('test.py').main([OCCAM_BAR, ckpt, '--out', out, '--work-dir',
                               str(tmp_path / 't'), '--cfg-options', *opts])
    dumped = {p['img_path']: p for p in load_predictions(out)}
    assert sorted(dumped) == images

    cfg = Config.fromfile(OCCAM_BAR)
    cfg.merge_from_dict(options(*opts))
    results = OccamInferencer(cfg, pretrained=ckpt)(images)
    model = init_occam_model(cfg, ckpt)
    assert list(model._dataset_meta['classes']) == list(BAR_CLASSES)
    stock = mmpretrain.ImageClassificationInferencer(model)(images)
    for path, result, plain in zip(images, results, stock):
        expected = dumped[path]
        assert result['pred_label'] == int(expected['pred_label']), path
        assert result['pred_class'] == BAR_CLASSES[result['pred_label']]
        assert result['exit_idx'] == expected['exit_idx']
        np.testing.assert_allclose(result['exit_scores'],
                                   np.asarray(expected['exit_scores']),
                                   rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(result['exit_gates'],
                                   np.asarray(expected['exit_gates']),
                                   rtol=1e-4, atol=1e-6)
        check_exits(result, 6)
        assert plain['pred_label'] == result['pred_label']
    # mmpretrain's own entry points on the same checkpoint (it fits)
    assert mmpretrain.inference_model(model, images[0])['pred_label'] == \
        results[0]['pred_label']
    zoo_style = mmpretrain.get_model(cfg, pretrained=ckpt)
    assert mmpretrain.ImageClassificationInferencer(zoo_style)(
        images[0])[0]['pred_label'] == results[0]['pred_label']


def test_checkpoint_of_another_model_is_refused_naming_the_file(tmp_path):
    """mmpretrain's get_model only logs a mismatch; our path refuses it."""
    plain = init_occam_model(tiny_config('resnet/resnet18_1xb128_90e_bar.py'))
    ckpt = save_checkpoint(plain, tmp_path / 'resnet18.pth')
    occam_cfg = tiny_config('occam_resnet18_bar.py')
    with pytest.raises(CheckpointError, match='resnet18.pth') as err:
        init_occam_model(occam_cfg, ckpt)
    assert 'neck.exits.0' in str(err.value)  # a missing key is listed
    with pytest.raises(CheckpointError, match='resnet18.pth'):
        OccamInferencer(occam_cfg, pretrained=ckpt)
    built = init_occam_model(occam_cfg)
    with pytest.raises(CheckpointError, match='resnet18.pth'):
        OccamInferencer(built, pretrained=ckpt)
    with pytest.raises(CheckpointError, match='missing.pth'):
        init_occam_model(occam_cfg, str(tmp_path / 'missing.pth'))
    with pytest.raises(FileNotFoundError, match='nope.py'):
        init_occam_model(str(tmp_path / 'nope.py'))


@pytest.fixture(scope='module')
def tiny_inferencer():
    """A random-weight tiny OccamNet's inferencer (the checks run before
    the model)."""
    cfg = tiny_config('occam_resnet18_bar.py')
    return OccamInferencer(init_occam_model(cfg))


def test_inferencer_refuses_a_decompression_bomb_from_its_header(
        tiny_inferencer, tmp_path):
    """A 12000 x 12000 1-bit PNG is a few KB on disk and 432 MB decoded in
    colour: refused from its header (144 M pixels > the 89.5 M default), as
    training and vis_cam.py refuse it."""
    from PIL import Image
    bomb = str(tmp_path / 'bomb.png')
    Image.new('1', (12000, 12000)).save(bomb)
    assert os.path.getsize(bomb) < 200_000
    assert tiny_inferencer.max_pixels == 89_478_485  # the pipeline's
    with pytest.raises(ValueError, match=r"bomb\.png.*12000 x 12000 px.*"
                       r"it was not decoded"):
        tiny_inferencer(bomb)
    # the limit is the inferencer's own when given
    small = str(tmp_path / 'small.png')
    Image.new('RGB', (11, 10)).save(small)
    cfg = tiny_config('occam_resnet18_bar.py')
    strict = OccamInferencer(init_occam_model(cfg), max_pixels=100)
    with pytest.raises(ValueError, match=r'small\.png.*11 x 10 px \(110 '):
        strict(small)
    with pytest.raises(ValueError, match='max_pixels must be an integer'):
        OccamInferencer(init_occam_model(cfg), max_pixels=0)


def test_inferencer_refuses_float_and_non_finite_arrays(tiny_inferencer):
    """A 0..1 float image predicted another class than its uint8 twin, a
    NaN image predicted class 0 with score nan: both refused, naming the
    dtype and what is expected."""
    img = np.random.default_rng(0).random((32, 32, 3))
    with pytest.raises(ValueError, match=r'input 0 is a float64 array; '
                       r'expected an H x W x 3 uint8'):
        tiny_inferencer(img)
    nan = np.full((32, 32, 3), np.nan, np.float32)
    with pytest.raises(ValueError, match=r'float32 array and holds NaN'):
        tiny_inferencer(nan)
    # a uint8 image passes
    result = tiny_inferencer((img * 255).round().astype(np.uint8))[0]
    assert np.isfinite(result['pred_scores']).all()


def test_inferencer_names_an_empty_file_and_bad_array_shapes(
        tiny_inferencer, tmp_path):
    empty = tmp_path / 'empty.png'
    empty.write_bytes(b'')
    with pytest.raises(ValueError, match=r"Corrupt image: '.*empty\.png' "
                       r'\(0 bytes\)'):
        tiny_inferencer(str(empty))
    with pytest.raises(ValueError, match=r'input 0 is empty \(shape '
                       r'\(0, 0, 3\)\)'):
        tiny_inferencer(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(ValueError, match=r'input 0 has shape \(32, 32, 2\)'):
        tiny_inferencer(np.zeros((32, 32, 2), np.uint8))


def test_inferencer_drops_alpha_as_the_file_decoder_does(tiny_inferencer,
                                                         tmp_path):
    """An RGBA PNG file is read as 3 colour channels (cv2's colour decode
    drops alpha); an H x W x 4 array is taken the same way: the same
    prediction as its first 3 channels, and as the file. A grey H x W array
    is the image repeated to 3 channels, as a grey file decodes."""
    import cv2
    rng = np.random.default_rng(1)
    bgra = rng.integers(0, 256, (32, 32, 4), dtype=np.uint8)
    path = str(tmp_path / 'rgba.png')
    cv2.imwrite(path, bgra)
    from_file, from_4, from_3 = (
        tiny_inferencer(x)[0] for x in (path, bgra, bgra[..., :3].copy()))
    np.testing.assert_allclose(from_4['pred_scores'], from_3['pred_scores'])
    np.testing.assert_allclose(from_file['pred_scores'],
                               from_3['pred_scores'])
    grey = bgra[..., 0].copy()
    np.testing.assert_allclose(
        tiny_inferencer(grey)[0]['pred_scores'],
        tiny_inferencer(np.repeat(grey[..., None], 3, 2))[0]['pred_scores'])


@pytest.mark.parametrize('options,shown', [
    ({'modle.head.use_gates': False}, "did you mean 'model'"),
    ({'model.head.use_gates': False, 'env_cfg.cudnn_benchmak': True},
     "did you mean 'cudnn_benchmark'"),
    ({'model.backbone.out_indices': (2, 3, 4)}, 'in 0..3')])
def test_python_apis_check_cfg_options_as_the_tools_do(options, shown):
    """init_occam_model / OccamInferencer merged any key
    (a typo'd one was ignored and the model built as if it was not given);
    the same check as tools/train.py, as a ValueError (no SystemExit from
    a library)."""
    from occam_plugin.engine.runner import ConfigError
    cfg = tiny_config('occam_resnet18_bar.py')
    with pytest.raises(ConfigError) as err:
        init_occam_model(cfg, cfg_options=options)
    assert isinstance(err.value, ValueError)
    assert shown in str(err.value).lower()
    with pytest.raises(ConfigError):
        OccamInferencer(cfg, pretrained=False, cfg_options=options)
    # a right key is applied
    model = init_occam_model(cfg, cfg_options={'model.head.use_gates': False})
    assert model.head.use_gates is False

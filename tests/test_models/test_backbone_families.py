"""Every mmpretrain CNN family becomes an OccamNet by backbone keys alone
(docs/tasks/backbones.md): one exit per main stage when the config names no
``out_indices``, one train step, dynamic inference equal to compute-all and
really skipping the later stages, per-exit FLOPs strictly increasing; a
backbone that cannot be staged reports its per-exit FLOPs as unavailable;
a ``type`` swap that kept the base config's keys names ``_delete_``."""
import math
import os.path as osp
import warnings

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper

import occam_plugin  # noqa: F401  (registers)
from mmpretrain.registry import METRICS, MODELS
from mmpretrain.structures import DataSample
from occam_plugin.models.utils.flops import exit_flops
from occam_plugin.models.utils.training_state import reset_epoch_state
from tests.helpers import REPO

SIZE = 32

#: family -> (tiny backbone config without out_indices, the default exits'
#: out_indices, their reductions)
FAMILIES = {
    'ResNet': (dict(type='ResNet', depth=18, base_channels=8,
                    stem_channels=8), (0, 1, 2, 3), [4, 8, 16, 32]),
    'ResNeXt': (dict(type='ResNeXt', depth=50, groups=2, width_per_group=4,
                     base_channels=8, stem_channels=8), (0, 1, 2, 3),
                [4, 8, 16, 32]),
    'Res2Net': (dict(type='Res2Net', depth=50, scales=2, base_width=4,
                     base_channels=8, stem_channels=8), (0, 1, 2, 3),
                [4, 8, 16, 32]),
    'ResNeSt': (dict(type='ResNeSt', depth=50, radix=2, base_channels=8,
                     stem_channels=8), (0, 1, 2, 3), [4, 8, 16, 32]),
    'SEResNet': (dict(type='SEResNet', depth=50, se_ratio=4,
                      base_channels=8, stem_channels=8), (0, 1, 2, 3),
                 [4, 8, 16, 32]),
    'RegNet': (dict(type='RegNet', arch='regnetx_400mf'), (0, 1, 2, 3),
               [4, 8, 16, 32]),
    # strides 2,1,2,2,2,1,2,1 after a stride-2 stem: reductions
    # 2,4,8,16,16,32,32,32; the last map at 4, 8, 16, 32
    'MobileNetV2': (dict(type='MobileNetV2', widen_factor=0.25),
                    (1, 2, 4, 7), [4, 8, 16, 32]),
    'MobileNetV3': (dict(type='MobileNetV3', arch='small'), (1, 3, 8, 12),
                    [4, 8, 16, 32]),
    # the stem reduces by 4 and gives no map: 3 exits
    'ShuffleNetV1': (dict(type='ShuffleNetV1', widen_factor=0.5),
                     (0, 1, 2), [8, 16, 32]),
    'ShuffleNetV2': (dict(type='ShuffleNetV2', widen_factor=0.5),
                     (0, 1, 3), [8, 16, 32]),
    'EfficientNet': (dict(type='EfficientNet', arch='b0'), (2, 3, 4, 6),
                     [4, 8, 16, 32]),
    'EfficientNetV2': (dict(type='EfficientNetV2', arch='b0'),
                       (2, 3, 5, 7), [4, 8, 16, 32]),
    'ConvNeXt': (dict(type='ConvNeXt',
                      arch=dict(depths=[1, 1, 1, 1],
                                channels=[8, 16, 32, 64])),
                 (0, 1, 2, 3), [4, 8, 16, 32]),
    # transitions pool after the stem's 4: 8, 16, 32, 32
    'DenseNet': (dict(type='DenseNet',
                      arch=dict(growth_rate=4, depths=[1, 1, 1, 1],
                                init_channels=8)), (0, 1, 3), [8, 16, 32]),
    'VGG': (dict(type='VGG', depth=11), (1, 2, 3, 4), [4, 8, 16, 32]),
}

#: HRNet's 4 maps all leave its last stage: exits, but no stages to skip
HRNET = dict(
    type='HRNet',
    extra=dict(
        stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK',
                    num_blocks=(1, ), num_channels=(8, )),
        stage2=dict(num_modules=1, num_branches=2, block='BASIC',
                    num_blocks=(1, 1), num_channels=(4, 8)),
        stage3=dict(num_modules=1, num_branches=3, block='BASIC',
                    num_blocks=(1, 1, 1), num_channels=(4, 8, 16)),
        stage4=dict(num_modules=1, num_branches=4, block='BASIC',
                    num_blocks=(1, 1, 1, 1), num_channels=(4, 8, 16, 32))))


def occam(backbone):
    return dict(type='OccamClassifier', backbone=backbone, probe_size=SIZE,
                head=dict(type='OccamHead', num_classes=3),
                data_preprocessor=dict(type='ClsDataPreprocessor',
                                       mean=[127.5] * 3, std=[64.0] * 3))


def batch(n=2):
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (n, 3, SIZE, SIZE), generator=g,
                         dtype=torch.uint8)
    samples = [DataSample(metainfo=dict(sample_idx=i)).set_gt_label(i % 3)
               for i in range(n)]
    return dict(inputs=list(imgs), data_samples=samples)


def build_and_train_one_step(backbone):
    torch.manual_seed(0)
    model = MODELS.build(occam(backbone))
    model.head.gate_loss.resize_memory(2)
    reset_epoch_state(model, 0)
    model.train()
    # batch 2 over 1 x 1 maps: BN's gradients are huge, so clip them
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01),
                         clip_grad=dict(max_norm=1.0))
    losses = model.train_step(batch(), optim)
    assert losses and all(
        math.isfinite(float(v.detach())) for v in losses.values())
    return model.eval()


def predict(model, mode, threshold):
    model.inference_mode, model.head.exit_threshold = mode, threshold
    data = model.data_preprocessor(batch(), False)
    with torch.no_grad():
        return model.predict(data['inputs'])


@pytest.mark.slow
@pytest.mark.parametrize('family', list(FAMILIES))
def test_family_is_an_occamnet_by_keys_alone(family):
    backbone, out_indices, reductions = FAMILIES[family]
    model = build_and_train_one_step(backbone)
    stages = model.backbone_stages
    assert stages.runnable and stages.positions is None
    assert tuple(stages.indices) == out_indices
    assert stages.reductions == reductions
    # the backbone itself returns exactly the exits' maps
    assert tuple(model.backbone.out_indices) == out_indices

    counts = exit_flops(model, (3, SIZE, SIZE))
    per_exit = counts['exit']
    assert all(a < b for a, b in zip(per_exit, per_exit[1:])), per_exit
    assert per_exit[-1] <= counts['full']

    with warnings.catch_warnings():
        warnings.simplefilter('error', UserWarning)  # no compute-all fallback
        # threshold 0: every sample leaves at the first exit used
        # (min_inference_exit=1); threshold 1: at the last (gates < 1)
        for threshold, exit_k in ((0.0, 1), (1.0, len(out_indices) - 1)):
            full = predict(model, 'compute_all', threshold)
            dyn = predict(model, 'dynamic', threshold)
            for a, d in zip(full, dyn):
                assert int(a.exit_idx) == int(d.exit_idx) == exit_k
                assert torch.equal(a.pred_label, d.pred_label)
                torch.testing.assert_close(a.pred_score, d.pred_score)
                # dynamic spent the stages up to exit_k and nothing more
                assert d.flops == pytest.approx(per_exit[exit_k])
                assert a.flops == pytest.approx(counts['full'])
                assert d.exit_flops == per_exit


def test_explicit_out_indices_are_kept():
    torch.manual_seed(0)
    model = MODELS.build(
        occam(dict(type='MobileNetV2', widen_factor=0.25,
                   out_indices=(2, 7))))
    assert model.backbone_stages.indices == [2, 7]
    assert model.backbone_stages.reductions == [8, 32]
    assert model.backbone.out_indices == (2, 7)


def test_unstageable_backbone_reports_exit_flops_unavailable():
    """HRNet: exits train and predict, dynamic falls back to compute-all
    (same predictions), the predictions carry no exit_flops and ExitMetric
    leaves exit/expected_compute out instead of printing 1.0."""
    model = build_and_train_one_step(HRNET)
    assert not model.backbone_stages.runnable
    assert model.backbone_stages.reductions == [4, 8, 16, 32]
    assert exit_flops(model, (3, SIZE, SIZE))['exit'] is None
    full = predict(model, 'compute_all', 0.5)
    with pytest.warns(UserWarning, match='falling back to compute-all'):
        dyn = predict(model, 'dynamic', 0.5)
    for a, d in zip(full, dyn):
        assert int(a.exit_idx) == int(d.exit_idx)
        assert 'exit_flops' not in a.metainfo
        assert a.full_flops > 0 and a.flops == a.full_flops
    for ds, gt in zip(full, batch()['data_samples']):
        ds.set_gt_label(gt.gt_label)
    metric = METRICS.build(dict(type='ExitMetric'))
    metric.process(None, [ds.to_dict() for ds in full])
    keys = metric.evaluate(len(full))
    assert 'exit/expected_compute' not in keys
    assert 'exit/share_e3' in keys


def test_swap_without_delete_names_the_key():
    """The OccamNet base config sets ResNet's keys; a swap of `type` alone
    keeps them, and the error says what to add."""
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/_base_/models/occam_resnet18.py'))
    cfg.merge_from_dict({'model.backbone.type': 'MobileNetV2'})
    with pytest.raises(TypeError, match=r"MobileNetV2 does not take \["
                       r"'depth', 'stem_channels', 'base_channels'.*"
                       r'model\.backbone\._delete_=True'):
        MODELS.build(cfg.model)
    # timm (a **kwargs constructor): the key timm's error names
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/_base_/models/occam_resnet18.py'))
    cfg.merge_from_dict({'model.backbone.type': 'TIMMBackbone',
                         'model.backbone.model_name': 'resnet18',
                         'model.backbone.pretrained': False})
    with pytest.raises(TypeError, match=r"does not take \['depth'\].*"
                       r'_delete_=True'):
        MODELS.build(cfg.model)


def test_swap_with_delete_builds_by_keys_alone():
    """--cfg-options model.backbone._delete_=True model.backbone.type=...:
    the ResNet keys are gone and the family's default exits follow."""
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/_base_/models/occam_resnet18.py'))
    cfg.merge_from_dict({'model.backbone._delete_': True,
                         'model.backbone.type': 'ConvNeXt',
                         'model.backbone.arch': dict(
                             depths=[1, 1, 1, 1], channels=[8, 16, 32, 64]),
                         'model.head.num_classes': 3})
    assert set(cfg.model.backbone) == {'type', 'arch'}
    model = MODELS.build(dict(cfg.model, probe_size=SIZE))
    # ConvNeXt's classification default pools its maps: OccamNets unset it
    assert model.backbone.gap_before_final_norm is False
    assert model.backbone_stages.channels == [8, 16, 32, 64]


def test_bar_config_comment_swap_drops_the_resnet_keys():
    path = osp.join(REPO,
                    'configs/occamnets/occamnets_resnet18_1xb128_90e_bar.py')
    with open(path) as f:
        comment = ' '.join(line.lstrip('#').strip(' \\\n')
                           for line in f if line.startswith('#'))
    options = dict(o.split('=', 1) for o in
                   comment.split('--cfg-options', 1)[1].split()
                   if o.startswith('model.'))
    assert options['model.backbone._delete_'] == 'True'
    cfg = Config.fromfile(path)
    cfg.merge_from_dict({k: True if v == 'True' else False if v == 'False'
                         else v for k, v in options.items()})
    assert dict(cfg.model.backbone) == dict(
        type='TIMMBackbone', model_name='efficientnet_b0',
        features_only=True, pretrained=False)


def test_convnext_pooled_maps_name_the_key():
    with pytest.raises(ValueError, match=r'model\.backbone\.'
                       r'gap_before_final_norm=False'):
        MODELS.build(occam(dict(type='ConvNeXt', gap_before_final_norm=True,
                                arch=dict(depths=[1, 1, 1, 1],
                                          channels=[8, 16, 32, 64]))))


def test_hrnet_at_a_side_it_cannot_fuse_is_named():
    """HRNet upsamples its low-resolution branches onto the high one: at
    112 px the 1/32 branch (3.5 -> 4 cells) comes back as 32 cells against
    28. The error names the input size and the sides that work, instead of
    torch's bare size mismatch."""
    model = MODELS.build(dict(
        type='OccamClassifier', backbone=dict(type='HRNet', arch='w18'),
        head=dict(type='OccamHead', num_classes=3))).eval()
    with torch.no_grad():
        with pytest.raises(ValueError, match=r'HRNet: input of 112 x 112 px '
                           r'failed .*multiples of 32 \(e.g. 96 or 128 px\)'):
            model(torch.randn(1, 3, 112, 112), mode='tensor')
        assert len(model(torch.randn(1, 3, 96, 96), mode='tensor')) == 4

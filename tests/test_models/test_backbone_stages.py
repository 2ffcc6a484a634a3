"""One description of a backbone's stages: default exit placement for timm
swaps (one exit per main stage), explicit out_indices kept, the extension
point for a new backbone family, and a few timm families end to end."""
import math
import warnings

import pytest
import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper

import occam_plugin  # noqa: F401  (registers)
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from occam_plugin.models.utils.training_state import (prepare_from_dataset,
                                                      reset_epoch_state)
from occam_plugin.models.utils import stages as stages_mod
from occam_plugin.models.utils.stages import (BackboneStages, StageDescriber,
                                              describe_backbone,
                                              register_describer)


def timm(name, **kwargs):
    return dict(type='TIMMBackbone', model_name=name, features_only=True,
                pretrained=False, **kwargs)


def occam(backbone, num_classes=3):
    return dict(type='OccamClassifier', backbone=backbone,
                head=dict(type='OccamHead', num_classes=num_classes),
                data_preprocessor=dict(type='ClsDataPreprocessor',
                                       mean=[127.5] * 3, std=[64.0] * 3))


def build(cfg, seed=0):
    torch.manual_seed(seed)
    return MODELS.build(cfg)


def batch(n=4, size=32, num_classes=3):
    g = torch.Generator().manual_seed(1)
    imgs = torch.randint(0, 256, (n, 3, size, size), generator=g,
                         dtype=torch.uint8)
    samples = [DataSample(metainfo=dict(sample_idx=i)).set_gt_label(
        i % num_classes) for i in range(n)]
    return dict(inputs=list(imgs), data_samples=samples)


def predict_both(model, inputs):
    """Predictions in compute_all and dynamic mode (no fallback allowed)."""
    out = {}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('error', UserWarning)  # no compute-all fallback
        for mode in ('compute_all', 'dynamic'):
            model.inference_mode = mode
            out[mode] = model.predict(inputs)
    model.inference_mode = 'compute_all'
    return out['compute_all'], out['dynamic']


# ------------------------------------------------------- default placement
def test_timm_swap_by_model_name_gets_one_exit_per_main_stage():
    """resnet18 gives maps at reductions 2, 4, 8, 16, 32: the stride-2 stem
    map is no exit; the model equals one built with out_indices=(1,2,3,4)
    (same weights, same outputs)."""
    model = build(occam(timm('resnet18')))
    assert model.head.num_exits == 4
    # the backbone as built gives every map; the exits sit on maps 1..4
    assert model.backbone.timm_model.feature_info.out_indices == (
        0, 1, 2, 3, 4)
    assert model.backbone_stages.indices == [1, 2, 3, 4]
    assert model.backbone_stages.reductions == [4, 8, 16, 32]
    assert model.backbone_stages.channels == [64, 128, 256, 512]

    explicit = build(occam(timm('resnet18', out_indices=(1, 2, 3, 4))))
    for (k, a), (k2, b) in zip(model.state_dict().items(),
                               explicit.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    model.eval(), explicit.eval()
    x = torch.randn(2, 3, 32, 32)
    for a, b in zip(model(x, mode='tensor'), explicit(x, mode='tensor')):
        assert torch.equal(a, b)


def test_default_placement_builds_the_backbone_once(monkeypatch):
    """The exits are chosen from the backbone as built: no second build."""
    from mmpretrain.models.backbones import TIMMBackbone
    built = []
    init = TIMMBackbone.__init__

    def counting_init(self, *args, **kwargs):
        built.append(kwargs.get('out_indices'))
        init(self, *args, **kwargs)

    monkeypatch.setattr(TIMMBackbone, '__init__', counting_init)
    model = build(occam(timm('resnet18')))
    assert built == [None] and model.backbone_stages.indices == [1, 2, 3, 4]


@pytest.mark.parametrize('out_indices, reductions', [
    ((0, 1, 2, 3, 4), [2, 4, 8, 16, 32]),
    ((2, 4), [8, 32]),
])
def test_explicit_out_indices_are_kept(out_indices, reductions):
    model = build(occam(timm('resnet18', out_indices=out_indices)))
    assert model.head.num_exits == len(out_indices)
    assert model.backbone_stages.indices == list(out_indices)
    assert model.backbone_stages.reductions == reductions


def test_fewer_main_stages_give_fewer_exits():
    """Dilated (output_stride=8): maps at 2, 4, 8, 8, 8 -> the last map at
    reduction 4 and the last at 8."""
    model = build(occam(timm('resnet18', output_stride=8)))
    assert model.backbone_stages.indices == [1, 4]
    assert model.backbone_stages.reductions == [4, 8]
    assert model.head.num_exits == 2


def test_one_main_stage_is_a_clear_error():
    vit = timm('vit_tiny_patch16_224', img_size=32, depth=3, embed_dim=16,
               num_heads=2)  # three maps, all at reduction 16
    with pytest.raises(ValueError, match=r'reductions \[16, 16, 16\].*'
                       r'would be 1 \(< 2\).*model\.backbone\.out_indices'):
        build(occam(vit))


# ---------------------------------------------------- families end to end
@pytest.mark.parametrize('name, channels', [
    ('resnet18', [64, 128, 256, 512]),
    ('mobilenetv3_small_050', [8, 16, 24, 288]),
    ('convnext_atto', [40, 80, 160, 320]),
])
def test_timm_families_by_model_name_train_and_predict(name, channels):
    """A model_name-only swap builds 4 exits at reductions 4..32, trains a
    step and predicts the same in compute_all and dynamic mode."""
    model = build(occam(timm(name)))
    stages = model.backbone_stages
    assert stages.reductions == [4, 8, 16, 32] and stages.runnable
    assert stages.channels == channels and model.head.num_exits == 4
    # what TrainingStateHook does before training / at the epoch start
    prepare_from_dataset(model, dict(num_samples=4))
    reset_epoch_state(model, 0)
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    model.train()
    losses = model.train_step(batch(), optim)
    assert all(math.isfinite(float(v.detach())) for v in losses.values())
    model.eval()
    inputs = model.data_preprocessor(batch(), False)['inputs']
    full, dyn = predict_both(model, inputs)
    for a, b in zip(full, dyn):
        assert a.exit_idx == b.exit_idx
        assert torch.equal(a.pred_label, b.pred_label)
        torch.testing.assert_close(a.pred_score, b.pred_score)


# --------------------------------------------------------- extension point
class _TwoConvs(nn.Module):
    """A new backbone family: two strided convs, maps after each."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.b = nn.Conv2d(4, 6, 3, stride=2, padding=1)

    def forward(self, x):
        a = self.a(x)
        return a, self.b(a)


@pytest.fixture
def two_convs_describer():

    @register_describer(_TwoConvs)
    class _TwoConvsDescriber(StageDescriber):

        def describe(self, bb, in_channels, img_size):
            return BackboneStages(bb, 'TwoConvs', channels=[4, 6],
                                  reductions=[2, 4], indices=[0, 1],
                                  names=['a', 'b'], main=[True, True],
                                  stage_modules=[['a'], ['b']])

    yield
    stages_mod._DESCRIBERS.pop(_TwoConvs)


def test_registered_describer_runs_a_new_family(two_convs_describer):
    torch.manual_seed(0)
    model = MODELS.build(
        dict(occam(_TwoConvs()), data_preprocessor=None)).eval()
    stages = describe_backbone(model.backbone)
    assert stages.kind == 'TwoConvs' and stages.runnable
    x = torch.randn(3, 3, 16, 16)
    for e, g in zip(model.backbone(x), stages.forward_all(x)):
        assert torch.equal(e, g)
    full, dyn = predict_both(model, x)
    assert [a.exit_idx for a in full] == [b.exit_idx for b in dyn]
    for a, b in zip(full, dyn):
        torch.testing.assert_close(a.pred_score, b.pred_score)


def test_subclass_with_own_forward_is_not_split_by_parents_rule():
    """Describers are keyed by the class whose forward runs."""
    from mmpretrain.models.backbones import ResNet

    class Reversed(ResNet):

        def forward(self, x):
            return tuple(reversed(super().forward(x)))

    bb = Reversed(depth=18, base_channels=8, stem_channels=8,
                  out_indices=(0, 1, 2, 3))
    stages = describe_backbone(bb)  # dry run: reads what forward returns
    assert stages.channels == [64, 32, 16, 8] and not stages.runnable
    assert stages.reductions == [32, 16, 8, 4]


class _ThreeConvs(nn.Module):
    """A family that chooses its maps itself: three strided convs."""

    def __init__(self, strides=(2, 2, 2), default=True):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, stride=strides[0], padding=1)
        self.b = nn.Conv2d(4, 5, 3, stride=strides[1], padding=1)
        self.c = nn.Conv2d(5, 6, 3, stride=strides[2], padding=1)
        self.default = default

    def forward(self, x):
        a = self.a(x)
        b = self.b(a)
        return a, b, self.c(b)


@pytest.fixture
def three_convs_describer():
    MODELS.register_module(module=_ThreeConvs, force=True)

    @register_describer(_ThreeConvs)
    class _ThreeConvsDescriber(StageDescriber):

        def describe(self, bb, in_channels, img_size):
            r, reductions = 1, []
            for m in (bb.a, bb.b, bb.c):
                r *= m.stride[0]
                reductions.append(r)
            return BackboneStages(
                bb, 'ThreeConvs', channels=[4, 5, 6], reductions=reductions,
                indices=[0, 1, 2], names=['a', 'b', 'c'],
                main=stages_mod._main_by_reduction(reductions),
                stage_modules=[['a'], ['b'], ['c']])

        def leaves_maps_to_family(self, cfg):
            return cfg.get('default', True)

    yield
    stages_mod._DESCRIBERS.pop(_ThreeConvs)
    MODELS.module_dict.pop('_ThreeConvs')


def test_default_exits_select_maps_and_merge_stages(three_convs_describer):
    """Maps at reductions 2, 4, 8: exits on maps 1 and 2; the first exit's
    stage runs a then b; the model picks those maps from the backbone."""
    torch.manual_seed(0)
    model = MODELS.build(
        dict(occam(dict(type='_ThreeConvs')), data_preprocessor=None)).eval()
    stages = model.backbone_stages
    assert stages.indices == [1, 2] and stages.reductions == [4, 8]
    assert stages.channels == [5, 6] and model.neck.in_channels == [5, 6]
    assert stages.stage_modules == [['a', 'b'], ['c']]
    assert stages.positions == [1, 2]
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        _, b, c = model.backbone(x)
        picked = model.extract_feat(x, stage='backbone')
        staged = stages.forward_all(x)
    for want, got, run in zip((b, c), picked, staged):
        assert torch.equal(want, got) and torch.equal(want, run)
    full, dyn = predict_both(model, x)
    for a, d in zip(full, dyn):
        assert a.exit_idx == d.exit_idx
        torch.testing.assert_close(a.pred_score, d.pred_score)
    # a config that names its maps keeps them all
    chosen = MODELS.build(dict(occam(dict(type='_ThreeConvs', default=False)),
                               data_preprocessor=None))
    assert chosen.backbone_stages.indices == [0, 1, 2]
    assert chosen.backbone_stages.positions is None


def test_default_exits_before_the_last_map_are_a_clear_error(
        three_convs_describer):
    """Maps at reductions 4, 8, 64: the last map ends no main stage, so the
    backbone would compute past the last exit."""
    with pytest.raises(ValueError, match=r'reductions \[4, 8, 64\].*'
                       r'\(0, 1\), which leave map 2 after the last exit'):
        MODELS.build(dict(occam(dict(type='_ThreeConvs', strides=(4, 2, 8))),
                          data_preprocessor=None))

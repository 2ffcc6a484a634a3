"""Dynamic early exit: stage-by-stage backbones, same results as compute-all,
work really skipped, FLOPs recorded per sample."""
import math
import warnings

import pytest
import torch
from mmengine.optim import OptimWrapper

import occam_plugin  # noqa: F401  (registers)
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from occam_plugin.models.utils.training_state import reset_epoch_state
from occam_plugin.models.utils.stages import describe_backbone, take_samples

NUM_CLASSES = 4
RESNET = dict(type='ResNet', depth=18, base_channels=8, stem_channels=8,
              out_indices=(0, 1, 2, 3))
TIMM_RESNET = dict(type='TIMMBackbone', model_name='resnet18',
                   features_only=True, out_indices=(1, 2, 3, 4))


def _eval(module):
    module.eval()  # mmpretrain ResNet.train() returns None: no chaining
    return module


# ---------------------------------------------------------------- staged
@pytest.mark.parametrize('cfg', [
    RESNET,
    dict(RESNET, out_indices=(1, 3)),
    dict(type='ResNetV1d', depth=18, base_channels=8, stem_channels=8,
         out_indices=(0, 1, 2, 3)),
    dict(type='ResNet_CIFAR', depth=18, base_channels=8,
         out_indices=(0, 1, 2, 3)),
    dict(RESNET, frozen_stages=2, norm_eval=True),
    TIMM_RESNET,
    dict(type='TIMMBackbone', model_name='mobilenetv3_small_050',
         features_only=True, out_indices=(1, 2, 3)),
], ids=['resnet', 'resnet_out13', 'resnetv1d', 'resnet_cifar', 'frozen',
        'timm_resnet18', 'timm_mobilenetv3'])
def test_stage_runner_equals_forward(cfg):
    """The description's channels and reductions are those of the maps the
    backbone returns, and its stages give exactly those maps."""
    torch.manual_seed(0)
    bb = _eval(MODELS.build(cfg))
    staged = describe_backbone(bb)
    assert staged.runnable
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = bb(x)
        got = staged.forward_all(x)
    assert len(got) == len(expected) == staged.num_stages
    for e, g in zip(expected, got):
        assert torch.equal(e, g)
    assert staged.channels == [e.shape[1] for e in expected]
    assert staged.reductions == [32 // e.shape[-1] for e in expected]


def test_staged_backbone_train_mode_respects_norm_eval():
    """Same modules in the same mode: a norm_eval backbone in train mode
    keeps BN statistics frozen in the staged run as in its own forward."""
    torch.manual_seed(0)
    bb = MODELS.build(dict(RESNET, norm_eval=True))
    bb.train()
    staged = describe_backbone(bb)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        for e, g in zip(bb(x), staged.forward_all(x)):
            assert torch.equal(e, g)


@pytest.mark.parametrize('cfg, channels', [
    (dict(type='TIMMBackbone', model_name='resnet18', features_only=True,
          feature_cls='hook', out_indices=(1, 2)), [64, 128]),
    (dict(type='VAN', arch='tiny', out_indices=(0, 1, 2, 3)),
     [32, 64, 160, 256]),
], ids=['timm_hooknet', 'van'])
def test_unsplittable_backbone_is_described_without_runner(cfg, channels):
    """Unknown forward: channels and reductions still, but no stages."""
    bb = MODELS.build(cfg)
    staged = describe_backbone(bb)
    assert not staged.runnable
    assert staged.channels == channels
    assert staged.reductions == [4, 8, 16, 32][:len(channels)]
    with pytest.raises(RuntimeError, match='cannot be run stage by stage'):
        staged.run_stage(0, torch.zeros(1, 3, 32, 32))


def test_take_samples_tensor_and_tuple():
    a = torch.arange(12.).reshape(4, 3)
    idx = torch.tensor([0, 2])
    assert torch.equal(take_samples(a, idx), a[[0, 2]])
    got = take_samples((a, a + 1), idx)
    assert isinstance(got, tuple) and torch.equal(got[1], a[[0, 2]] + 1)
    with pytest.raises(TypeError, match='take_samples'):
        take_samples({'x': a}, idx)


# ---------------------------------------------------------------- model
def _batch(n, seed):
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randint(0, 256, (n, 3, 32, 32), generator=g,
                           dtype=torch.uint8)
    labels = torch.randint(0, NUM_CLASSES, (n, ), generator=g)
    samples = [
        DataSample(metainfo=dict(sample_idx=i)).set_gt_label(int(y))
        for i, y in enumerate(labels)
    ]
    return dict(inputs=list(inputs), data_samples=samples)


def _trained_model(backbone, steps=3):
    """An OccamClassifier after a few real optimisation steps."""
    torch.manual_seed(0)
    model = MODELS.build(
        dict(type='OccamClassifier', backbone=backbone,
             head=dict(type='OccamHead', num_classes=NUM_CLASSES),
             data_preprocessor=dict(type='ClsDataPreprocessor',
                                    mean=[127.5] * 3, std=[64.0] * 3,
                                    to_rgb=True)))
    model.head.gate_loss.resize_memory(8)
    reset_epoch_state(model, 0)
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.05,
                                         momentum=0.9))
    model.train()
    for step in range(steps):
        losses = model.train_step(_batch(8, step), optim)
        assert all(math.isfinite(float(v.detach())) for v in losses.values())
    model.eval()
    return model


@pytest.fixture(scope='module')
def resnet_model():
    return _trained_model(RESNET)


@pytest.fixture(scope='module')
def timm_model():
    return _trained_model(TIMM_RESNET)


def _predict(model, inputs, mode):
    model.inference_mode = mode
    try:
        with torch.no_grad():
            return model.predict(inputs)
    finally:
        model.inference_mode = 'compute_all'


def _assert_same(model, inputs):
    """Dynamic == compute-all; returns the dynamic exit indices."""
    head = model.head
    full = _predict(model, inputs, 'compute_all')
    dyn = _predict(model, inputs, 'dynamic')
    exits = []
    for a, b in zip(full, dyn):
        assert b.exit_idx == a.exit_idx
        assert torch.equal(b.pred_label, a.pred_label)
        torch.testing.assert_close(b.pred_score, a.pred_score)
        k = b.exit_idx
        # computed exits: min_inference_exit..k, equal to compute-all
        done = slice(head.min_inference_exit, k + 1)
        torch.testing.assert_close(b.exit_scores[done], a.exit_scores[done])
        torch.testing.assert_close(b.exit_gates[done], a.exit_gates[done])
        # exits not computed: NaN (below the first inference exit, after k)
        for j in list(range(head.min_inference_exit)) + list(
                range(k + 1, head.num_exits)):
            assert torch.isnan(b.exit_scores[j]).all()
            assert torch.isnan(b.exit_gates[j])
        assert not torch.isnan(a.exit_scores).any()
        exits.append(k)
    return exits, full, dyn


def _inputs(model, n, seed=10):
    return model.data_preprocessor(_batch(n, seed), False)['inputs']


@pytest.mark.parametrize('which', ['resnet_model', 'timm_model'])
def test_dynamic_equals_compute_all_mixed_batch(which, request):
    model = request.getfixturevalue(which)
    head = model.head
    x = _inputs(model, 6)
    full = _predict(model, x, 'compute_all')
    # threshold in the middle of the widest gap between exit-1 gates, so
    # some samples leave at exit 1 and the rest go on (batch shrinks)
    g = torch.stack([s.exit_gates[1] for s in full]).sort().values
    gaps = g[1:] - g[:-1]
    j = int(gaps[1:-1].argmax()) + 1  # keep >= 2 samples on either side
    old = head.exit_threshold
    head.exit_threshold = float(g[j] + gaps[j] / 2)
    try:
        exits, _, _ = _assert_same(model, x)
    finally:
        head.exit_threshold = old
    assert exits.count(1) >= 2 and sum(k > 1 for k in exits) >= 2, exits


@pytest.mark.parametrize('which', ['resnet_model', 'timm_model'])
@pytest.mark.parametrize('n', [1, 5], ids=['batch1', 'batch5'])
# 1.0: the random gates stay below it, so nobody exits before the last exit
# (gates saturated to 1.0 would exit; see test_occam_model.py)
@pytest.mark.parametrize('threshold,expected_exit', [(0.0, 1), (1.0, 3)],
                         ids=['all_early', 'none_early'])
def test_dynamic_equals_compute_all_controlled(which, n, threshold,
                                               expected_exit, request):
    model = request.getfixturevalue(which)
    old = model.head.exit_threshold
    model.head.exit_threshold = threshold
    try:
        exits, full, dyn = _assert_same(model, _inputs(model, n))
    finally:
        model.head.exit_threshold = old
    assert exits == [expected_exit] * n
    # FLOPs: compute-all spends the whole model; dynamic the stages it ran
    # plus the exits it computed (min_inference_exit..exit)
    prof = model.flop_profile((3, 32, 32))
    assert all(s.flops == prof['compute_all'] for s in full)
    k = expected_exit
    spent = sum(prof['stage'][:k + 1]) + sum(prof['exit'][1:k + 1])
    assert all(s.flops == spent for s in dyn)
    if k == 3:  # every exit but exit 0: compute-all minus exit 0
        assert spent == prof['compute_all'] - prof['exit'][0]
    assert spent < prof['compute_all']


def test_dynamic_really_skips_stages(resnet_model):
    """Batch of 1 exiting at exit 1: stages 2 and 3 never run, exit 0 and
    exits 2, 3 are never computed (counted with forward hooks)."""
    model, head = resnet_model, resnet_model.head
    calls = []
    mods = dict(layer1=model.backbone.layer1, layer3=model.backbone.layer3,
                layer4=model.backbone.layer4, exit0=model.neck.exits[0],
                exit1=model.neck.exits[1], exit2=model.neck.exits[2])
    handles = [m.register_forward_hook(
        lambda mod, i, o, name=name: calls.append(name))
        for name, m in mods.items()]
    old = head.exit_threshold
    head.exit_threshold = 0.0
    try:
        _predict(model, _inputs(model, 1), 'dynamic')
        dyn_calls = list(calls)
        calls.clear()
        _predict(model, _inputs(model, 1), 'compute_all')
    finally:
        head.exit_threshold = old
        for h in handles:
            h.remove()
    assert dyn_calls == ['layer1', 'exit1']
    assert sorted(calls) == sorted(mods)


def test_dynamic_shrinks_batch(resnet_model):
    """The later stages see only the samples that did not exit."""
    model, head = resnet_model, resnet_model.head
    x = _inputs(model, 6)
    full = _predict(model, x, 'compute_all')
    g = torch.stack([s.exit_gates[1] for s in full])
    head.exit_threshold = float(g.sort().values[2:4].mean())  # 3 exit at 1
    sizes = []
    h = model.backbone.layer3.register_forward_hook(
        lambda m, i, o: sizes.append(o.shape[0]))
    try:
        dyn = _predict(model, x, 'dynamic')
    finally:
        h.remove()
        head.exit_threshold = 0.5
    assert sizes == [sum(s.exit_idx > 1 for s in dyn)] == [3]


def test_no_gates_runs_only_last_exit():
    torch.manual_seed(0)
    model = _eval(MODELS.build(
        dict(type='OccamClassifier', backbone=RESNET,
             head=dict(type='OccamHead', num_classes=NUM_CLASSES,
                       use_gates=False))))
    x = torch.randn(3, 3, 32, 32)
    full = _predict(model, x, 'compute_all')
    dyn = _predict(model, x, 'dynamic')
    for a, b in zip(full, dyn):
        assert a.exit_idx == b.exit_idx == 3
        torch.testing.assert_close(a.pred_score, b.pred_score)
        assert torch.isnan(b.exit_scores[:3]).all()
        assert float(b.exit_gates[3]) == 1.0


def test_unsplittable_backbone_falls_back_to_compute_all():
    torch.manual_seed(0)
    model = _eval(MODELS.build(
        dict(type='OccamClassifier',
             backbone=dict(TIMM_RESNET, feature_cls='hook'),
             head=dict(type='OccamHead', num_classes=NUM_CLASSES),
             inference_mode='dynamic')))
    x = torch.randn(2, 3, 32, 32)
    with pytest.warns(UserWarning, match='falling back to compute-all'):
        with torch.no_grad():
            res = model.predict(x)
    assert not torch.isnan(torch.stack([r.exit_scores for r in res])).any()


def test_bad_inference_mode_is_named():
    with pytest.raises(ValueError, match="inference_mode='fast'"):
        MODELS.build(
            dict(type='OccamClassifier', backbone=RESNET,
                 head=dict(type='OccamHead', num_classes=NUM_CLASSES),
                 inference_mode='fast'))


def test_dynamic_mode_from_config_in_test_step(resnet_model):
    """The config switch works through the normal test_step path."""
    model = resnet_model
    model.inference_mode = 'dynamic'
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('error')  # no fallback warning
            out = model.test_step(_batch(3, 5))
    finally:
        model.inference_mode = 'compute_all'
    assert len(out) == 3 and all('flops' in s for s in out)

"""Learning from Failure: per-sample EMA state, weights and checkpoints."""
import pytest
import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import occam_plugin  # noqa: F401  (registers)
from occam_plugin.errors import MissingKeyError


def tiny_mlp(head_type='MethodLinearClsHead'):
    return dict(
        type='ImageClassifier',
        backbone=dict(type='MLPBackbone', in_channels=3, img_size=8,
                      hidden_dims=(8, )),
        head=dict(type=head_type, num_classes=2, in_channels=8))


def build_lff(**kwargs):
    return MODELS.build(dict(type='LfFClassifier', biased_model=tiny_mlp(),
                             **kwargs))


def batch(idx, labels):
    out = []
    for i, y in zip(idx, labels):
        ds = DataSample().set_gt_label(y)
        ds.set_metainfo(dict(sample_idx=i))
        out.append(ds)
    return out


def two_updates(model):
    # samples 0, 1, 2 with classes 0, 1, 1
    model.update_ema(torch.tensor([0, 2]), torch.tensor([0, 1]),
                     torch.tensor([1.0, 2.0]), torch.tensor([0.5, 1.0]))
    model.update_ema(torch.tensor([2, 1]), torch.tensor([1, 1]),
                     torch.tensor([4.0, 3.0]), torch.tensor([0.2, 2.0]))


def test_ema_after_two_updates_and_weight():
    model = build_lff(num_samples=3)
    two_updates(model)
    # first update of a sample sets its CE; sample 2: 0.7*2 + 0.3*4 = 2.6
    assert model.ema_biased.tolist() == pytest.approx([1.0, 3.0, 2.6])
    # debiased: sample 2: 0.7*1.0 + 0.3*0.2 = 0.76
    assert model.ema_debiased.tolist() == pytest.approx([0.5, 2.0, 0.76])
    assert model.sample_label.tolist() == [0, 1, 1]
    w = model.sample_weights(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 1]))
    # class max: biased c0 = 1.0, c1 = 3.0; debiased c0 = 0.5, c1 = 2.0
    # s0: 1/1, 0.5/0.5 -> 0.5; s1: 3/3, 2/2 -> 0.5
    # s2: L_B = 2.6/3 = 0.866667, L_D = 0.76/2 = 0.38 -> 0.866667/1.246667
    assert w.tolist() == pytest.approx([0.5, 0.5, 0.695187], abs=1e-5)


def test_memory_grows_for_unseen_index():
    model = build_lff()  # no hook: buffers start empty
    model.update_ema(torch.tensor([4]), torch.tensor([1]), torch.tensor([1.0]),
                     torch.tensor([2.0]))
    assert model.ema_biased.numel() == 5
    assert model.ema_updated.tolist() == [False] * 4 + [True]


def test_state_exact_after_save_load_with_resize(tmp_path):
    model = build_lff(num_samples=3)
    two_updates(model)
    path = tmp_path / 'lff.pth'
    torch.save(model.state_dict(), path)
    state = torch.load(path, weights_only=True)
    for num_samples in (0, 10):  # smaller and larger than the checkpoint
        fresh = build_lff(num_samples=num_samples)
        fresh.load_state_dict(state)
        for name in ('ema_biased', 'ema_debiased', 'ema_updated',
                     'sample_label'):
            assert torch.equal(getattr(fresh, name), getattr(model, name))
        # training goes on from the restored EMA: 0.7 * 2.6 + 0.3 * 1.0
        fresh.update_ema(torch.tensor([2]), torch.tensor([1]),
                         torch.tensor([1.0]), torch.tensor([1.0]))
        assert fresh.ema_biased[2].item() == pytest.approx(2.12)


def test_loss_step_trains_both_and_predicts_with_debiased():
    torch.manual_seed(0)
    model = build_lff(num_samples=4)
    x = torch.rand(4, 3, 8, 8)
    ds = batch([0, 1, 2, 3], [0, 1, 0, 1])
    losses = model.loss(x, ds)
    assert {'biased.loss_gce', 'debiased.loss',
            'lff_weight_mean'} <= set(losses)
    assert bool(model.ema_updated.all())
    # the gradient of the debiased loss reaches only the debiased model
    losses['debiased.loss'].backward()
    assert model.debiased_model.head.fc.weight.grad is not None
    assert model.biased_model.head.fc.weight.grad is None
    preds = model.predict(x, batch([0, 1, 2, 3], [0, 1, 0, 1]))
    out = model.debiased_model.predict(x)
    assert [p.pred_label.item() for p in preds] == [
        p.pred_label.item() for p in out]


def test_weights_logged_by_alignment():
    # W of the aligned and of the conflicting samples of the batch, and the
    # debiased model's accuracy on the conflicting ones: logged, not losses
    torch.manual_seed(0)
    model = build_lff(num_samples=4)
    x = torch.rand(4, 3, 8, 8)
    ds = batch([0, 1, 2, 3], [0, 1, 0, 1])
    for d, a in zip(ds, [True, True, True, False]):
        d.set_field(a, 'bias_aligned', field_type='metainfo')
    losses = model.loss(x, ds)
    w = model.sample_weights(torch.arange(4), torch.tensor([0, 1, 0, 1]))
    assert losses['lff_weight_aligned'].item() == pytest.approx(
        w[:3].mean().item())
    assert losses['lff_weight_conflicting'].item() == pytest.approx(
        w[3].item())
    assert losses['lff_train_acc_conflicting'].item() in (0.0, 100.0)
    assert not any('loss' in k for k in losses if k.startswith('lff_'))
    # only aligned samples: no conflicting value; no flag: nothing
    for d in ds:
        d.set_field(True, 'bias_aligned', field_type='metainfo')
    assert 'lff_weight_conflicting' not in model.loss(x, ds)
    assert 'lff_weight_aligned' not in model.loss(
        x, batch([0, 1, 2, 3], [0, 1, 0, 1]))


def test_debiased_head_must_take_sample_weight():
    with pytest.raises(TypeError, match='MethodLinearClsHead'):
        MODELS.build(dict(type='LfFClassifier',
                          biased_model=tiny_mlp('LinearClsHead')))


def test_missing_sample_idx_is_clear():
    model = build_lff(num_samples=2)
    ds = [DataSample().set_gt_label(0), DataSample().set_gt_label(1)]
    with pytest.raises(MissingKeyError, match='sample_idx'):
        model.loss(torch.rand(2, 3, 8, 8), ds)


class _TrainSet:
    """``n`` samples of class 0, as ``training_set_info`` reads them."""

    metainfo = dict(classes=('a', 'b'))

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def get_data_info(self, i):
        return dict(gt_label=0)


@pytest.mark.slow
@pytest.mark.parametrize('mode', ['error', 'reinit'])
def test_resume_on_a_training_set_of_another_size(mode):
    """The EMAs of a resumed run belong to its checkpoint's training set:
    another size stops, or on request re-initialises."""
    import logging
    from types import SimpleNamespace

    from occam_plugin.engine.hooks import TrainingStateHook
    from occam_plugin.models.utils.training_state import (
        TrainingStateMismatch)
    model = build_lff()
    two_updates(model)  # the resumed state: 3 samples
    runner = SimpleNamespace(
        model=model, iter=6, logger=logging.getLogger('test_lff'),
        train_dataloader=SimpleNamespace(dataset=_TrainSet(5)))
    hook = TrainingStateHook(on_new_train_size=mode)
    if mode == 'error':
        with pytest.raises(TrainingStateMismatch) as err:
            hook.before_train(runner)
        assert 'ema_biased (3 rows)' in str(err.value)
        assert 'has 5 samples' in str(err.value)
        assert model.ema_biased.numel() == 3  # untouched
    else:
        hook.before_train(runner)
        assert model.ema_biased.numel() == 5
        assert not model.ema_updated.any()  # re-initialised


def test_backbone_options_name_where_the_lff_trunk_lives(tmp_path):
    """``model.backbone.*`` on an LfF config ended in
    ``TypeError: LfFClassifier.__init__() got an unexpected keyword argument
    'backbone'`` after the data were built; LfF's trunks live in
    ``model.biased_model`` (the debiased model is its copy)."""
    import os.path as osp

    from tests.helpers import REPO, load_tool
    config = osp.join(REPO, 'configs', 'lff',
                      'lff_resnet18-w16_1xb64_10e_biased-mnist-small.py')
    work_dir = tmp_path / 'run'
    with pytest.raises(SystemExit) as err:
        load_tool('train.py').main(
            [config, '--work-dir', str(work_dir), '--cfg-options',
             'model.backbone.base_channels=8'])
    msg = str(err.value)
    assert "model (LfFClassifier) has no 'backbone'" in msg, msg
    assert 'it is at model.biased_model.backbone' in msg
    assert '--cfg-options model.biased_model.backbone.base_channels=' in msg
    assert not work_dir.exists()
    # the path the message names is taken, by both models
    from mmengine.config import Config

    from occam_plugin.engine.runner import merge_cfg_options
    cfg = merge_cfg_options(Config.fromfile(config), {
        'model.biased_model.backbone.base_channels': 8,
        'model.biased_model.backbone.stem_channels': 8})
    model = MODELS.build(cfg.model)
    for part in (model.biased_model, model.debiased_model):
        assert part.backbone.base_channels == 8

"""Bias-mitigation method modules against numbers computed by hand."""
import math

import pytest
import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import occam_plugin  # noqa: F401  (registers)
from occam_plugin.errors import MissingKeyError
from occam_plugin.models.classifiers.lff_classifier import relative_difficulty
from occam_plugin.models.methods import BaseMethod

LN3 = math.log(3.0)


def samples(**fields):
    """DataSamples with the given per-sample data fields."""
    n = len(next(iter(fields.values())))
    out = []
    for i in range(n):
        ds = DataSample()
        for k, v in fields.items():
            ds.set_field(v[i], k)
        out.append(ds)
    return out


def test_gce_values_and_detached_weight():
    gce = MODELS.build(dict(type='GeneralizedCELoss', q=0.7))
    logits = torch.tensor([[LN3, 0.0], [0.0, 0.0]], requires_grad=True)
    gt = torch.tensor([0, 1])
    per = gce(logits, gt, reduction_override='none')
    # p_gt = 0.75 -> CE = -ln 0.75 = 0.287682, weight 0.75^0.7 * 0.7 = 0.572316
    # p_gt = 0.5  -> CE = ln 2 = 0.693147,    weight 0.5^0.7 * 0.7 = 0.430901
    assert per.tolist() == pytest.approx([0.164647, 0.298677], abs=1e-5)
    loss = gce(logits, gt)
    assert loss.item() == pytest.approx((0.164647 + 0.298677) / 2, abs=1e-5)
    loss.backward()
    # p_gt detached: d/dz0 of sample 0 = weight * (p0 - 1) / N
    #   = 0.572316 * (-0.25) / 2 = -0.071540
    assert logits.grad[0, 0].item() == pytest.approx(-0.071540, abs=1e-5)


def test_gce_rejects_bad_q():
    with pytest.raises(ValueError, match='q must be in'):
        MODELS.build(dict(type='GeneralizedCELoss', q=0.0))


def test_spectral_decoupling():
    sd = MODELS.build(dict(type='SpectralDecoupling', sd_lambda=0.5))
    logits = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    # mean l = 2; ||z||^2 = 5 and 1, mean 3 -> 2 + 0.5 / 2 * 3 = 2.75
    out = sd(torch.tensor([1.0, 3.0]), logits, torch.tensor([0, 1]), None)
    assert out.item() == pytest.approx(2.75)


def test_group_upweighting_weights():
    upwt = MODELS.build(dict(type='GroupUpweighting', group_counts=[6, 2, 2]))
    # N = 10, 3 groups: w = 10 / (3 * n_g) = 0.555556, 1.666667, 1.666667
    assert upwt.group_weights().tolist() == pytest.approx(
        [0.555556, 1.666667, 1.666667], abs=1e-5)
    loss = torch.tensor([1.0, 2.0, 3.0, 4.0])
    out = upwt(loss, torch.zeros(4, 2), torch.zeros(4, dtype=torch.long),
               samples(group_idx=[0, 1, 2, 0]))
    # (0.555556 * (1 + 4) + 1.666667 * (2 + 3)) / 4 = 2.777778
    assert out.item() == pytest.approx(2.777778, abs=1e-5)


def test_group_upweighting_empty_group_and_hook_counts():
    upwt = MODELS.build(dict(type='GroupUpweighting'))
    with pytest.raises(RuntimeError, match='TrainingStateHook'):
        upwt(torch.ones(1), torch.zeros(1, 2), torch.zeros(1).long(),
             samples(group_idx=[0]))
    # what the hook passes: groups of 10 training samples, one empty group
    upwt.prepare_from_dataset(
        dict(group_idx=[0] * 6 + [2] * 4, num_groups=3))
    # 2 non-empty groups: w0 = 10 / (2 * 6) = 0.833333,
    # w2 = 10 / (2 * 4) = 1.25
    assert upwt.group_weights().tolist() == pytest.approx(
        [0.833333, 0.0, 1.25], abs=1e-5)
    with pytest.raises(ValueError, match='positive count'):
        upwt(torch.ones(1), torch.zeros(1, 2), torch.zeros(1).long(),
             samples(group_idx=[1]))


def test_group_upweighting_missing_key_is_clear():
    upwt = MODELS.build(dict(type='GroupUpweighting', group_counts=[1, 1]))
    with pytest.raises(MissingKeyError, match='group_idx'):
        upwt(torch.ones(1), torch.zeros(1, 2), torch.zeros(1).long(),
             samples(bias_label=[0]))


def test_group_dro_two_steps():
    dro = MODELS.build(dict(type='GroupDRO', num_groups=2, eta=1.0))
    dro.train()
    logits, gt = torch.zeros(3, 2), torch.zeros(3, dtype=torch.long)
    # step 1: group losses (1+2)/2 = 1.5 and 3; q = [.5 e^1.5, .5 e^3] / sum
    #   = [0.182426, 0.817574]; loss = 1.5 * 0.182426 + 3 * 0.817574
    out = dro(torch.tensor([1.0, 2.0, 3.0]), logits, gt,
              samples(group_idx=[0, 0, 1]))
    assert dro.q[0].tolist() == pytest.approx([0.182426, 0.817574], abs=1e-5)
    assert out.item() == pytest.approx(2.726362, abs=1e-5)
    # step 2: group losses (1 + 2)/2 = 1.5 and 0.4;
    #   q = [0.182426 e^1.5, 0.817574 e^0.4] / sum = [0.401312, 0.598688]
    out = dro(torch.tensor([0.4, 1.0, 2.0]), logits, gt,
              samples(group_idx=[1, 0, 0]))
    assert dro.q[0].tolist() == pytest.approx([0.401312, 0.598688], abs=1e-5)
    assert out.item() == pytest.approx(0.841444, abs=1e-5)


def test_group_dro_per_exit_rows_and_eval_freezes_q():
    dro = MODELS.build(dict(type='GroupDRO', num_groups=2, eta=1.0))
    loss, z = torch.tensor([1.0, 3.0]), torch.zeros(2, 2)
    gt = torch.zeros(2).long()
    dro(loss, z, gt, samples(group_idx=[0, 1]), exit_idx=2)
    assert dro.q.shape == (3, 2)
    # only exit 2 moved: [e^1, e^3] / sum = [0.119203, 0.880797]
    assert dro.q[2].tolist() == pytest.approx([0.119203, 0.880797], abs=1e-5)
    assert dro.q[0].tolist() == [0.5, 0.5]
    dro.eval()
    dro(loss, z, gt, samples(group_idx=[0, 1]), exit_idx=2)
    assert dro.q[2].tolist() == pytest.approx([0.119203, 0.880797], abs=1e-5)
    # several exits in one step, then one backward (the OccamHead pattern)
    dro.train()
    logits = torch.zeros(2, 2, requires_grad=True)
    per = torch.tensor([1.0, 3.0], requires_grad=True)
    total = sum(dro(per * (k + 1), logits, gt, samples(group_idx=[0, 1]),
                    exit_idx=k) for k in range(3))
    total.backward()
    assert per.grad is not None
    # state survives a load into a freshly built module (resized on load)
    fresh = MODELS.build(dict(type='GroupDRO', num_groups=2))
    fresh.load_state_dict(dro.state_dict())
    assert torch.equal(fresh.q, dro.q)


def test_pgi_penalty_from_bias_aligned():
    pgi = MODELS.build(dict(type='PGILoss', pgi_lambda=2.0))
    # class 0: two aligned samples with softmax [.75, .25] (majority),
    #          one conflicting with [.5, .5];  class 1: one group only.
    logits = torch.tensor([[LN3, 0.0], [LN3, 0.0], [0.0, 0.0], [0.0, 5.0]])
    gt = torch.tensor([0, 0, 0, 1])
    ds = samples(bias_aligned=[True, True, False, True])
    # KL([.75,.25] || [.5,.5]) = .75 ln 1.5 + .25 ln .5 = 0.130812
    assert pgi.invariance_penalty(
        logits, gt, torch.tensor([1, 1, 0, 1])).item() == pytest.approx(
            0.130812, abs=1e-5)
    out = pgi(torch.ones(4), logits, gt, ds)
    assert out.item() == pytest.approx(1.0 + 2.0 * 0.130812, abs=1e-5)


def test_pgi_groups_from_bias_exit_on_occam():
    pgi = MODELS.build(dict(type='PGILoss', pgi_lambda=1.0))
    gt = torch.tensor([0, 0, 0])
    ds = samples(gt_label=[0, 0, 0])  # no bias annotations
    # exit 0 (bias-amplified) right on samples 0, 1, wrong on 2: no penalty
    exit0 = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # exit 1: groups {0,1} (correct at exit 0, majority) and {2}
    exit1 = torch.tensor([[LN3, 0.0], [LN3, 0.0], [0.0, 0.0]])
    exits = [exit0, exit1]
    # the groups come from exit_logits, not from an earlier call: exit 1
    # first gives the same value (no state between calls)
    out = pgi(torch.ones(3), exit1, gt, ds, exit_idx=1, exit_logits=exits)
    assert out.item() == pytest.approx(1.130812, abs=1e-5)
    assert pgi(torch.ones(3), exit0, gt, ds, exit_idx=0,
               exit_logits=exits).item() == 1.0
    assert pgi(torch.ones(3), exit1, gt, ds, exit_idx=1,
               exit_logits=exits).item() == pytest.approx(1.130812, abs=1e-5)
    with pytest.raises(RuntimeError, match='bias_exit=0, got None'):
        pgi(torch.ones(3), exit1, gt, ds, exit_idx=1)
    with pytest.raises(MissingKeyError, match='no bias-amplified exit'):
        pgi(torch.ones(3), exit1, gt, ds)  # plain model, no annotations


def test_plug_point_passes_exit_logits_only_to_methods_that_ask():
    # OccamHead gives PGI every exit's logits; a method without
    # NEEDS_EXIT_LOGITS keeps the documented five-argument signature
    head = MODELS.build(dict(type='OccamHead', num_classes=2,
                             in_channels=[2, 2], use_gates=False,
                             gate_weighting=False, cam_suppression=None,
                             method=dict(type='PGILoss')))
    torch.manual_seed(0)
    seen = []

    class Plain(BaseMethod):

        def forward(self, loss, logits, gt, data_samples, exit_idx):
            seen.append(exit_idx)
            return loss.sum()

    feats = [torch.randn(3, 2, 2, 2), torch.randn(3, 2, 2, 2)]
    ds = samples(gt_label=[0, 1, 0])
    for d, y in zip(ds, [0, 1, 0]):
        d.set_gt_label(y)
    outs = head.forward_exits(feats)
    gt = torch.tensor([0, 1, 0])
    ce1 = torch.nn.functional.cross_entropy(outs['logits'][1], gt,
                                            reduction='none')
    groups = (outs['logits'][0].argmax(1) == gt).long()
    expected = ce1.mean() + head.method.invariance_penalty(
        outs['logits'][1], gt, groups)
    losses = head.loss(feats, ds, outs=outs)
    assert losses['loss_ce_e1'].item() == pytest.approx(expected.item(),
                                                        abs=1e-6)
    head.method = Plain()
    losses = head.loss(feats, ds, outs=outs)
    assert seen == [0, 1]
    assert losses['loss_ce_e1'].item() == pytest.approx(ce1.sum().item(),
                                                        abs=1e-6)


def test_lff_relative_difficulty_weight():
    # class-normalised EMAs: L_B = 0.6 / 1.2 = 0.5, L_D = 0.3 / 0.9 = 1/3
    w = relative_difficulty(torch.tensor([0.6 / 1.2]),
                            torch.tensor([0.3 / 0.9]))
    # W = 0.5 / (0.5 + 0.333333 + 1e-8) = 0.6
    assert w.item() == pytest.approx(0.6, abs=1e-6)


def test_debias_head_sample_weight_and_method():
    head = MODELS.build(dict(
        type='MethodLinearClsHead', num_classes=2, in_channels=2,
        method=dict(type='SpectralDecoupling', sd_lambda=1.0)))
    with torch.no_grad():
        head.fc.weight.copy_(torch.eye(2))
        head.fc.bias.zero_()
    feats = (torch.tensor([[LN3, 0.0], [0.0, 0.0]]), )
    ds = samples(gt_label=[0, 1])
    for d, y in zip(ds, [0, 1]):
        d.set_gt_label(y)
    out = head.loss(feats, ds, sample_weight=torch.tensor([2.0, 0.0]))
    # CE = 0.287682 (x2) and 0.693147 (x0): mean 0.287682;
    # SD: ||z||^2 = ln(3)^2 = 1.206949 and 0, mean 0.603474, / 2 = 0.301737
    assert out['loss'].item() == pytest.approx(0.287682 + 0.301737, abs=1e-5)


def test_group_dro_restored_q_of_another_group_count_is_refused():
    """q restored from a checkpoint of a 4-group training set, resumed
    on a training set of the same size with 2 groups: refused, naming both
    counts (it kept 4 columns, two for groups that do not exist)."""
    from types import SimpleNamespace
    from occam_plugin.engine.hooks.training_state_hook import (
        TrainingStateHook)
    from occam_plugin.models.utils.training_state import (
        TrainingStateMismatch)
    four = dict(num_groups=4, group_idx=torch.tensor([0, 1, 2, 3]),
                dataset_name='Four')
    dro = MODELS.build(dict(type='GroupDRO', eta=1.0))
    dro.prepare_from_dataset(four)
    dro.train()
    dro(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.zeros(4, 2),
        torch.zeros(4, dtype=torch.long), samples(group_idx=[0, 1, 2, 3]))
    state = dro.state_dict()
    same = MODELS.build(dict(type='GroupDRO'))
    same.load_state_dict(state)
    same.prepare_from_dataset(four)  # the same groups: q kept
    assert torch.equal(same.q, dro.q)
    two = dict(num_groups=2, group_idx=torch.tensor([0, 1, 1, 0]),
               dataset_name='Two')
    other = MODELS.build(dict(type='GroupDRO'))
    other.load_state_dict(state)
    with pytest.raises(TrainingStateMismatch,
                       match=r"q have 4 groups, but the training set \(Two\)"
                       r" has 2"):
        other.prepare_from_dataset(two)
    # no metainfo count: the largest id + 1
    with pytest.raises(TrainingStateMismatch, match='has 2'):
        other.prepare_from_dataset(dict(two, num_groups=None))
    # a config's num_groups against the checkpoint's
    cfg5 = MODELS.build(dict(type='GroupDRO', num_groups=5))
    cfg5.load_state_dict(state)
    with pytest.raises(TrainingStateMismatch,
                       match='4 groups, but num_groups of the config has 5'):
        cfg5.prepare_from_dataset(four)

    # the hook lets the mismatch end the run (tools: one line, exit 1)
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dro = other

    class TwoGroups:
        metainfo = dict(num_groups=2)

        def __len__(self):
            return 4

        def get_data_info(self, i):
            return dict(gt_label=0, group_idx=[0, 1, 1, 0][i])

    runner = SimpleNamespace(model=Net(), iter=8,
                             train_dataloader=SimpleNamespace(
                                 dataset=TwoGroups()))
    with pytest.raises(TrainingStateMismatch, match='q have 4 groups'):
        TrainingStateHook().before_train(runner)

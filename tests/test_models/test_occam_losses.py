"""OccamNet losses against numbers worked out by hand on tiny tensors.

Shorthands used in the comments: ``KL*`` = KL(uniform || softmax) of a
2-class cell whose logits differ by ln 3 (softmax 3/4, 1/4):
``-ln2 - (ln(3/4) + ln(1/4)) / 2 = ln2 - ln3 / 2 = 0.1438410362``;
a cell with equal logits has KL = 0.
"""
import math

import pytest
import torch

import occam_plugin  # noqa: F401  (registers)
from mmpretrain.registry import MODELS

LN2 = 0.6931471806
LN3 = 1.0986122887
KL_STAR = 0.1438410362


def build(cfg):
    return MODELS.build(cfg)


# ------------------------------------------------------------- CAM suppression
def _cams():
    """2 samples, 2 classes, 2x2 CAMs (see the comments for each cell)."""
    cams = torch.zeros(2, 2, 2, 2)
    # sample 0, gt 0: GT map [[0, 4], [1, 7]], mean 3 -> cells (0,0), (1,0)
    # suppressed; (0,1), (1,1) are above the mean (class-1 value 9 there would
    # cost a lot if it were counted).
    cams[0, 0] = torch.tensor([[0., 4.], [1., 7.]])
    cams[0, 1] = torch.tensor([[0., 9.], [1. - LN3, 9.]])
    # (0,0): logits (0, 0) -> KL 0;  (1,0): logits (1, 1 - ln3) -> KL*
    # sample 1, gt 1: GT map [[2, 0], [0, 2]], mean 1 -> (0,1), (1,0)
    # suppressed; class-0 value -20 on the kept cells would cost a lot.
    cams[1, 1] = torch.tensor([[2., 0.], [0., 2.]])
    cams[1, 0] = torch.tensor([[-20., LN3], [0., -20.]])
    # (0,1): logits (ln3, 0) -> KL*;  (1,0): logits (0, 0) -> KL 0
    return cams, torch.tensor([0, 1])


def test_cam_suppression_masks_cells_below_mean():
    cams, gt = _cams()
    loss = build(dict(type='CAMSuppressionLoss', loss_weight=1.0))(cams, gt)
    # 2 x KL* over all 8 cells of the batch
    assert loss.item() == pytest.approx(2 * KL_STAR / 8, abs=1e-6)
    assert loss.item() == pytest.approx(0.0359602591, abs=1e-6)


def test_cam_suppression_weight_and_uniform_cells():
    cams, gt = _cams()
    loss = build(dict(type='CAMSuppressionLoss'))(cams, gt)  # weight 0.1
    assert loss.item() == pytest.approx(0.00359602591, abs=1e-7)
    # all classes equal at every cell: softmax is uniform, KL 0 everywhere
    flat = torch.arange(12.).reshape(1, 1, 3, 4).repeat(2, 3, 1, 1)
    zero = build(dict(type='CAMSuppressionLoss', loss_weight=1.0))(
        flat, torch.tensor([2, 0]))
    assert zero.item() == pytest.approx(0.0, abs=1e-7)


def test_cam_suppression_gradient_only_on_suppressed_cells():
    cams, gt = _cams()
    cams.requires_grad_(True)
    loss = build(dict(type='CAMSuppressionLoss', loss_weight=1.0))
    loss(cams, gt).backward()
    g = cams.grad
    # kept cells (above the mean) get no gradient in any class
    assert g[0, :, 0, 1].abs().sum() == 0 and g[0, :, 1, 1].abs().sum() == 0
    assert g[1, :, 0, 0].abs().sum() == 0 and g[1, :, 1, 1].abs().sum() == 0
    # the suppressed KL* cell does: dKL/dz0 = p0 - 1/2 = 3/4 - 1/2, / 8 cells
    assert g[0, 0, 1, 0].item() == pytest.approx(0.25 / 8, abs=1e-6)


def test_cam_suppression_bad_shape():
    with pytest.raises(ValueError, match=r'\[N, C, h, w\]'):
        build(dict(type='CAMSuppressionLoss'))(torch.zeros(2, 3),
                                               torch.tensor([0, 1]))


# ---------------------------------------------------------- gate-weighted CE
def _ce(**kw):
    return build(dict(type='GateWeightedCELoss', num_exits=2, **kw))


def test_exit0_weight_is_p_gt_pow_gamma0_normalised_by_max():
    loss = _ce()  # gamma0=3, offset 0.1
    # A: logits (ln3, 0), gt 0 -> p_gt 3/4, CE -ln(3/4) = 0.2876820725
    # B: logits (0, 0),   gt 1 -> p_gt 1/2, CE ln2
    # w = 27/64, 1/8; max 27/64 -> 1 + 0.1, (8/27) + 0.1 = 0.3962962963
    logits = torch.tensor([[LN3, 0.], [0., 0.]])
    per = loss(logits, torch.tensor([0, 1]), 0, reduction='none')
    assert per.tolist() == pytest.approx([0.3164502797, 0.2746916604],
                                         abs=1e-6)
    assert loss.running_max.tolist() == pytest.approx([27 / 64, 0.0])


def test_running_max_kept_across_batches_and_reset():
    loss = _ce()
    loss(torch.tensor([[LN3, 0.], [0., 0.]]), torch.tensor([0, 1]), 0)
    # batch 2: one sample with p_gt 1/2: w 1/8 is divided by the running max
    # 27/64 of batch 1, not by its own max -> 0.3962962963 * ln2
    one = torch.tensor([[0., 0.]])
    assert loss(one, torch.tensor([0]), 0).item() == pytest.approx(
        0.2746916604, abs=1e-6)
    loss.reset_epoch_state(1)
    assert loss.running_max.tolist() == [0.0, 0.0]
    # after the reset its own weight is the max: (1 + 0.1) * ln2
    assert loss(one, torch.tensor([0]), 0).item() == pytest.approx(
        0.7624618986, abs=1e-6)


def test_later_exit_weight_is_one_minus_previous_gate():
    logits = torch.zeros(2, 2)  # CE ln2 for both
    gt = torch.tensor([0, 0])
    prev_gate = torch.tensor([0.25, 0.75])
    # gamma 1: w = 0.75, 0.25 -> 1.1, 1/3 + 0.1; mean of (w * ln2)
    loss = _ce()
    assert loss(logits, gt, 1, prev_gate=prev_gate).item() == pytest.approx(
        0.5314128384, abs=1e-6)
    # running max is per exit: exit 0 untouched
    assert loss.running_max.tolist() == pytest.approx([0.0, 0.75])
    # gamma 2: w = 0.5625, 0.0625 -> 1.1, 1/9 + 0.1
    loss2 = _ce(gamma=2.0)
    assert loss2(logits, gt, 1, prev_gate=prev_gate).item() == pytest.approx(
        0.4543964850, abs=1e-6)


def test_gate_weighted_ce_gate_is_detached_and_needs_prev_gate():
    loss = _ce()
    gate = torch.tensor([0.25, 0.75], requires_grad=True)
    logits = torch.zeros(2, 2, requires_grad=True)
    loss(logits, torch.tensor([0, 1]), 1, prev_gate=gate).backward()
    assert gate.grad is None and logits.grad is not None
    with pytest.raises(ValueError, match='prev_gate'):
        loss(logits, torch.tensor([0, 1]), 1)
    with pytest.raises(ValueError, match='exit_idx=5'):
        loss(logits, torch.tensor([0, 1]), 5)


def test_gate_weighted_ce_all_zero_weights_keep_offset():
    loss = _ce(loss_weight=2.0)
    # every previous gate at 1 -> w 0, running max 0: only the offset 0.1 stays
    out = loss(torch.zeros(2, 2), torch.tensor([0, 1]), 1,
               prev_gate=torch.ones(2))
    assert out.item() == pytest.approx(2.0 * 0.1 * LN2, abs=1e-6)


# ------------------------------------------------------------- exit-gate loss
def _gate(**kw):
    cfg = dict(type='ExitGateLoss', num_classes=2, num_exits=1,
               thresholds=(0.5, ), min_epochs=0, num_samples=4)
    cfg.update(kw)
    return build(cfg)


def test_balanced_bce_weights_minority_by_sqrt_of_ratio():
    loss = _gate()
    # sample 0 correct (target 1), samples 1-3 wrong (target 0):
    # counts 1 : 3 -> normalised 1/3, 1 -> weights sqrt(3), 1
    logits = torch.tensor([[1., 0.], [1., 0.], [1., 0.], [1., 0.]])
    gt = torch.tensor([0, 1, 1, 1])
    idx = torch.arange(4)
    half = loss(torch.full((4, ), 0.5), logits, gt, idx, 0)
    assert half.item() == pytest.approx((math.sqrt(3) + 3) * LN2 / 4,
                                        abs=1e-6)
    assert half.item() == pytest.approx(0.8200019189, abs=1e-6)
    # gates 0.8, 0.2, 0.5, 0.9:
    # (sqrt3 * -ln0.8 + -ln0.8 + ln2 + -ln0.1) / 4
    out = loss(torch.tensor([0.8, 0.2, 0.5, 0.9]), logits, gt, idx, 0)
    assert out.item() == pytest.approx(0.9013429483, abs=1e-6)


def test_saturated_gates_give_finite_gradients():
    """A gate at exactly 1 or 0 (what a bf16 sigmoid gives from a logit of
    about 6): the loss is torch's BCE (logs clamped at -100) and its gradient
    is finite, also under autocast. A BCE written out as logs gives 0/0 =
    NaN there, which turned a bf16 OccamResNet-18 on BAR into NaNs."""
    loss = _gate()
    logits = torch.tensor([[1., 0.], [1., 0.], [1., 0.], [1., 0.]])
    gt = torch.tensor([0, 1, 0, 1])  # targets 1, 0, 1, 0
    idx = torch.arange(4)
    # right and sure (1 -> 1, 0 -> 0): no loss, no gradient; wrong and sure
    # (1 -> 0, 0 -> 1): -(-100) each, balanced weights 1
    gates = torch.tensor([1., 0., 0., 1.], requires_grad=True)
    out = loss(gates, logits, gt, idx, 0)
    assert out.item() == pytest.approx(50.0, abs=1e-4)
    out.backward()
    assert torch.isfinite(gates.grad).all()
    assert gates.grad[:2].tolist() == [0.0, 0.0]
    # d/dg of -(1/4) log(g) at g=0 is -(1/4) / max(g (1 - g), 1e-12)
    assert gates.grad[2].item() == pytest.approx(-0.25e12, rel=1e-5)
    assert gates.grad[3].item() == pytest.approx(0.25e12, rel=1e-5)
    # elsewhere value and gradient are torch's BCE (balanced: weights 1)
    gates = torch.tensor([0.8, 0.2, 0.5, 0.9], requires_grad=True)
    ours = loss(gates, logits, gt, idx, 0)
    ours.backward()
    ref_gates = gates.detach().clone().requires_grad_()
    ref = torch.nn.functional.binary_cross_entropy(
        ref_gates, torch.tensor([1., 0., 1., 0.]))
    ref.backward()
    assert ours.item() == pytest.approx(ref.item(), abs=1e-6)
    assert torch.allclose(gates.grad, ref_gates.grad, atol=1e-6)
    gates = torch.tensor([1., 0., 0.5, 0.5], dtype=torch.bfloat16,
                         requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = loss(gates, logits, gt, idx, 0)
    out.backward()
    assert out.dtype == torch.float32 and torch.isfinite(gates.grad).all()


def test_threshold_switches_from_refresh_to_memory():
    loss = _gate()
    idx, gt = torch.tensor([0, 1]), torch.tensor([0, 1])
    gates = torch.tensor([0.9, 0.9])
    # batch 1: both predicted class 0 -> correct (1, 0); per-class accuracy
    # 1/1, 0/1 -> mean 0.5 <= 0.5: refresh, targets (1, 0) remembered
    wrong = torch.tensor([[1., 0.], [1., 0.]])
    first = loss(gates, wrong, gt, idx, 0)
    assert first.item() == pytest.approx(1.2039728043, abs=1e-6)
    assert loss.memory[:2, 0].tolist() == [1.0, 0.0]
    # batch 2: both right now; running accuracy incl. this batch 2/2, 1/2 ->
    # 0.75 > 0.5: the remembered (1, 0) is reused, not (1, 1)
    right = torch.tensor([[1., 0.], [0., 1.]])
    second = loss(gates, right, gt, idx, 0)
    assert second.item() == pytest.approx(1.2039728043, abs=1e-6)
    assert loss.memory[:2, 0].tolist() == [1.0, 0.0]
    assert loss.mean_class_accuracy(0) == pytest.approx(0.75)
    # a sample never remembered falls back to its current correctness
    third = loss(torch.tensor([0.9]), torch.tensor([[1., 0.]]),
                 torch.tensor([0]), torch.tensor([2]), 0)
    assert third.item() == pytest.approx(0.1053605157, abs=1e-6)  # -ln 0.9
    assert loss.valid[:, 0].tolist() == [True, True, True, False]
    # new epoch: accuracy restarts, the right predictions refresh the targets
    loss.reset_epoch_state(1)
    assert loss.total.sum().item() == 0
    # accuracy of this batch alone 1/1, 0/1 -> 0.5: refresh with correct (0, 0)
    loss(gates, torch.tensor([[0., 1.], [1., 0.]]), gt, idx, 0)
    assert loss.memory[:2, 0].tolist() == [0.0, 0.0]


def test_min_epochs_forces_refresh():
    loss = _gate(min_epochs=1)
    idx, gt = torch.tensor([0, 1]), torch.tensor([0, 1])
    gates = torch.tensor([0.9, 0.9])
    right = torch.tensor([[1., 0.], [0., 1.]])
    wrong1 = torch.tensor([[1., 0.], [1., 0.]])
    loss(gates, wrong1, gt, idx, 0)  # epoch 0: targets (1, 0)
    # still epoch 0 < min_epochs: accuracy 0.75 > 0.5 but targets refresh
    assert loss(gates, right, gt, idx, 0).item() == pytest.approx(
        0.1053605157, abs=1e-6)  # targets (1, 1): -ln 0.9 each
    assert loss.memory[:2, 0].tolist() == [1.0, 1.0]
    loss.reset_epoch_state(1)  # epoch 1 >= min_epochs
    loss(gates, right, gt, idx, 0)  # accuracy 1.0 > 0.5 -> memory (1, 1)
    # correct (0, 1) now, but accuracy incl. this batch (1/2, 2/2) is
    # 0.75 > 0.5: remembered (1, 1) reused
    out = loss(gates, torch.tensor([[0., 1.], [0., 1.]]), gt, idx, 0)
    assert out.item() == pytest.approx(0.1053605157, abs=1e-6)
    assert loss.memory[:2, 0].tolist() == [1.0, 1.0]


def test_gate_loss_thresholds_padded_and_memory_errors():
    loss = build(dict(type='ExitGateLoss', num_classes=2, num_exits=5,
                      thresholds=(0.5, 0.6)))
    assert loss.thresholds == [0.5, 0.6, 0.6, 0.6, 0.6]
    with pytest.raises(IndexError, match='TrainingStateHook'):
        loss(torch.full((1, ), 0.5), torch.zeros(1, 2), torch.tensor([0]),
             torch.tensor([3]), 0)


def test_gate_loss_eval_mode_leaves_state_alone():
    loss = _gate().eval()
    out = loss(torch.tensor([0.9, 0.9]), torch.tensor([[1., 0.], [1., 0.]]),
               torch.tensor([0, 1]), torch.tensor([0, 1]), 0)
    assert out.item() == pytest.approx(1.2039728043, abs=1e-6)
    assert loss.total.sum().item() == 0 and not loss.valid.any()


def test_gate_memory_resizes_on_load():
    src = _gate(num_samples=6)
    src(torch.tensor([0.9, 0.9]), torch.tensor([[1., 0.], [1., 0.]]),
        torch.tensor([0, 1]), torch.tensor([0, 5]), 0)
    dst = _gate(num_samples=0)
    dst.load_state_dict(src.state_dict())
    assert dst.memory.shape == (6, 1)
    assert torch.equal(dst.memory, src.memory)
    assert torch.equal(dst.valid, src.valid)
    assert torch.equal(dst.total, src.total)
    dst.resize_memory(6)  # same size: kept
    assert dst.valid[5, 0]
    dst.resize_memory(3)  # another training set: forgotten
    assert dst.memory.shape == (3, 1) and not dst.valid.any()

"""The TrainingState buffer rules: one resize helper, resize on load."""
import copy

import pytest
import torch
from mmengine.runner.checkpoint import load_state_dict as mmengine_load
from mmpretrain.registry import MODELS

import occam_plugin  # noqa: F401  (registers)
from occam_plugin.models.utils.training_state import (drop_per_sample_state,
                                                      resize_per_sample)


def lff(num_samples=0):
    mlp = dict(type='ImageClassifier',
               backbone=dict(type='MLPBackbone', in_channels=3, img_size=8,
                             hidden_dims=(8, )),
               head=dict(type='MethodLinearClsHead', num_classes=2,
                         in_channels=8))
    return MODELS.build(dict(type='LfFClassifier', biased_model=mlp,
                             num_samples=num_samples))


def test_resize_per_sample_keeps_rows_and_fills_new_ones():
    model = lff(2)
    model.ema_biased.copy_(torch.tensor([1.5, 2.5]))
    model.ema_updated.fill_(True)
    model.sample_label.copy_(torch.tensor([1, 0]))
    resize_per_sample(model, 4)
    assert model.ema_biased.tolist() == [1.5, 2.5, 0.0, 0.0]
    assert model.ema_updated.tolist() == [True, True, False, False]
    assert model.sample_label.tolist() == [1, 0, -1, -1]  # PER_SAMPLE_FILL
    assert model.sample_label.dtype == torch.long
    resize_per_sample(model, 1)
    assert model.ema_biased.tolist() == [1.5]
    gate = MODELS.build(dict(type='ExitGateLoss', num_classes=2, num_exits=3,
                             num_samples=2))
    resize_per_sample(gate, 5)  # trailing shape and dtype are the module's
    assert gate.memory.shape == (5, 3) and gate.valid.dtype == torch.bool
    assert drop_per_sample_state(gate) == ['memory', 'valid', 'written']
    assert gate.written.shape == (0, 3)


def test_checkpoints_of_the_old_layout_load_into_other_sizes():
    # the buffers as commit aa05212 wrote them (names, dtypes, shapes)
    gate_sd = dict(memory=torch.tensor([[1.], [0.], [1.], [0.], [0.], [1.]]),
                   valid=torch.tensor([[True]] * 5 + [[False]]),
                   written=torch.tensor([[False]] * 5 + [[True]]),
                   correct=torch.tensor([[3., 1.]]),
                   total=torch.tensor([[4., 2.]]),
                   epoch=torch.tensor(2))
    for n in (0, 3, 9):
        gate = MODELS.build(dict(type='ExitGateLoss', num_classes=2,
                                 num_exits=1, num_samples=n))
        gate.load_state_dict(gate_sd)
        for k, v in gate_sd.items():
            assert torch.equal(getattr(gate, k), v), (n, k)
    dro_sd = dict(q=torch.tensor([[0.2, 0.8], [0.5, 0.5], [0.6, 0.4]]))
    dro = MODELS.build(dict(type='GroupDRO', num_groups=5))
    dro.load_state_dict(dro_sd)
    assert torch.equal(dro.q, dro_sd['q'])
    upwt_sd = dict(group_counts=torch.tensor([4., 0., 2., 1.]))
    upwt = MODELS.build(dict(type='GroupUpweighting', group_counts=[1, 1]))
    upwt.load_state_dict(upwt_sd)
    assert upwt.group_weights().tolist() == pytest.approx(
        [7 / 12, 0.0, 7 / 6, 7 / 3])
    src = lff(3)
    src.ema_biased.copy_(torch.tensor([0.1, 0.2, 0.3]))
    src.sample_label.copy_(torch.tensor([1, 0, 1]))
    state = src.state_dict()
    for n in (0, 7):
        dst = lff(n)
        # mmengine's loader (what runner.load_checkpoint uses) too
        mmengine_load(dst, state, strict=True)
        for k, v in state.items():
            assert torch.equal(dst.state_dict()[k], v), (n, k)


def test_another_width_is_still_a_size_mismatch():
    # rows follow the checkpoint, the number of exits does not
    src = MODELS.build(dict(type='ExitGateLoss', num_classes=2, num_exits=2,
                            num_samples=4))
    dst = MODELS.build(dict(type='ExitGateLoss', num_classes=2, num_exits=3,
                            num_samples=4))
    with pytest.raises(RuntimeError, match='size mismatch for memory'):
        dst.load_state_dict(src.state_dict())


def test_resize_on_load_survives_deepcopy():
    head = MODELS.build(dict(type='OccamHead', num_classes=2,
                             in_channels=[2, 2],
                             method=dict(type='GroupDRO', num_groups=3)))
    head.gate_loss.resize_memory(5)
    state = copy.deepcopy(head.state_dict())
    fresh = copy.deepcopy(MODELS.build(dict(
        type='OccamHead', num_classes=2, in_channels=[2, 2],
        method=dict(type='GroupDRO', num_groups=2))))
    fresh.load_state_dict(state)
    assert fresh.gate_loss.memory.shape == (5, 2)
    assert fresh.method.q.shape == (1, 3)

"""The shipped schedules' fused Adam: built through mmengine as the Runner
builds it (plain and bf16 wrappers), the same update as the per-parameter
Adam to float rounding, state that resumes."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from tests.helpers import REPO

import occam_plugin  # noqa: F401  (registers CPUAmpOptimWrapper)

SCHEDULES = ['occamnets.py', 'colored_mnist.py']


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
                               torch.nn.Flatten(), torch.nn.Linear(4 * 36, 5))


def _train(wrapper_cfg, steps=4):
    model = _model()
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        wrapper = build_optim_wrapper(model, wrapper_cfg)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(6, 3, 8, 8, generator=g)
        y = torch.randint(0, 5, (6, ), generator=g)
        with wrapper.optim_context(model):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        wrapper.update_params(loss)
    return model, wrapper


@pytest.mark.parametrize('schedule', SCHEDULES)
@pytest.mark.parametrize('wrapper', ['OptimWrapper', 'CPUAmpOptimWrapper'])
def test_fused_adam_is_the_per_parameter_adam(schedule, wrapper):
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', '_base_', 'schedules', schedule))
    optimizer = dict(cfg.optim_wrapper.optimizer)
    assert optimizer['type'] == 'Adam' and optimizer['fused'] is True
    fused, fused_wrapper = _train(dict(type=wrapper, optimizer=optimizer))
    assert fused_wrapper.optimizer.param_groups[0]['fused'] is True
    loop, _ = _train(dict(type=wrapper, optimizer=dict(
        optimizer, fused=False, foreach=False)))
    for a, b, start in zip(fused.parameters(), loop.parameters(),
                           _model().parameters()):
        assert not torch.equal(a, start)  # it trained
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_fused_adam_state_resumes():
    """A fused Adam's state dict loads into a new one and steps on as the
    uninterrupted one does (what a resumed run relies on)."""
    optimizer = dict(type='Adam', lr=1e-2, weight_decay=5e-4, fused=True)
    whole, _ = _train(dict(type='OptimWrapper', optimizer=optimizer),
                      steps=4)
    first, wrapper = _train(dict(type='OptimWrapper', optimizer=optimizer),
                            steps=2)
    state = wrapper.state_dict()
    model = _model()
    model.load_state_dict(first.state_dict())
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        resumed = build_optim_wrapper(
            model, dict(type='OptimWrapper', optimizer=optimizer))
    resumed.load_state_dict(state)
    g = torch.Generator().manual_seed(1)
    for step in range(4):
        x = torch.randn(6, 3, 8, 8, generator=g)
        y = torch.randint(0, 5, (6, ), generator=g)
        if step < 2:
            continue  # the batches the first two steps took
        loss = torch.nn.functional.cross_entropy(model(x), y)
        resumed.update_params(loss)
    for a, b in zip(whole.parameters(), model.parameters()):
        assert torch.equal(a, b)

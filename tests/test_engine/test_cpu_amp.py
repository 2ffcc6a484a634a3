"""bf16 autocast on the CPU: CPUAmpOptimWrapper and tools/train.py --amp."""
import glob
import os.path as osp

import pytest
import torch
from tests.helpers import (TINY_BAR_OPTIONS, TINY_RESNET_OPTIONS,
                           bar_data_options, load_tool)
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import occam_plugin.engine.optimizers as optimizers
from occam_plugin import cli
from occam_plugin.engine.optimizers import CPUAmpOptimWrapper, cpu_bf16_flags
from tests.helpers import REPO


@pytest.mark.parametrize('flags, expected', [
    ('fpu avx2 avx512f avx512_bf16 amx_tile amx_bf16',
     {'avx512_bf16', 'amx_bf16'}),
    ('fpu avx2 avx512f avx512_vnni', set()),
])
def test_bf16_flags_read_from_cpuinfo(tmp_path, flags, expected):
    info = tmp_path / 'cpuinfo'
    info.write_text(f'processor\t: 0\nmodel name\t: X\nflags\t\t: {flags}\n')
    assert cpu_bf16_flags(str(info)) == expected
    assert cpu_bf16_flags(str(tmp_path / 'absent')) is None


def _wrapper(model, **kwargs):
    # built as a config's default_scope='mmpretrain' builds it
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return build_optim_wrapper(model, dict(
            type='CPUAmpOptimWrapper',
            optimizer=dict(type='SGD', lr=0.1), **kwargs))


def test_forward_in_bf16_update_in_fp32():
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 3)
    x, y = torch.randn(16, 8), torch.randint(0, 3, (16, ))
    wrapper = _wrapper(model)
    assert isinstance(wrapper, CPUAmpOptimWrapper)
    with wrapper.optim_context(model):
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
    assert logits.dtype == torch.bfloat16
    fp32_loss = torch.nn.functional.cross_entropy(model(x), y)
    # the same loss up to bf16 rounding, not bit-equal: autocast did work
    assert loss.item() != fp32_loss.item()
    assert abs(loss.item() - fp32_loss.item()) < 2e-2
    before = model.weight.detach().clone()
    wrapper.update_params(loss)
    assert model.weight.dtype == torch.float32
    assert model.weight.grad is None  # zeroed after the step
    assert not torch.equal(before, model.weight)


def test_only_bfloat16():
    with pytest.raises(ValueError, match="dtype='float16'"):
        _wrapper(torch.nn.Linear(2, 2), dtype='float16')


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU path of --amp')
def test_train_amp_on_the_cpu(monkeypatch):
    cfg = Config(dict(optim_wrapper=dict(
        type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-3))))
    monkeypatch.setattr(optimizers, 'cpu_bf16_flags', lambda: frozenset())
    with pytest.raises(SystemExit, match='no native bf16.*avx512_bf16'):
        cli.use_amp(cfg)
    monkeypatch.setattr(optimizers, 'cpu_bf16_flags',
                        lambda: frozenset({'amx_bf16'}))
    assert cli.amp_available()
    cli.use_amp(cfg)
    assert cfg.optim_wrapper.type == 'CPUAmpOptimWrapper'


@pytest.mark.slow
def test_training_run_with_cpu_amp(tiny_bar_root, tmp_path):
    """A whole (tiny) BAR training through the Runner in bf16 autocast."""
    work = tmp_path / 'run'
    load_tool('train.py').main([
        osp.join(REPO, 'configs', 'resnet',
                 'resnet18-w16_1xb64_60e_bar-small.py'),
        '--work-dir', str(work), '--cfg-options', *TINY_BAR_OPTIONS,
        *TINY_RESNET_OPTIONS, *bar_data_options(tiny_bar_root),
        'optim_wrapper.type=CPUAmpOptimWrapper'])
    assert glob.glob(str(work / 'epoch_2.pth'))
    logs = ''.join(open(p).read() for p in glob.glob(str(work / '*/*.log')))
    assert "type='CPUAmpOptimWrapper'" in logs


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU path of --amp')
def test_demo_amp_auto_follows_the_cpu(monkeypatch, tmp_path):
    """make demo trains in bf16 where the CPU has it natively, fp32 where it
    would be emulated; --amp on refuses the latter, --amp off is fp32."""
    demo = load_tool('demo.py')

    def wrapper(amp):
        cfg = demo.build_cfg('occam', str(tmp_path / 'demo'), amp=amp)
        return cfg.optim_wrapper.get('type', 'OptimWrapper')

    monkeypatch.setattr(optimizers, 'cpu_bf16_flags',
                        lambda: frozenset({'avx512_bf16'}))
    assert wrapper('auto') == 'CPUAmpOptimWrapper'
    assert wrapper('on') == 'CPUAmpOptimWrapper'
    assert wrapper('off') == 'OptimWrapper'
    monkeypatch.setattr(optimizers, 'cpu_bf16_flags', lambda: frozenset())
    assert wrapper('auto') == 'OptimWrapper'
    with pytest.raises(SystemExit, match='no native bf16'):
        wrapper('on')

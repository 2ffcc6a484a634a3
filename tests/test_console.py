"""The quiet console of tools/train.py and tools/test.py (SafeRunner's
``console='quiet'`` + ConsoleProgressHook): a line per epoch and the key
metrics on the console, mmengine's full log in the work dir, ``--verbose``
for today's output. The tools run as subprocesses with a pipe as stdout (not
a terminal), as in CI or ``make demo``'s per-model logs."""
import os
import os.path as osp
import re

import pytest

from conftest import (REPO, TINY_BAR_OPTIONS, TINY_RESNET_OPTIONS,
                      bar_data_options, load_tool, read_logs, run_tool,
                      write_bar_folder)
from occam_plugin.engine.hooks.console_progress_hook import format_metrics

OCCAM_CFG = osp.join(REPO, 'configs', 'occam_resnet18_bar.py')
#: mmengine's LoggerHook line of a training iteration
ITER_LINE = re.compile(r'Epoch\(train\)\s+\[\d+\]\[\s*\d+/\d+\]')


@pytest.fixture(scope='module')
def bar_root(tmp_path_factory):
    return write_bar_folder(tmp_path_factory.mktemp('data') / 'BAR')


def train(work_dir, data_root, *extra, **kwargs):
    return run_tool('train.py', OCCAM_CFG, '--work-dir', str(work_dir),
                    *extra, '--cfg-options', *TINY_BAR_OPTIONS,
                    *TINY_RESNET_OPTIONS, *bar_data_options(data_root),
                    **kwargs)


@pytest.fixture(scope='module')
def quiet_run(tmp_path_factory, bar_root):
    work_dir = tmp_path_factory.mktemp('quiet')
    return work_dir, train(work_dir, bar_root).stdout


@pytest.mark.slow
def test_quiet_console_is_a_line_per_epoch(quiet_run):
    work_dir, out = quiet_run
    lines = out.splitlines()
    assert len(lines) < 15 and len(out) < 2000, out
    epochs = [ln for ln in lines if ln.startswith('epoch ')]
    assert [ln.split()[1] for ln in epochs] == ['1/2', '2/2'], out
    for ln in epochs:  # iterations, mean loss, lr, time
        assert re.search(r'2 iters\s+loss \d+\.\d+\s+lr 0\.001\s+[\d.]+s',
                         ln), ln
    val = [ln for ln in lines if ln.startswith('val (epoch 2)')]
    assert len(val) == 1, out
    assert 'accuracy/top1' in val[0]
    assert 'exit/expected_compute' in val[0]
    # no mmengine INFO lines, config dump or hook table, no redraws
    assert ITER_LINE.search(out) is None
    assert 'Hooks will be executed' not in out and 'Config:' not in out
    assert ' - INFO - ' not in out and '\r' not in out


@pytest.mark.slow
def test_quiet_console_names_the_full_log(quiet_run):
    work_dir, out = quiet_run
    log_line = next(ln for ln in out.splitlines()
                    if ln.startswith('Full log: '))
    path = log_line.split()[2]
    assert osp.isfile(path)
    assert osp.dirname(osp.dirname(path)) == str(work_dir)
    with open(path, encoding='utf-8') as f:
        log = f.read()
    # everything mmengine writes is still in the file
    assert 'Config:' in log and 'Hooks will be executed' in log
    assert len(ITER_LINE.findall(log)) == 4  # 2 epochs x 2 iterations
    assert 'Epoch(val) [2]' in log and 'loss_gate_e1' in log


@pytest.mark.slow
def test_verbose_restores_mmengine_console(tmp_path, bar_root):
    out = train(tmp_path / 'verbose', bar_root, '--verbose').stdout
    assert len(ITER_LINE.findall(out)) == 4
    assert 'Hooks will be executed' in out and 'Config:' in out
    assert 'Full log: ' not in out and not re.search(r'^epoch 1/2', out,
                                                     re.M)


@pytest.mark.slow
def test_quiet_test_tool_prints_the_metrics(quiet_run, bar_root, tmp_path):
    work_dir, _ = quiet_run
    proc = run_tool('test.py', OCCAM_CFG, osp.join(work_dir, 'epoch_2.pth'),
                    '--work-dir', str(tmp_path / 'test'), '--cfg-options',
                    *TINY_BAR_OPTIONS, *TINY_RESNET_OPTIONS,
                    *bar_data_options(bar_root))
    lines = proc.stdout.splitlines()
    assert len(lines) < 8, proc.stdout
    test = [ln for ln in lines if ln.startswith('test: ')]
    assert len(test) == 1 and 'accuracy/top1' in test[0], proc.stdout
    assert 'Epoch(test)' in read_logs(tmp_path / 'test')


@pytest.mark.slow
def test_errors_still_reach_the_console(tmp_path, bar_root):
    missing = tmp_path / 'no_such_BAR'
    proc = run_tool('train.py', OCCAM_CFG, '--work-dir',
                    str(tmp_path / 'err'), '--cfg-options',
                    *TINY_BAR_OPTIONS, *bar_data_options(missing),
                    check=False)
    assert proc.returncode != 0
    assert str(missing) in proc.stdout  # the error names the folder


WARN_HOOK = """
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class SayHook(Hook):
    \"\"\"Test only: one INFO and one WARNING message before training.\"\"\"

    def before_train(self, runner):
        runner.logger.info('say-hook: an info message')
        runner.logger.warning('say-hook: a warning message')
"""


@pytest.mark.slow
def test_warnings_still_reach_the_console(tmp_path, bar_root):
    (tmp_path / 'say_hook.py').write_text(WARN_HOOK)
    config = tmp_path / 'occam_say.py'
    config.write_text(
        f"_base_ = [{OCCAM_CFG!r}]\n"
        "custom_imports = dict(imports=['occam_plugin', 'say_hook'], "
        "allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='SayHook')]\n")
    work_dir = tmp_path / 'warn'
    env = dict(PYTHONPATH=os.pathsep.join(
        [str(tmp_path), os.environ.get('PYTHONPATH', '')]))
    out = run_tool('train.py', str(config), '--work-dir', str(work_dir),
                   '--cfg-options', *TINY_BAR_OPTIONS, *TINY_RESNET_OPTIONS,
                   'train_cfg.max_epochs=1', *bar_data_options(bar_root),
                   env=env).stdout
    assert 'say-hook: a warning message' in out
    assert 'say-hook: an info message' not in out
    log = read_logs(work_dir)
    assert 'say-hook: an info message' in log
    assert 'say-hook: a warning message' in log


def test_format_metrics_key_metrics_first():
    metrics = {'accuracy/top1': 50.0, 'bias/num_groups': 100,
               'bias/unbiased_acc': 40.123456, 'exit/share_e0': 10.0}
    assert format_metrics(metrics) == (
        'accuracy/top1 50  bias/unbiased_acc 40.12  (+2 more in the log)')
    # an evaluator without any of the key metrics: its first entries
    assert format_metrics({'a': 1.0, 'b': 2}, max_other=4) == 'a 1  b 2'


def test_progress_bar_on_a_terminal(capsys):
    """``tty=True``: a rich bar per epoch that stays as the epoch's line."""
    from types import SimpleNamespace

    from occam_plugin.engine.hooks import ConsoleProgressHook
    hook = ConsoleProgressHook(tty=True)
    runner = SimpleNamespace(
        epoch=0, max_epochs=2, train_dataloader=[0, 1, 2],
        val_dataloader=[0], logger=SimpleNamespace(log_file='x/y.log'),
        optim_wrapper=SimpleNamespace(get_lr=lambda: {'lr': [0.01]}))
    hook.before_run(runner)
    hook.before_train_epoch(runner)
    for i in range(3):
        hook.after_train_iter(runner, i, outputs={'loss': 2.0 + i})
    hook.after_train_epoch(runner)
    runner.epoch = 1
    hook.before_val_epoch(runner)
    hook.after_val_iter(runner, 0)
    hook.after_val_epoch(runner, {'accuracy/top1': 75.0})
    out = capsys.readouterr().out
    assert 'Full log: x/y.log' in out
    assert re.search(r'epoch 1/2 .*3/3 loss 3\.0000\s+lr 0\.01', out), out
    assert 'val (epoch 1): accuracy/top1 75' in out


def test_demo_verbose_reaches_its_runs():
    demo = load_tool('demo.py')
    assert demo.parse_args(['--verbose']).verbose
    assert demo.build_cfg('occam', 'w', verbose=True).console == 'verbose'
    assert 'console' not in demo.build_cfg('occam', 'w')  # SafeRunner: quiet


def test_demo_relays_progress_lines(tmp_path, capsys):
    demo = load_tool('demo.py')
    log = tmp_path / 'occam.log'
    log.write_text('11/25 - mmengine - INFO - Epoch(train) [1][1/3]\n'
                   'epoch 1/2  3 iters  loss 1.0  lr 0.1  1.0s\nepoch 2/2')
    offsets = dict(occam=0)
    demo.relay_progress(dict(occam=str(log)), offsets)
    assert capsys.readouterr().out == (
        'OccamResNet-18: epoch 1/2  3 iters  loss 1.0  lr 0.1  1.0s\n')
    with open(log, 'a') as f:  # the rest of the line arrives
        f.write('  loss 0.5  lr 0.1  1.0s\nval (epoch 2): top1 5\n')
    demo.relay_progress(dict(occam=str(log)), offsets)
    assert capsys.readouterr().out.splitlines() == [
        'OccamResNet-18: epoch 2/2  loss 0.5  lr 0.1  1.0s',
        'OccamResNet-18: val (epoch 2): top1 5']

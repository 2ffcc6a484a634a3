"""The quiet console of tools/train.py and tools/test.py (SafeRunner's
``console='quiet'`` + ConsoleProgressHook): a line per epoch and the key
metrics on the console, mmengine's full log in the work dir, ``--verbose``
for today's output. The tools run as subprocesses with a pipe as stdout (not
a terminal), as in CI or ``make demo``'s per-model logs."""
import os
import os.path as osp
import re

import pytest
from mmengine.logging import MessageHub

from tests.helpers import (REPO, TINY_BAR_OPTIONS, TINY_RESNET_OPTIONS,
                           bar_data_options, load_tool, read_logs, run_tool)
from occam_plugin.engine.hooks.console_progress_hook import format_metrics

OCCAM_CFG = osp.join(REPO, 'configs', 'occam_resnet18_bar.py')
#: mmengine's LoggerHook line of a training iteration
ITER_LINE = re.compile(r'Epoch\(train\)\s+\[\d+\]\[\s*\d+/\d+\]')


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
    for i, ln in enumerate(epochs, 1):  # mmengine's fields, epoch time
        assert re.search(rf'  \[{i}\]\[2/2\]  lr: 1\.0000e-03  eta: '
                         r'\d+:\d\d:\d\d  loss: \d+\.\d{4}  [\d.]+s$', ln), ln
    assert epochs[-1].split('eta: ')[1].startswith('0:00:00 '), out
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
    hub = MessageHub('console-tty')
    runner = SimpleNamespace(
        epoch=0, max_epochs=2, train_dataloader=[0, 1, 2], message_hub=hub,
        iter=0, max_iters=6,
        val_dataloader=[0], logger=SimpleNamespace(log_file='x/y.log'),
        optim_wrapper=SimpleNamespace(get_lr=lambda: {'lr': [0.01]}))
    hook.before_run(runner)
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    for i in range(3):  # IterTimerHook's eta: 2.5 s x 3 left after i=2
        hub.update_info('eta', 2.5 * (runner.max_iters - runner.iter - 1))
        hook.after_train_iter(runner, i, outputs={'loss': 2.0 + i})
        runner.iter += 1
    hook.after_train_epoch(runner)
    runner.epoch = 1
    hook.before_val_epoch(runner)
    hook.after_val_iter(runner, 0)
    hook.after_val_epoch(runner, {'accuracy/top1': 75.0})
    out = capsys.readouterr().out
    assert 'Full log: x/y.log' in out
    assert re.search(r'epoch 1/2 .*\[1\]\[3/3\]  lr: 1\.0000e-02  eta: '
                     r'0:00:07  loss: 3\.0000', out), out
    assert 'val (epoch 1): accuracy/top1 75' in out


def _fake_runner(**kwargs):
    from types import SimpleNamespace
    return SimpleNamespace(
        epoch=0, max_epochs=2, iter=0, max_iters=8,
        train_dataloader=[0, 1, 2, 3], logger=SimpleNamespace(log_file='l'),
        optim_wrapper=SimpleNamespace(get_lr=lambda: {'lr': [0.1]}),
        **kwargs)


def test_epoch_line_in_mmengine_words(capsys):
    """Not a terminal: one line per epoch with [epoch][iter/iters], lr,
    IterTimerHook's eta (as LogProcessor prints it) and the mean loss."""
    from occam_plugin.engine.hooks import ConsoleProgressHook
    hub = MessageHub('console-line')
    runner = _fake_runner(message_hub=hub)
    hook = ConsoleProgressHook(tty=False)
    hook.before_run(runner)
    hook.before_train(runner)
    for epoch in range(2):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        for i in range(4):
            # what IterTimerHook leaves in the hub: 1.5 s x iterations left
            hub.update_info('eta', 1.5 * (8 - runner.iter - 1) + 65)
            hook.after_train_iter(runner, i, outputs={'loss': float(i)})
            runner.iter += 1
        hook.after_train_epoch(runner)
    lines = capsys.readouterr().out.splitlines()[1:]
    assert [ln.rsplit('  ', 1)[0] for ln in lines] == [
        # eta 1.5 * 4 + 65 = 71 s; 1.5 * 0 + 65 = 65 s; loss (0+1+2+3)/4
        'epoch 1/2  [1][4/4]  lr: 1.0000e-01  eta: 0:01:11  loss: 1.5000',
        'epoch 2/2  [2][4/4]  lr: 1.0000e-01  eta: 0:01:05  loss: 1.5000']
    assert all(re.fullmatch(r'\d+\.\ds', ln.rsplit('  ', 1)[1])
               for ln in lines)


def test_eta_without_iter_timer_hook(monkeypatch, capsys):
    """No eta in the message hub (``default_hooks.timer=None``): elapsed
    time per iteration of this run x iterations left, also on resume."""
    from occam_plugin.engine.hooks import ConsoleProgressHook
    from occam_plugin.engine.hooks import console_progress_hook as mod
    clock = [100.0]
    monkeypatch.setattr(mod.time, 'time', lambda: clock[0])
    runner = _fake_runner(message_hub=MessageHub('console-no-timer'))
    runner.iter, runner.epoch = 4, 1  # resumed after epoch 1 of 2
    hook = ConsoleProgressHook(tty=False)
    hook.before_run(runner)
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    for i in range(3):
        clock[0] += 10.0  # 10 s per iteration
        hook.after_train_iter(runner, i, outputs={'loss': 1.0})
        runner.iter += 1
    hook.after_train_epoch(runner)
    # after 3 of this run's iterations (30 s), 1 of 8 is left: 10 s
    assert '[2][3/4]  lr: 1.0000e-01  eta: 0:00:10  loss: 1.0000  30.0s' \
        in capsys.readouterr().out


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


def test_resumed_run_says_so_on_the_console(capsys):
    """mmengine logs "resumed epoch: 1" at INFO, which the quiet console
    hides: one line names the checkpoint and the epoch."""
    from occam_plugin.engine.hooks import ConsoleProgressHook
    runner = _fake_runner(message_hub=MessageHub('console-resumed'),
                          cfg=dict(resume=True,
                                   load_from='work_dirs/x/epoch_1.pth'))
    runner.iter, runner.epoch = 4, 1  # after epoch 1 of 2 (4 iterations)
    hook = ConsoleProgressHook(tty=False)
    hook.before_run(runner)
    hook.before_train(runner)
    assert capsys.readouterr().out.splitlines()[1:] == [
        'Resumed from work_dirs/x/epoch_1.pth at epoch 1 (iteration 4); '
        'training continues with epoch 2/2.']
    # a new run (iteration 0), or load_from without resume: no such line
    for cfg in (dict(resume=True, load_from=None), dict(resume=False)):
        fresh = _fake_runner(message_hub=MessageHub(f'console-{len(cfg)}'),
                             cfg=cfg)
        fresh.iter = 0 if cfg['resume'] else 4
        hook.before_train(fresh)
    assert capsys.readouterr().out == ''


@pytest.mark.slow
def test_resumed_tool_run_names_its_checkpoint(quiet_run, bar_root,
                                               tmp_path):
    """tools/train.py --resume in a copy of a 2-epoch work dir, one more
    epoch: the console says where it resumed from."""
    import shutil
    work_dir, _ = quiet_run
    copy = tmp_path / 'copy'
    shutil.copytree(work_dir, copy)
    out = run_tool('train.py', OCCAM_CFG, '--work-dir', str(copy),
                   '--resume', '--cfg-options', *TINY_BAR_OPTIONS,
                   *TINY_RESNET_OPTIONS, *bar_data_options(bar_root),
                   'train_cfg.max_epochs=3').stdout
    line = next(ln for ln in out.splitlines() if ln.startswith('Resumed'))
    assert line == (f'Resumed from {copy}/epoch_2.pth at epoch 2 '
                    '(iteration 4); training continues with epoch 3/3.'), out

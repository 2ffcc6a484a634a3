"""Clear errors before anything is built: a training length below 1, a busy
rendezvous port of tools/dist_*.sh (and a free one picked when PORT is not
set), typo'd or ill-typed --cfg-options (``config_check``, shared by every
entry point); and a user's error met later ends a tool with one line
(``cli.run_tool``)."""
import os
import os.path as osp
import socket
import subprocess

import pytest

from tests.helpers import PYTHON, REPO, bar_data_options, load_tool
from tests.helpers import run_tool as run_tool_process

BAR_CFG = osp.join(REPO, 'configs', 'resnet', 'resnet18_1xb128_90e_bar.py')


@pytest.mark.parametrize('option', [
    'train_cfg.max_epochs=0', 'train_cfg.max_epochs=-2',
    'train_cfg.max_epochs=1.5', 'train_cfg.val_interval=0'])
def test_training_length_below_one_is_refused_before_building(
        tmp_path, option):
    """max_epochs=0 ended in the scheduler's "end should be larger than
    begin" after the model and the data were built."""
    key, value = option.split('=')
    work_dir = tmp_path / 'run'
    with pytest.raises(SystemExit) as err:
        load_tool('train.py').main(
            [BAR_CFG, '--work-dir', str(work_dir),
             '--cfg-options', option,
             # no data there: the check comes first
             'train_dataloader.dataset.data_root=' + str(tmp_path / 'none')])
    msg = str(err.value)
    assert f'{key} must be an integer >= 1' in msg
    assert f'got {value}' in msg
    assert f'--cfg-options {key}=<n>' in msg
    assert not work_dir.exists()  # nothing was built


def _stub_python(tmp_path):
    """A PYTHON for tools/dist_*.sh that runs python for the port helpers
    and prints, instead of launching torchrun, the arguments it gets."""
    stub = tmp_path / 'python'
    stub.write_text('#!/usr/bin/env bash\n'
                    'if [ "$1" = "-m" ]; then echo "LAUNCH $*"; exit 0; fi\n'
                    f'exec {PYTHON} "$@"\n')
    stub.chmod(0o755)
    return str(stub)


def _run(script, tmp_path, **env):
    full = {k: v for k, v in os.environ.items()
            if k not in ('PORT', 'NNODES', 'NODE_RANK', 'MASTER_ADDR')}
    full.update(PYTHON=_stub_python(tmp_path), **env)
    args = ['cfg.py', '2'] if script == 'dist_train.sh' else \
        ['cfg.py', 'ckpt.pth', '2']
    return subprocess.run(['bash', osp.join(REPO, 'tools', script), *args],
                          cwd=REPO, env=full, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=60)


def _port(proc):
    launch = [line for line in proc.stdout.splitlines()
              if line.startswith('LAUNCH')]
    assert len(launch) == 1, proc.stdout + proc.stderr
    return int(launch[0].split('--master_port=')[1].split()[0])


@pytest.mark.parametrize('script', ['dist_train.sh', 'dist_test.sh'])
def test_dist_scripts_pick_a_free_port_or_name_the_busy_one(tmp_path,
                                                            script):
    """Two runs at once ended in torch's EADDRINUSE on port 29500."""
    busy = socket.socket()
    busy.bind(('127.0.0.1', 0))
    busy.listen(1)
    busy_port = busy.getsockname()[1]
    try:
        # PORT set to a port in use: a clear error, nothing launched
        proc = _run(script, tmp_path, PORT=str(busy_port))
        assert proc.returncode == 1
        assert 'LAUNCH' not in proc.stdout
        assert f'PORT={busy_port} on 127.0.0.1 is in use' in proc.stderr
        assert 'set PORT' in proc.stderr
        # PORT not set: a free port each time (not the fixed 29500)
        first = _run(script, tmp_path)
        assert first.returncode == 0, first.stderr
        port = _port(first)
        assert port != busy_port
        assert f'PORT not set; using free port {port}' in first.stderr
        probe = socket.socket()
        probe.bind(('127.0.0.1', port))  # it is free
        probe.close()
        # PORT set to a free port: used as it is
        assert _port(_run(script, tmp_path, PORT=str(port))) == port
        # several nodes: every node must agree, so 29500 without PORT
        assert _port(_run(script, tmp_path, NNODES='2',
                          NODE_RANK='1')) == 29500
    finally:
        busy.close()


@pytest.mark.parametrize('script,args,tool,rest', [
    ('dist_train.sh', ['cfg.py', '3', '--amp'], 'train.py',
     ['cfg.py', '--launcher', 'pytorch', '--amp']),
    ('dist_test.sh', ['cfg.py', 'ckpt.pth', '3', '--out', 'p.pkl'], 'test.py',
     ['cfg.py', 'ckpt.pth', '--launcher', 'pytorch', '--out', 'p.pkl']),
])
def test_dist_scripts_launch_their_tool(tmp_path, script, args, tool, rest):
    """dist_train.sh / dist_test.sh share dist_launch.sh: each launches its
    own tool with its positional arguments, then --launcher pytorch, then
    the extra arguments; one node by default."""
    env = {k: v for k, v in os.environ.items()
           if k not in ('PORT', 'NNODES', 'NODE_RANK', 'MASTER_ADDR')}
    env.update(PYTHON=_stub_python(tmp_path), PORT='0')
    proc = subprocess.run(['bash', osp.join(REPO, 'tools', script), *args],
                          cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    launch = proc.stdout.split()
    assert launch[:9] == [
        'LAUNCH', '-m', 'torch.distributed.run', '--nnodes=1',
        '--node_rank=0', '--master_addr=127.0.0.1', '--nproc_per_node=3',
        '--master_port=0', osp.join(osp.join(REPO, 'tools'), tool)]
    assert launch[9:] == rest


def test_dist_scripts_use_the_python_of_their_environment(tmp_path):
    """Installed from a wheel, the scripts sit in <prefix>/lib/pythonX.Y/
    site-packages/occam_plugin/.mim/tools: without PYTHON they launch with
    <prefix>/bin/python, not a `python` on PATH that lacks torch."""
    import shutil
    tools = tmp_path / 'prefix' / 'lib' / 'python3.11' / 'site-packages' / \
        'occam_plugin' / '.mim' / 'tools'
    tools.mkdir(parents=True)
    for name in ('dist_train.sh', 'dist_launch.sh', 'dist_port.sh'):
        shutil.copy(osp.join(REPO, 'tools', name), tools / name)
    (tmp_path / 'prefix' / 'bin').mkdir()
    stub = _stub_python(tmp_path / 'prefix' / 'bin')
    path_dir = tmp_path / 'path'
    path_dir.mkdir()
    for name in ('python', 'python3'):  # a system Python without torch
        wrong = path_dir / name
        wrong.write_text('#!/usr/bin/env bash\n'
                         'if [ "$1" = "-m" ]; then echo WRONG; fi\nexit 1\n')
        wrong.chmod(0o755)
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHON', 'PORT', 'NNODES', 'NODE_RANK',
                        'MASTER_ADDR')}
    env.update(PATH=f'{path_dir}{os.pathsep}/usr/bin{os.pathsep}/bin',
               PORT='0')
    proc = subprocess.run(['bash', str(tools / 'dist_train.sh'), 'cfg.py',
                           '2'], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('LAUNCH -m torch.distributed.run'), (
        stub, proc.stdout)
    # no Python that has torch anywhere: one line saying what to set
    os.remove(stub)
    proc = subprocess.run(['bash', str(tools / 'dist_train.sh'), 'cfg.py',
                           '2'], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 2
    assert 'set PYTHON=/path/to/python' in proc.stderr


def _train_refused(tmp_path, *options):
    """tools/train.py with ``options`` and no data: the SystemExit's message
    (the check comes before anything is built or written)."""
    work_dir = tmp_path / 'run'
    with pytest.raises(SystemExit) as err:
        load_tool('train.py').main(
            [BAR_CFG, '--work-dir', str(work_dir), '--cfg-options', *options,
             'train_dataloader.dataset.data_root=' + str(tmp_path / 'none')])
    assert not work_dir.exists()
    return str(err.value)


def test_typo_in_a_hook_name_is_named_with_the_hook_meant(tmp_path):
    """A KeyError about "type" from mmengine's hook build."""
    msg = _train_refused(tmp_path, 'default_hooks.chekpoint.interval=2')
    assert msg.startswith('error: ') and '\n' not in msg
    assert ("default_hooks.chekpoint: no such hook in the config (did you "
            "mean 'checkpoint'?)") in msg


@pytest.mark.parametrize('option,shown', [
    ('optim_wrapper.optimizer.lr=0.1x', "lr must be a finite number >= 0, "
     "got '0.1x'"),
    ('optim_wrapper.optimizer.lr=nan', 'lr must be a finite number >= 0, '
     'got nan'),
    ('optim_wrapper.optimizer.weight_decay=-1', 'weight_decay must be a '
     'finite number >= 0, got -1'),
    ('optim_wrapper.optimizer.eps=inf', 'eps must be a finite number >= 0, '
     'got inf'),
    ('optim_wrapper.optimizer.betas=(0.9,1.5)', 'betas must be two finite '
     'numbers in [0, 1) (e.g. "(0.9,0.999)"), got (0.9, 1.5)')])
def test_optimizer_numbers_are_checked_before_building(tmp_path, option,
                                                       shown):
    """A traceback from inside torch's Adam."""
    msg = _train_refused(tmp_path, option)
    assert f'optim_wrapper.optimizer.{shown}' in msg, msg


def test_seed_must_be_an_int(tmp_path):
    """A cast error from numpy."""
    msg = _train_refused(tmp_path, 'randomness.seed=abc')
    assert "randomness.seed must be an int, got 'abc'" in msg


@pytest.mark.parametrize('option,meant', [
    ('env_cfg.cudnn_benchmak=True', 'cudnn_benchmark'),
    ('env_cfg.mp_cfg.mp_start_methd=spawn', 'mp_start_method'),
    ('randomness.deterministc=True', 'deterministic')])
def test_typo_in_a_free_key_dict_is_refused(tmp_path, option, meant):
    """mmengine's Runner reads env_cfg / randomness with
    .get(), so an unknown key there was ignored without a word."""
    key = option.split('=')[0]
    msg = _train_refused(tmp_path, option)
    assert f"{key}: unknown key (did you mean '{meant}'?)" in msg, msg


def test_free_key_dicts_list_what_mmengine_reads():
    from mmengine.runner import Runner

    from occam_plugin.engine.runner.config_check import free_key_dicts
    reads = free_key_dicts()
    assert set(reads['env_cfg']) == {'cudnn_benchmark', 'mp_cfg',
                                     'dist_cfg', 'resource_limit'}
    assert set(reads['randomness']) == {'seed', 'diff_rank_seed',
                                        'deterministic'}
    assert set(reads['env_cfg.mp_cfg']) == {'mp_start_method',
                                            'opencv_num_threads'}
    assert 'deterministic' in Runner.set_randomness.__code__.co_varnames


@pytest.mark.parametrize('option,rule', [
    ('model.backbone.out_indices=(2,3,4)', 'in 0..3'),
    ('model.backbone.out_indices=(-1,)', 'in 0..3'),
    ('model.backbone.out_indices=3', 'in 0..3'),
    ('model.backbone.num_stages=5', 'must be 1, 2, 3 or 4')])
def test_resnet_stages_out_of_range_are_named(tmp_path, option, rule):
    """mmpretrain's ResNet ends in a bare
    ``assert max(out_indices) < num_stages``."""
    key, value = option.split('=')
    msg = _train_refused(tmp_path, option)
    assert key in msg and 'ResNet' in msg and rule in msg, msg
    if 'out_indices' in key:
        assert repr(eval(value)) in msg, msg


def test_resnet_out_indices_in_a_config_file_are_checked(tmp_path):
    """The same check reads the config, not only --cfg-options (here a
    ResNetV1c, whose __init__ passes **kwargs on, with 3 stages)."""
    from mmengine.config import Config

    from occam_plugin.engine.runner import ConfigError, merge_cfg_options
    cfg = Config(dict(model=dict(
        type='ImageClassifier', backbone=dict(
            type='ResNetV1c', depth=18, num_stages=3, out_indices=(2, 3)))))
    with pytest.raises(ConfigError) as err:
        merge_cfg_options(cfg, None)
    assert str(err.value) == (
        'model.backbone.out_indices=(2, 3): ResNetV1c with num_stages=3 '
        'takes a non-empty tuple of stage indices in 0..2 (e.g. "(2,)").')
    cfg.model.backbone.out_indices = (0, 2)
    merge_cfg_options(cfg, None)  # valid: no error


def test_every_shipped_config_passes_the_checks():
    """No false alarm on what the project ships."""
    import glob

    from mmengine.config import Config

    from occam_plugin.engine.runner.config_check import check_config_values
    configs = [f for f in glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                                    recursive=True) if '_base_' not in f]
    assert len(configs) > 20
    for path in configs:
        check_config_values(Config.fromfile(path))


def test_test_tool_refuses_a_typo_too(tmp_path):
    ckpt = tmp_path / 'epoch_1.pth'
    ckpt.write_bytes(b'')  # never read: the check comes first
    with pytest.raises(SystemExit) as err:
        load_tool('test.py').main(
            [BAR_CFG, str(ckpt), '--work-dir', str(tmp_path / 'run'),
             '--cfg-options', 'env_cfg.cudnn_benchmak=True'])
    assert "did you mean 'cudnn_benchmark'" in str(err.value)
    assert not (tmp_path / 'run').exists()


def test_demo_refuses_a_typo_in_its_cfg_options(tmp_path):
    """tools/demo.py's build_cfg merged any key."""
    demo = load_tool('demo.py')
    with pytest.raises(SystemExit) as err:
        demo.build_cfg('occam', str(tmp_path / 'demo'),
                       cfg_options={'modle.head.use_gates': False})
    msg = str(err.value)
    assert "unknown top-level key 'modle'" in msg
    assert "did you mean 'model'" in msg.lower()
    cfg = demo.build_cfg('occam', str(tmp_path / 'demo'),
                         cfg_options={'model.head.use_gates': False})
    assert cfg.model.head.use_gates is False


@pytest.mark.parametrize('option,own,instead', [
    ('randomness.seed', 'randomness', 'use --seed'),
    ('train_dataloader.dataset.p_bias', 'train_dataloader.dataset.p_bias',
     'use --p-bias'),
    ('test_dataloader.dataset.data_root', 'test_dataloader.dataset.data_root',
     'use --data-root')])
def test_demo_refuses_options_it_would_overwrite(tmp_path, option, own,
                                                 instead):
    """build_cfg sets these after merging --cfg-options: they were ignored
    without a word."""
    demo = load_tool('demo.py')
    with pytest.raises(SystemExit) as err:
        demo.build_cfg('resnet', str(tmp_path / 'demo'),
                       cfg_options={option: 3})
    assert str(err.value) == (
        f'error: --cfg-options {option}=...: tools/demo.py sets '
        f'{own} itself, so the option would be ignored; {instead}.')


def test_training_on_one_class_stops_naming_the_set(tmp_path):
    """A training set of one class (the demo's sized sets were
    all zeros) gave 100 % on every metric; TrainGuardHook, in every
    SafeRunner run (train.py, the demo, JTT's second stage, LfF), stops
    before the first step. One trainval rendering: a train set of one
    digit 0 (validated on the test split: the val split is empty)."""
    from tests.helpers import bmnist_data_options
    cfg = osp.join(REPO, 'configs', 'resnet',
                   'resnet18-w16_1xb64_10e_biased-mnist-small.py')
    data, work_dir = str(tmp_path / 'data'), tmp_path / 'run'
    with pytest.raises(ValueError) as err:
        load_tool('train.py').main(
            [cfg, '--work-dir', str(work_dir), '--cfg-options',
             *bmnist_data_options(data, num_trainval=1, num_test=4),
             'val_dataloader.dataset.split=test',
             'model.backbone.stem_channels=8',
             'model.backbone.base_channels=8'])
    msg = str(err.value)
    assert (f"The training set BiasedMNIST (data_root='{data}', "
            "split='train') has samples of 1 class of the 10 it declares: "
            "all 1 are class 0 ('0')") in msg
    assert 'generate.num_trainval' in msg
    assert not list(work_dir.rglob('*.pth'))  # no step was taken


#: a tool whose main raises what the tools meet: a check's error, a bug
TOOL = '''
import json


def main(argv=None):
    what = argv[0]
    if what == 'check':
        raise ValueError('data root /x does not exist')
    if what == 'key':
        raise KeyError('BiasMetric: a data sample has no `gt_label`')
    if what == 'expression':
        return int('x')  # a ValueError, but of an expression: a bug
    if what == 'library':
        return json.loads('{')  # a ValueError raised inside the stdlib
    raise RuntimeError('an internal invariant')
'''


def _fake_tool(tmp_path):
    import importlib.util
    path = tmp_path / 'fake_tool.py'
    path.write_text(TOOL)
    spec = importlib.util.spec_from_file_location('fake_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_run_tool_ends_a_user_error_with_one_line(tmp_path, monkeypatch):
    from occam_plugin.cli.common import DEBUG_ENV, run_tool
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    main = _fake_tool(tmp_path)
    with pytest.raises(SystemExit) as err:
        run_tool(main, ['check'])
    assert str(err.value) == 'error: data root /x does not exist'
    assert err.value.__cause__ is None and err.value.__suppress_context__
    with pytest.raises(SystemExit) as err:
        run_tool(main, ['key'])  # the message, not KeyError's repr
    assert str(err.value) == \
        'error: BiasMetric: a data sample has no `gt_label`'
    # bugs keep their exception (and so their traceback)
    with pytest.raises(ValueError, match='invalid literal'):
        run_tool(main, ['expression'])
    with pytest.raises(ValueError, match='Expecting'):
        run_tool(main, ['library'])
    with pytest.raises(RuntimeError, match='invariant'):
        run_tool(main, ['other'])
    # OCCAM_PLUGIN_DEBUG=1: the user error with its traceback
    monkeypatch.setenv(DEBUG_ENV, '1')
    with pytest.raises(ValueError, match='/x does not exist'):
        run_tool(main, ['check'])


def test_train_tool_names_a_missing_data_folder_in_one_line(tmp_path):
    """The dataset's check (raised while the Runner builds the data) ends
    tools/train.py as one line, not inside mmengine's traceback."""
    from occam_plugin.cli import run_tool
    missing = tmp_path / 'no_such_BAR'
    with pytest.raises(SystemExit) as err:
        run_tool(load_tool('train.py').main, [
            BAR_CFG, '--work-dir', str(tmp_path / 'run'), '--cfg-options',
            *bar_data_options(missing)])
    msg = str(err.value)
    assert msg.startswith('error: BAR: data root') and str(missing) in msg
    assert '\n' not in msg


@pytest.mark.slow
def test_tool_prints_a_user_error_as_one_line_without_traceback(tmp_path):
    missing = tmp_path / 'no_such_BAR'
    args = [BAR_CFG, '--work-dir', str(tmp_path / 'run'), '--cfg-options',
            *bar_data_options(missing)]
    proc = run_tool_process('train.py', *args, check=False,
                            env=dict(OCCAM_PLUGIN_DEBUG=''))
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert 'Traceback' not in proc.stdout, proc.stdout[-3000:]
    errors = [ln for ln in proc.stdout.splitlines()
              if ln.startswith('error: ')]
    assert len(errors) == 1 and str(missing) in errors[0], proc.stdout
    debug = run_tool_process('train.py', *args, check=False,
                             env=dict(OCCAM_PLUGIN_DEBUG='1'))
    assert debug.returncode == 1
    assert 'Traceback' in debug.stdout and \
        'FileNotFoundError: BAR: data root' in debug.stdout

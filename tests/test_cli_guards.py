"""Clear errors before anything is built: a training length below 1, a busy
rendezvous port of tools/dist_*.sh (and a free one picked when PORT is not
set)."""
import os
import os.path as osp
import socket
import subprocess

import pytest

from conftest import PYTHON, REPO, load_tool

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



def test_training_on_one_class_stops_naming_the_set(tmp_path):
    """Issue 33.1: a training set of one class (the demo's sized sets were
    all zeros) gave 100 % on every metric; TrainGuardHook, in every
    SafeRunner run (train.py, the demo, JTT's second stage, LfF), stops
    before the first step. One trainval rendering: a train set of one
    digit 0 (validated on the test split: the val split is empty)."""
    from conftest import bmnist_data_options
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

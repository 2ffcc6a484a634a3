"""mmpretrain's own tools work on our configs (README "mmpretrain tools").

They ship inside the mmpretrain wheel (``mmpretrain/.mim/tools``); each is
run as a user would, in a subprocess, on tiny data.
"""
import glob
import os.path as osp
import subprocess

import matplotlib
import pytest

import mmpretrain
from tests.helpers import (PYTHON, REPO, TINY_BAR_OPTIONS, TINY_RESNET_OPTIONS,
                           bar_data_options, bmnist_data_options, load_tool,
                           write_bar_folder)

pytestmark = pytest.mark.slow  # trainings and tool runs

TOOLS = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'tools')


def run(tool, *args):
    proc = subprocess.run([PYTHON, osp.join(TOOLS, tool), *args], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return proc.stdout


OCCAM_SMALL = ('configs/occamnets/'
               'occamnets_resnet18-w16_1xb64_10e_biased-mnist-small.py')


def test_print_config():
    out = run('misc/print_config.py', 'configs/occam_resnet18_bar.py')
    assert "type='OccamClassifier'" in out
    assert "runner_type = 'SafeRunner'" in out


def test_get_flops():
    out = run('analysis_tools/get_flops.py',
              OCCAM_SMALL, '--shape', '32', '32')
    assert 'Flops:' in out and 'Params:' in out and 'head.gates' in out


def test_analyze_logs_plots_a_training_curve(tmp_path):
    root = write_bar_folder(tmp_path / 'BAR')
    load_tool('train.py').main(
        ['configs/resnet/resnet18_1xb128_90e_bar.py',
         '--work-dir', str(tmp_path / 'run'),
         '--cfg-options', *TINY_BAR_OPTIONS, *bar_data_options(root),
         *TINY_RESNET_OPTIONS, 'randomness.deterministic=False'])
    scalars = glob.glob(str(tmp_path / 'run' / '*' / 'vis_data' /
                            'scalars.json'))
    out = run('analysis_tools/analyze_logs.py', 'plot_curve', scalars[0],
              '--keys', 'loss', '--out', str(tmp_path / 'loss.png'))
    assert 'save curve to' in out and osp.getsize(tmp_path / 'loss.png') > 0


def browse_args(tmp_path, mode):
    return (OCCAM_SMALL, '-o', str(tmp_path / mode), '-n', '3', '-m', mode,
            '--phase', 'train',
            '--cfg-options', *bmnist_data_options(str(tmp_path / 'data')))


@pytest.mark.parametrize('mode', ['original'])
def test_browse_dataset(tmp_path, mode):
    run('visualization/browse_dataset.py', *browse_args(tmp_path, mode))
    assert len(glob.glob(str(tmp_path / mode / '*.jpg'))) == 3


MATPLOTLIB_3_10 = tuple(int(v) for v in
                        matplotlib.__version__.split('.')[:2]) >= (3, 10)


@pytest.mark.parametrize('mode', ['transformed', 'pipeline'])
def test_browse_dataset_grids_with_our_tool(tmp_path, mode):
    # mmpretrain 1.2.0's own tool draws no grid with matplotlib >= 3.10
    # (docs/tasks/tool_versions.md); tools/analysis/browse_dataset.py does
    proc = subprocess.run(
        [PYTHON, osp.join(TOOLS, 'visualization', 'browse_dataset.py'),
         *browse_args(tmp_path / 'mmpretrain', mode)], cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=600)
    if MATPLOTLIB_3_10:  # when this passes, the note and the tool can go
        assert proc.returncode != 0 and "adjust_bbox() missing 1 required " \
            "positional argument: 'renderer'" in proc.stdout, proc.stdout
    ours = subprocess.run(
        [PYTHON, osp.join(REPO, 'tools', 'analysis', 'browse_dataset.py'),
         *browse_args(tmp_path, mode)], cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=600)
    assert ours.returncode == 0, ours.stdout[-3000:]
    shots = glob.glob(str(tmp_path / mode / '*.jpg'))
    assert len(shots) == 3
    from PIL import Image
    with Image.open(shots[0]) as img:  # the 32-px image in a figure
        assert img.width > 10 * 32, img.size


def test_train_and_test_run_our_configs(tmp_path):
    """mmpretrain's tools/train.py and tools/test.py build `runner_type`
    from mmengine's root registry without importing occam_plugin: they
    stopped with "KeyError: 'SafeRunner is not in the runner registry'"."""
    root = write_bar_folder(tmp_path / 'BAR')
    opts = ('--cfg-options', *TINY_BAR_OPTIONS, *bar_data_options(root),
            *TINY_RESNET_OPTIONS, 'train_cfg.max_epochs=1',
            'train_cfg.val_interval=1', 'randomness.deterministic=False')
    cfg = 'configs/occam_resnet18_bar.py'
    run('train.py', cfg, '--work-dir', str(tmp_path / 'run'), *opts)
    ckpt = tmp_path / 'run' / 'epoch_1.pth'
    assert osp.isfile(ckpt)
    out = run('test.py', cfg, str(ckpt), '--work-dir', str(tmp_path / 'test'),
              *opts)
    assert 'test: accuracy/top1' in out

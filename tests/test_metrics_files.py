"""The metric result files of a real Runner run: where they go and what they
hold (``<runner.log_dir>/bias_metrics.json``, ``exit_metrics.json``)."""
import json
import os
import os.path as osp

import pytest
from mmengine.config import Config

from conftest import REPO

#: a tiny OccamResNet on 10 Colored MNIST images: test/val only, untrained
TINY = {
    'work_dir': None,
    'model.backbone.stem_channels': 8,
    'model.backbone.base_channels': 8,
    'val_dataloader.dataset.num_samples': 10,
    'test_dataloader.dataset.num_samples': 10,
    'val_dataloader.batch_size': 5,
    'test_dataloader.batch_size': 5,
    'randomness.seed': 0,
    # runner.val() outside training: nothing to save a best checkpoint of
    'default_hooks.checkpoint.save_best': None,
}


def _runner(work_dir, **options):
    from mmengine.registry import init_default_scope
    from occam_plugin.engine.runner import build_runner
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'occam_resnet18_colored_mnist.py'))
    cfg.merge_from_dict(dict(TINY, work_dir=str(work_dir), **options))
    cfg.launcher = 'none'
    return build_runner(cfg)


def _read(folder, name):
    with open(osp.join(folder, name), encoding='utf-8') as f:
        return json.load(f)


def _check_files(log_dir, metrics):
    """The files hold what the evaluation returned, plus the extras."""
    bias = _read(log_dir, 'bias_metrics.json')
    assert set(bias) == {'metrics', 'groups', 'num_samples'}
    assert bias['num_samples'] == 10
    logged = {k: v for k, v in metrics.items() if k.startswith('bias/')}
    # 100 class x colour groups: per-group keys only in the file
    assert not any(k.startswith('bias/acc_group_') for k in logged)
    per_group = {f'bias/acc_group_{g}': v['acc']
                 for g, v in bias['groups'].items()}
    assert bias['metrics'] == pytest.approx(dict(logged, **per_group))
    assert sum(v['num'] for v in bias['groups'].values()) == 10

    exits = _read(log_dir, 'exit_metrics.json')
    assert set(exits) == {'metrics', 'exit_flops', 'full_flops',
                          'num_exits', 'num_samples'}
    assert exits['num_exits'] == 4 and exits['num_samples'] == 10
    assert exits['metrics'] == pytest.approx(
        {k: v for k, v in metrics.items() if k.startswith('exit/')})
    flops = exits['exit_flops']
    assert len(flops) == 4 and all(a < b for a, b in zip(flops, flops[1:]))
    assert exits['metrics']['exit/full_gflops'] == pytest.approx(
        exits['full_flops'] / 1e9)
    return bias, exits


def test_val_and_test_write_the_files_into_the_log_dir(tmp_path):
    runner = _runner(tmp_path / 'work')
    val = runner.val()
    val_files = _check_files(runner.log_dir, val)
    test = runner.test()
    test_files = _check_files(runner.log_dir, test)
    # same model, same split: the test run rewrites the same numbers
    assert test_files == val_files
    assert {'bias_metrics.json', 'exit_metrics.json'} <= set(
        os.listdir(runner.log_dir))
    if os.environ.get('OCCAM_METRICS_SNAPSHOT'):  # before/after a refactor
        with open(os.environ['OCCAM_METRICS_SNAPSHOT'], 'w') as f:
            json.dump(dict(zip(('bias', 'exit'), test_files)), f, indent=1,
                      sort_keys=True)

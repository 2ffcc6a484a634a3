"""The metric result files of a real Runner run: where they go and what they
hold (``<runner.log_dir>/bias_metrics.json``, ``exit_metrics.json``)."""
import json
import os
import os.path as osp

import pytest
from mmengine.config import Config

from tests.helpers import REPO
from occam_plugin.evaluation.metrics import ResultsFileMetric

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
        osp.join(REPO, 'configs', 'occamnets',
                 'occamnets_resnet18_1xb256_100e_colored-mnist.py'))
    cfg.merge_from_dict(dict(TINY, work_dir=str(work_dir), **options))
    cfg.launcher = 'none'
    return build_runner(cfg)


def _read(folder, name):
    with open(osp.join(folder, name), encoding='utf-8') as f:
        return json.load(f)


def _check_files(log_dir, metrics):
    """The files hold what the evaluation returned, plus the extras."""
    bias = _read(log_dir, 'bias_metrics.json')
    # 10 samples in 100 class x colour groups: said so
    assert set(bias) == {'metrics', 'groups', 'num_samples', 'sparse_groups'}
    assert bias['num_samples'] == 10
    empty = bias['metrics']['bias/num_empty_groups']
    assert bias['sparse_groups'].startswith(f'{empty} of the 100 groups')
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


@pytest.mark.slow
def test_val_and_test_write_the_files_into_the_log_dir(tmp_path):
    runner = _runner(tmp_path / 'work')
    # no config line: SafeRunner adds the file hook; the exit FLOPs come
    # with the predictions, no hook in custom_hooks measures them
    assert not runner.cfg.get('custom_hooks')
    hooks = [type(h).__name__ for h in runner.hooks]
    assert 'MetricsFileHook' in hooks
    val = runner.val()
    val_files = _check_files(runner.log_dir, val)
    # the groups are keyed by id, named as the dataset names them
    names = runner.val_dataloader.dataset.metainfo['group_names']
    assert all(v['name'] == names[int(g)]
               for g, v in val_files[0]['groups'].items())
    test = runner.test()
    test_files = _check_files(runner.log_dir, test)
    # same model, same split: the test run rewrites the same numbers
    assert test_files == val_files
    # the FLOPs the model measured for its 28 px inputs
    from occam_plugin.models.utils.flops import exit_flops
    measured = exit_flops(runner.model, (3, 28, 28))
    assert test_files[1]['exit_flops'] == measured['exit']
    assert test_files[1]['full_flops'] == measured['full']
    assert {'bias_metrics.json', 'exit_metrics.json'} <= set(
        os.listdir(runner.log_dir))


class _Metric(ResultsFileMetric):
    """What MetricsFileHook reads of a metric: the declared protocol."""

    def __init__(self, result_file=None, last_result=None, out_dir=None):
        self.result_file = result_file
        self.last_result = last_result
        self.out_dir = out_dir


def test_hook_writes_last_results_to_log_dir_or_out_dir(tmp_path):
    from types import SimpleNamespace

    from mmpretrain.registry import HOOKS
    hook = HOOKS.build(dict(type='MetricsFileHook'))
    elsewhere = str(tmp_path / 'elsewhere')
    evaluator = SimpleNamespace(metrics=[
        _Metric('a.json', dict(metrics={'a/x': 1.0}, num_samples=2)),
        _Metric('b.json', dict(metrics={}), out_dir=elsewhere),
        _Metric('c.json', None),  # nothing computed (e.g. another rank)
        SimpleNamespace(),  # a metric without a result file (Accuracy)
        # the attributes without the declared protocol: not a results file
        SimpleNamespace(result_file='d.json', last_result=dict(metrics={}),
                        out_dir=None),
    ])
    runner = SimpleNamespace(log_dir=str(tmp_path / 'log'),
                             val_evaluator=evaluator,
                             test_evaluator=SimpleNamespace(metrics=[]))
    hook.after_val_epoch(runner, metrics={})
    assert _read(runner.log_dir, 'a.json') == dict(metrics={'a/x': 1.0},
                                                   num_samples=2)
    assert _read(elsewhere, 'b.json') == dict(metrics={})
    assert sorted(os.listdir(runner.log_dir)) == ['a.json']
    hook.after_test_epoch(runner, metrics={})  # an empty evaluator: no-op
    assert sorted(os.listdir(runner.log_dir)) == ['a.json']


@pytest.mark.parametrize('prefix, key', [('bias', 'bias/acc'), (None, 'acc')])
def test_kept_result_has_the_logged_keys(prefix, key):
    metric = _Metric('a.json')
    metric.prefix = prefix
    result = dict(metrics={'acc': 50.0}, num_samples=4)
    metric.keep_result(result)
    assert metric.last_result == dict(metrics={key: 50.0}, num_samples=4)
    assert result == dict(metrics={'acc': 50.0}, num_samples=4)  # a copy


def test_metrics_outside_a_runner_write_nothing(tmp_path, monkeypatch):
    import torch
    from mmengine.evaluator import Evaluator
    from mmpretrain.registry import METRICS
    from mmpretrain.structures import DataSample
    monkeypatch.chdir(tmp_path)
    metric = METRICS.build(dict(type='BiasMetric'))
    ev = Evaluator([metric])
    ev.process(data_samples=[
        DataSample().set_gt_label(1).set_pred_score(torch.tensor([.2, .8]))])
    assert ev.evaluate(1) == {'bias/acc': 100.0,
                              'bias/worst_class_acc': 100.0,
                              'bias/worst_class': 1}
    assert metric.last_result['num_samples'] == 1
    assert os.listdir(tmp_path) == []

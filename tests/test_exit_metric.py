"""ExitMetric against hand-made exits/scores, and the per-exit FLOPs helper."""
import json
import os.path as osp

import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.logging import MessageHub

import occam_plugin  # noqa: F401  (registers)
from mmpretrain.registry import METRICS
from mmpretrain.structures import DataSample

# 5 samples, 3 exits, 3 classes: (gt, argmax of exit 0/1/2, exit taken)
#   s0 gt 0: [0, 0, 1] exit 1
#   s1 gt 1: [2, 1, 1] exit 1
#   s2 gt 2: [0, 2, 2] exit 2
#   s3 gt 0: [1, 1, 0] exit 2
#   s4 gt 1: [1, 0, 1] exit 1
ROWS = [(0, [0, 0, 1], 1), (1, [2, 1, 1], 1), (2, [0, 2, 2], 2),
        (0, [1, 1, 0], 2), (1, [1, 0, 1], 1)]


def _samples():
    out = []
    for gt, preds, exit_idx in ROWS:
        scores = torch.full((3, 3), 0.1)
        for k, p in enumerate(preds):
            scores[k, p] = 0.8
        s = DataSample().set_gt_label(gt).set_pred_label(preds[exit_idx])
        s.set_field(exit_idx, 'exit_idx')
        s.set_field(scores, 'exit_scores')
        out.append(s)
    return out


def _evaluate(metric, samples):
    ev = Evaluator([metric])
    ev.process(data_samples=samples)
    return ev.evaluate(len(samples))


def test_hand_counted_exits_and_compute(tmp_path):
    metric = METRICS.build(
        dict(type='ExitMetric', exit_flops=[1e6, 3e6, 10e6],
             out_dir=str(tmp_path)))
    res = _evaluate(metric, _samples())
    approx = lambda v: pytest.approx(v, abs=1e-3)  # noqa: E731
    assert res['exit/acc_e0'] == approx(40.0)  # s0, s4
    assert res['exit/acc_e1'] == approx(60.0)  # s0, s1, s2
    assert res['exit/acc_e2'] == approx(80.0)  # s1..s4
    assert res['exit/share_e0'] == approx(0.0)
    assert res['exit/share_e1'] == approx(60.0)
    assert res['exit/share_e2'] == approx(40.0)
    assert 'exit/acc_exited_e0' not in res  # nobody left there
    assert res['exit/acc_exited_e1'] == approx(66.667)  # s0, s1 of s0,s1,s4
    assert res['exit/acc_exited_e2'] == approx(100.0)
    # (0.6 * 3e6 + 0.4 * 10e6) / 10e6
    assert res['exit/expected_compute'] == approx(0.58)
    assert res['exit/expected_gflops'] == approx(0.0058)
    assert res['exit/full_gflops'] == approx(0.01)
    data = json.load(open(osp.join(tmp_path, 'exit_metrics.json')))
    assert data['exit_flops'] == [1e6, 3e6, 10e6]
    assert data['metrics']['exit/share_e1'] == approx(60.0)


def test_flops_from_message_hub(tmp_path):
    # ExitFlopsHook publishes the FLOPs here; the metric reads them lazily
    hub = MessageHub.get_instance('test_exit_metric_hub')
    hub.update_info('occam_exit_flops', [2.0, 4.0, 8.0])
    res = _evaluate(METRICS.build(dict(type='ExitMetric',
                                       out_dir=str(tmp_path))), _samples())
    assert res['exit/expected_compute'] == pytest.approx(
        (0.6 * 4 + 0.4 * 8) / 8)
    hub.update_info('occam_exit_flops', None)
    res = _evaluate(METRICS.build(dict(type='ExitMetric',
                                       out_dir=str(tmp_path))), _samples())
    assert 'exit/expected_compute' not in res and 'exit/acc_e2' in res


def test_bad_inputs_are_named(tmp_path):
    plain = DataSample().set_gt_label(1).set_pred_label(1)
    with pytest.raises(KeyError, match=r"lacks \['exit_idx', 'exit_scores'\]"):
        _evaluate(METRICS.build(dict(type='ExitMetric')), [plain])
    with pytest.raises(ValueError, match='3 exits'):
        _evaluate(
            METRICS.build(dict(type='ExitMetric', exit_flops=[1.0, 2.0],
                               out_dir=str(tmp_path))), _samples())
    with pytest.raises(ValueError, match='positive FLOPs'):
        METRICS.build(dict(type='ExitMetric', exit_flops=[0, 1]))


def test_dynamic_inference_nan_exits_and_spent_flops(tmp_path):
    # dynamic inference: exits never reached have NaN scores; per-sample
    # `flops` (what predict spent) is averaged
    samples = _samples()
    for s, spent in zip(samples, [1e6, 3e6, 5e6, 7e6, 9e6]):
        s.exit_scores[0] = float('nan')  # exit 0 never run at inference
        s.set_field(spent, 'flops', field_type='metainfo')
    samples[0].exit_scores[2] = float('nan')  # s0 left at exit 1
    hub = MessageHub.get_instance('test_exit_metric_dyn')
    hub.update_info('occam_exit_flops', dict(exit=[1.0, 3.0, 10.0],
                                             full=20.0))
    res = _evaluate(METRICS.build(dict(type='ExitMetric',
                                       out_dir=str(tmp_path))), samples)
    hub.update_info('occam_exit_flops', None)
    assert 'exit/acc_e0' not in res
    assert res['exit/acc_e2'] == pytest.approx(100.0)  # s1..s4 all right
    assert res['exit/mean_gflops_spent'] == pytest.approx(5e-3)
    # (0.6 * 3 + 0.4 * 10) / 20, relative to the whole network
    assert res['exit/expected_compute'] == pytest.approx(0.29)


def test_exit_flops_helper_on_tiny_occam():
    from mmpretrain.registry import MODELS
    from occam_plugin.models.utils.flops import exit_flops
    model = MODELS.build(
        dict(type='OccamClassifier',
             backbone=dict(type='ResNet_CIFAR', depth=18, stem_channels=8,
                           base_channels=8, out_indices=(0, 1, 2, 3)),
             neck=dict(type='ExitNeck'),
             head=dict(type='OccamHead', num_classes=4)))
    res = exit_flops(model, (3, 16, 16))
    flops = res['exit']
    assert len(flops) == 4
    assert all(a < b for a, b in zip(flops, flops[1:])), flops
    # exit 0 is not run at inference: F_0 is stage 0 only
    assert flops[0] == res['stage'][0]
    assert flops[1] == sum(res['stage'][:2]) + res['exit_block'][1]
    assert flops[-1] < res['full']  # the whole network also runs exit 0
    with_unused = exit_flops(model, (3, 16, 16), include_unused_exits=True)
    assert with_unused['exit'][-1] == pytest.approx(res['full'], rel=0.02)
    with pytest.raises(ValueError, match=r'expected one image \(C, H, W\)'):
        exit_flops(model, (1, 3, 16, 16))

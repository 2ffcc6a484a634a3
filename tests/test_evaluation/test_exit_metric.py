"""ExitMetric against hand-made exits/scores, and the per-exit FLOPs helper."""
import copy

import pytest
import torch
from mmengine.evaluator import Evaluator

import occam_plugin  # noqa: F401  (registers)
from mmpretrain.registry import METRICS
from mmpretrain.structures import DataSample
from tests.helpers import tiny_occam_cfg
from occam_plugin.errors import MissingKeyError

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


def test_hand_counted_exits_and_compute():
    metric = METRICS.build(
        dict(type='ExitMetric', exit_flops=[1e6, 3e6, 10e6]))
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
    # the full result (what MetricsFileHook writes to exit_metrics.json)
    data = metric.last_result
    assert data['exit_flops'] == [1e6, 3e6, 10e6]
    assert data['full_flops'] == 10e6
    assert data['num_exits'] == 3 and data['num_samples'] == 5
    assert data['metrics'] == res


def test_calculate_by_hand():
    """The pure statistics: 4 samples, 2 exits (exit 0 not run for s3)."""
    res = METRICS.get('ExitMetric').calculate(
        exit_idx=[0, 1, 1, 1],
        exit_preds=[[2, 2], [0, 1], [1, 1], [-1, 0]],
        gt_label=[2, 1, 0, 0],
        flops_spent=[1.0, 3.0, 3.0],  # s3 reports none
        exit_flops=[2.0, 5.0], full_flops=8.0)
    m = res['metrics']
    assert m['acc_e0'] == pytest.approx(100 / 3)  # s0 of s0..s2
    assert m['acc_e1'] == 75.0  # s0, s1, s3
    assert m['share_e0'] == 25.0 and m['share_e1'] == 75.0
    assert m['acc_exited_e0'] == 100.0
    assert m['acc_exited_e1'] == pytest.approx(200 / 3)  # s1, s3 of s1..s3
    assert m['mean_gflops_spent'] == pytest.approx(7 / 3 / 1e9)
    # (0.25 * 2 + 0.75 * 5) / 8
    assert m['expected_compute'] == pytest.approx(4.25 / 8)
    assert res['num_exits'] == 2 and res['num_samples'] == 4
    assert res['exit_flops'] == [2.0, 5.0] and res['full_flops'] == 8.0
    # without FLOPs: no compute keys, full defaults to the last exit
    bare = METRICS.get('ExitMetric').calculate([0], [[1, 1]], [1])
    assert set(bare['metrics']) == {'acc_e0', 'acc_e1', 'share_e0',
                                    'share_e1', 'acc_exited_e0'}
    assert bare['exit_flops'] is None and bare['full_flops'] is None
    assert METRICS.get('ExitMetric').calculate(
        [0], [[1, 1]], [1], exit_flops=[2.0, 4.0])['full_flops'] == 4.0


def _with_flops(samples, exit_flops, full_flops):
    """As OccamClassifier.predict sets them (metainfo)."""
    for s in samples:
        s.set_field(list(exit_flops), 'exit_flops', field_type='metainfo')
        s.set_field(full_flops, 'full_flops', field_type='metainfo')
    return samples


def test_flops_from_the_predictions():
    # OccamClassifier.predict puts the FLOPs on every prediction
    res = _evaluate(METRICS.build(dict(type='ExitMetric')),
                    _with_flops(_samples(), [2.0, 4.0, 8.0], 8.0))
    assert res['exit/expected_compute'] == pytest.approx(
        (0.6 * 4 + 0.4 * 8) / 8)
    # the argument wins over the predictions
    res = _evaluate(METRICS.build(dict(type='ExitMetric',
                                       exit_flops=[1.0, 2.0, 10.0])),
                    _with_flops(_samples(), [2.0, 4.0, 8.0], 8.0))
    assert res['exit/expected_compute'] == pytest.approx(
        (0.6 * 2 + 0.4 * 10) / 10)
    # neither: accuracies and shares only
    res = _evaluate(METRICS.build(dict(type='ExitMetric')), _samples())
    assert 'exit/expected_compute' not in res and 'exit/acc_e2' in res
    # inputs of two shapes: the mean cost of each exit
    samples = _with_flops(_samples(), [2.0, 4.0, 8.0], 8.0)
    _with_flops(samples[:1], [4.0, 8.0, 16.0], 16.0)
    metric = METRICS.build(dict(type='ExitMetric'))
    _evaluate(metric, samples)
    assert metric.last_result['exit_flops'] == pytest.approx([2.4, 4.8, 9.6])
    assert metric.last_result['full_flops'] == pytest.approx(9.6)


def test_bad_inputs_are_named():
    plain = DataSample().set_gt_label(1).set_pred_label(1)
    with pytest.raises(MissingKeyError,
                       match=r"lacks \['exit_idx', 'exit_scores'\]"):
        _evaluate(METRICS.build(dict(type='ExitMetric')), [plain])
    with pytest.raises(ValueError, match='3 exits'):
        _evaluate(
            METRICS.build(dict(type='ExitMetric', exit_flops=[1.0, 2.0])),
            _samples())
    with pytest.raises(ValueError, match='positive FLOPs'):
        METRICS.build(dict(type='ExitMetric', exit_flops=[0, 1]))


def test_dynamic_inference_nan_exits_and_spent_flops():
    # dynamic inference: exits never reached have NaN scores; per-sample
    # `flops` (what predict spent) is averaged
    samples = _samples()
    for s, spent in zip(samples, [1e6, 3e6, 5e6, 7e6, 9e6]):
        s.exit_scores[0] = float('nan')  # exit 0 never run at inference
        s.set_field(spent, 'flops', field_type='metainfo')
    samples[0].exit_scores[2] = float('nan')  # s0 left at exit 1
    res = _evaluate(METRICS.build(dict(type='ExitMetric')),
                    _with_flops(samples, [1.0, 3.0, 10.0], 20.0))
    assert 'exit/acc_e0' not in res
    assert res['exit/acc_e2'] == pytest.approx(100.0)  # s1..s4 all right
    assert res['exit/mean_gflops_spent'] == pytest.approx(5e-3)
    # (0.6 * 3 + 0.4 * 10) / 20, relative to the whole network
    assert res['exit/expected_compute'] == pytest.approx(0.29)


def test_exit_flops_helper_on_tiny_occam():
    from mmpretrain.registry import MODELS
    from occam_plugin.models.utils.flops import exit_flops
    model = MODELS.build(tiny_occam_cfg(4))
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


def _tiny_occam(**kw):
    from mmpretrain.registry import MODELS
    return MODELS.build(tiny_occam_cfg(4, **kw))


@pytest.mark.parametrize('mode', ['compute_all', 'dynamic'])
def test_predictions_carry_exit_flops(mode):
    from occam_plugin.models.utils.flops import exit_flops
    model = _tiny_occam(inference_mode=mode).eval()
    x = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        out = model.predict(x, [DataSample() for _ in range(3)])
    ref = exit_flops(model, (3, 16, 16))
    for ds in out:
        assert ds.exit_flops == ref['exit'] and ds.full_flops == ref['full']
        assert 'exit_flops' in ds.metainfo_keys()
    # measured once per shape, kept outside the state_dict
    assert not any('flops' in k for k in model.state_dict())
    assert list(model._flop_profiles) == [(3, 16, 16)]
    # a changed min_inference_exit is honoured by the next prediction
    model.head.min_inference_exit = 2
    with torch.no_grad():
        again = model.predict(x, [DataSample() for _ in range(3)])
    assert again[0].exit_flops == exit_flops(model, (3, 16, 16))['exit']
    assert again[0].exit_flops[1] < out[0].exit_flops[1]  # exit 1 not run
    # ExitMetric reads them from the predictions
    for ds in again:
        ds.set_gt_label(0)
    res = _evaluate(METRICS.build(dict(type='ExitMetric')), again)
    assert res['exit/full_gflops'] == pytest.approx(ref['full'] / 1e9)


@pytest.mark.parametrize('train_mode', [False, True])
def test_flops_measurement_changes_nothing(train_mode):
    """The first predict measures FLOPs (FlopAnalyzer runs the network);
    scores, BN statistics, train/eval mode and RNG state are as without."""
    model = _tiny_occam().train(train_mode)
    twin = copy.deepcopy(model)  # same weights, never measured
    x = torch.rand(4, 3, 16, 16)
    torch.manual_seed(0)
    with torch.no_grad():
        measured = model.predict(x, [DataSample() for _ in range(4)])
    rng_measured = torch.get_rng_state()
    torch.manual_seed(0)
    with torch.no_grad():
        plain = twin._predict_all(x, [DataSample() for _ in range(4)])
    assert list(model._flop_profiles) == [(3, 16, 16)]
    assert twin._flop_profiles == {}
    assert torch.equal(rng_measured, torch.get_rng_state())
    assert model.training == train_mode
    for a, b in zip(measured, plain):
        assert torch.equal(a.pred_score, b.pred_score)
        assert torch.equal(a.exit_scores, b.exit_scores)
        assert a.exit_idx == b.exit_idx
    twin_state = twin.state_dict()
    for k, v in model.state_dict().items():  # BN running stats included
        assert torch.equal(v, twin_state[k]), k

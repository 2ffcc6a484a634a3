"""BiasMetric against hand-counted predictions (numbers written out)."""
import logging

import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.logging import MMLogger

import occam_plugin  # noqa: F401  (registers)
from mmpretrain.registry import METRICS
from mmpretrain.structures import DataSample
from occam_plugin.errors import MissingKeyError


def _sample(gt, pred, **fields):
    s = DataSample().set_gt_label(gt).set_pred_label(pred)
    for k, v in fields.items():
        s.set_field(v, k)
    return s


# 6 samples, 4 groups declared, group 2 empty, group 3 has one sample.
#   idx group correct aligned  color  scale
#   0   0     yes     True     True   True
#   1   0     yes     True     False  True
#   2   0     no      True     True   True
#   3   1     no      False    False  True
#   4   1     no      False    True   True
#   5   3     yes     False    False  True
ROWS = [
    (0, 1, 1, True, True),
    (0, 2, 2, True, False),
    (0, 3, 4, True, True),
    (1, 5, 6, False, False),
    (1, 7, 8, False, True),
    (3, 9, 9, False, False),
]


def _samples():
    out = []
    for g, gt, pred, aligned, color in ROWS:
        out.append(
            _sample(gt, pred, group_idx=g, bias_aligned=aligned,
                    bias_factors_aligned=dict(color=color, scale=True)))
    return out


def _evaluate(metric, samples, meta):
    ev = Evaluator([metric])
    ev.dataset_meta = meta
    ev.process(data_samples=samples)
    return ev.evaluate(len(samples))


def test_hand_counted_groups_aligned_factors():
    metric = METRICS.build(dict(type='BiasMetric'))
    res = _evaluate(metric, _samples(), dict(classes=list('0123456789'),
                                             num_groups=4))
    approx = lambda v: pytest.approx(v, abs=1e-3)  # noqa: E731
    assert res['bias/acc'] == approx(50.0)  # 3 of 6
    assert res['bias/acc_group_0'] == approx(66.667)  # 2 of 3
    assert res['bias/acc_group_1'] == approx(0.0)  # 0 of 2
    assert res['bias/acc_group_3'] == approx(100.0)  # one-sample group
    assert 'bias/acc_group_2' not in res  # empty group skipped ...
    assert res['bias/num_empty_groups'] == 1  # ... and counted
    assert res['bias/num_groups'] == 4
    # (66.667 + 0 + 100) / 3 -- not the overall 50
    assert res['bias/unbiased_acc'] == approx(55.556)
    assert res['bias/worst_group_acc'] == approx(0.0)
    assert res['bias/worst_group'] == 1
    assert res['bias/aligned_acc'] == approx(66.667)  # samples 0,1,2
    assert res['bias/conflicting_acc'] == approx(33.333)  # samples 3,4,5
    assert res['bias/num_aligned'] == 3 and res['bias/num_conflicting'] == 3
    assert res['bias/color_aligned_acc'] == approx(33.333)  # 0,2,4
    assert res['bias/color_conflicting_acc'] == approx(66.667)  # 1,3,5
    assert res['bias/scale_aligned_acc'] == approx(50.0)
    assert 'bias/scale_conflicting_acc' not in res  # no such sample

    # the full result (what MetricsFileHook writes to bias_metrics.json)
    data = metric.last_result
    assert set(data) == {'metrics', 'groups', 'num_samples'}
    assert data['metrics'] == res
    assert data['groups']['3'] == dict(acc=100.0, num=1)
    assert '2' not in data['groups']
    assert data['num_samples'] == 6


def test_calculate_by_hand():
    """The pure statistics on plain lists (the 6 samples above)."""
    rows = list(zip(*ROWS))
    correct = [gt == pred for gt, pred in zip(rows[1], rows[2])]
    res = METRICS.get('BiasMetric').calculate(
        correct, group_idx=rows[0], bias_aligned=rows[3],
        factors_aligned=[dict(color=c) for c in rows[4]], num_groups=4)
    m = res['metrics']
    assert m['acc'] == 50.0
    assert m['unbiased_acc'] == pytest.approx((200 / 3 + 0 + 100) / 3)
    assert (m['worst_group'], m['worst_group_acc']) == (1, 0.0)
    assert m['num_empty_groups'] == 1
    assert m['aligned_acc'] == pytest.approx(200 / 3)
    assert m['color_conflicting_acc'] == pytest.approx(200 / 3)
    assert res['groups'] == {'0': dict(acc=pytest.approx(200 / 3), num=3),
                             '1': dict(acc=0.0, num=2),
                             '3': dict(acc=100.0, num=1)}
    # nothing but correctness: overall accuracy only; largest id + 1 groups
    assert METRICS.get('BiasMetric').calculate([True, False]) == dict(
        metrics=dict(acc=50.0), groups={}, num_samples=2)
    assert METRICS.get('BiasMetric').calculate(
        [True], group_idx=[2])['metrics']['num_empty_groups'] == 2


def test_many_groups_logged_only_in_json():
    metric = METRICS.build(dict(type='BiasMetric', max_logged_groups=2))
    res = _evaluate(metric, _samples(), dict(num_groups=4))
    assert not any(k.startswith('bias/acc_group_') for k in res)
    assert metric.last_result['metrics']['bias/acc_group_1'] == 0.0


def test_num_groups_fallbacks():
    # no dataset_meta: num_groups argument, then largest id + 1
    res = _evaluate(BiasMetric_(num_groups=6), _samples(), None)
    assert res['bias/num_empty_groups'] == 3  # groups 2, 4, 5
    res = _evaluate(BiasMetric_(), _samples(), None)
    assert res['bias/num_groups'] == 4 and res['bias/num_empty_groups'] == 1


def BiasMetric_(**kw):
    return METRICS.build(dict(type='BiasMetric', **kw))


def test_plain_dataset_and_pred_score():
    # no bias annotations (e.g. BAR): only overall accuracy; pred_score used
    s1 = DataSample().set_gt_label(1).set_pred_score(
        torch.tensor([0.1, 0.7, 0.2]))
    s2 = DataSample().set_gt_label(0).set_pred_score(
        torch.tensor([0.1, 0.7, 0.2]))
    assert 'pred_label' not in s1  # pred_score only
    res = _evaluate(BiasMetric_(), [s1, s2], None)
    # class 1 right, class 0 wrong: the worst class is 0
    assert res == {'bias/acc': 50.0, 'bias/worst_class_acc': 0.0,
                   'bias/worst_class': 0}


def test_worst_class_by_hand():
    # class 0: 2 of 3 right, class 1: 1 of 2, class 2: 1 of 1
    gt = [0, 0, 0, 1, 1, 2]
    pred = [0, 0, 1, 1, 0, 2]
    res = _evaluate(BiasMetric_(), [_sample(g, p) for g, p in zip(gt, pred)],
                    dict(classes=['a', 'b', 'c']))
    assert res['bias/acc'] == pytest.approx(400 / 6)
    assert res['bias/worst_class_acc'] == pytest.approx(50.0)
    assert res['bias/worst_class'] == 1
    m = METRICS.get('BiasMetric').calculate(
        [g == p for g, p in zip(gt, pred)], gt_label=gt)['metrics']
    assert (m['worst_class'], m['worst_class_acc']) == (1, 50.0)
    # ties: the smallest class id
    m = METRICS.get('BiasMetric').calculate(
        [False, True, False], gt_label=[2, 0, 1])['metrics']
    assert (m['worst_class'], m['worst_class_acc']) == (1, 0.0)


def test_group_names_in_the_file_ids_kept():
    names = ['c0|a', 'c0|b', 'c1|a', 'c1|b']
    metric = BiasMetric_()
    res = _evaluate(metric, _samples(), dict(num_groups=4,
                                             group_names=names))
    # logged keys: ids, as without names
    assert res['bias/worst_group'] == 1 and 'bias/acc_group_3' in res
    groups = metric.last_result['groups']
    assert sorted(groups) == ['0', '1', '3']  # ids, empty group 2 skipped
    assert groups['3'] == dict(acc=100.0, num=1, name='c1|b')
    assert groups['1']['name'] == 'c0|b'
    assert set(metric.last_result) == {'metrics', 'groups', 'num_samples'}


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def test_missing_annotations_warned_once_and_in_the_file():
    samples = [_sample(0, 0), _sample(1, 0)]
    metric = BiasMetric_()
    ev = Evaluator([metric])
    ev.dataset_meta = dict(classes=['a', 'b'])
    logger, seen = MMLogger.get_current_instance(), _Records()
    logger.addHandler(seen)
    try:
        for _ in range(2):  # two evaluations, one warning
            ev.process(data_samples=samples)
            res = ev.evaluate(2)
    finally:
        logger.removeHandler(seen)
    warned = [r for r in seen.records
              if 'carry no `group_idx` or `bias_aligned`' in r.getMessage()]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING
    assert set(res) == {'bias/acc', 'bias/worst_class_acc',
                        'bias/worst_class'}
    data = metric.last_result
    assert data['groups'] == {}
    note = data['missing_annotations']
    assert 'no `group_idx` or `bias_aligned`' in note
    assert 'BiasAnnotatedDataset' in note and 'PackBiasInputs' in note
    # the dataset declares groups: the pipeline dropped them, said so
    metric = BiasMetric_()
    _evaluate(metric, samples, dict(classes=['a', 'b'], num_groups=4))
    assert 'declares 4 groups' in metric.last_result['missing_annotations']
    # annotated samples: no such entry
    metric = BiasMetric_()
    _evaluate(metric, _samples(), dict(num_groups=4))
    assert 'missing_annotations' not in metric.last_result


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r'group_idx 3 outside \[0, 2\)'):
        _evaluate(BiasMetric_(), _samples(),
                  dict(num_groups=2))
    mixed = _samples()[:2] + [_sample(1, 1)]
    with pytest.raises(ValueError, match='1 of 3 samples have no `group_idx`'):
        _evaluate(BiasMetric_(), mixed, None)
    no_pred = DataSample().set_gt_label(1)
    with pytest.raises(MissingKeyError,
                       match='neither `pred_label` nor') as err:
        _evaluate(BiasMetric_(), [no_pred], None)
    # the message as written, not quoted as a KeyError's key
    assert str(err.value).startswith('BiasMetric: a data sample has neither')
    with pytest.raises(ValueError, match='num_groups must be >= 1'):
        BiasMetric_(num_groups=0)


def _warnings(metric, samples, meta):
    logger, seen = MMLogger.get_current_instance(), _Records()
    logger.addHandler(seen)
    try:
        res = _evaluate(metric, samples, meta)
    finally:
        logger.removeHandler(seen)
    return res, [r for r in seen.records if r.levelno == logging.WARNING]


def test_mostly_empty_groups_warn_with_the_count():
    """The demo's 100 test images of one digit gave unbiased /
    worst-group numbers over 10 of 100 groups, silently. ROWS fill groups
    0, 1 and 3: of 8 declared groups 5 are empty (more than half: a
    warning), of 6 three are (half: none)."""
    metric = BiasMetric_()
    res, warned = _warnings(metric, _samples(), dict(num_groups=8))
    assert res['bias/num_empty_groups'] == 5
    assert len(warned) == 1
    msg = warned[0].getMessage()
    assert msg.startswith('BiasMetric: 5 of the 8 groups have no sample')
    assert 'over the 3 non-empty groups only' in msg
    assert metric.last_result['sparse_groups'] in msg
    metric = BiasMetric_()
    res, warned = _warnings(metric, _samples(), dict(num_groups=6))
    assert res['bias/num_empty_groups'] == 3
    assert warned == [] and 'sparse_groups' not in metric.last_result

"""DFR: the L1-logistic objective, gradient and proximal step by hand on
tiny tensors, the solver's optimality (and sklearn's answer on a binary
problem), balanced subsets and halves, the standardisation folded into the
layer, the layers chosen on each classifier, and tools/dfr.py end to end
(a ResNet and an OccamNet trained through tools/train.py, their last
layer(s) retrained, the result tested strictly through tools/test.py)."""
import json
import math
import os

import numpy as np
import pytest
import torch
import occam_plugin  # noqa: F401  (registers)

from conftest import load_tool
from occam_plugin.apis.dfr import (Scaler, balanced_subset,
                                   check_balance_keys, check_options,
                                   dfr_fit, group_accuracy,
                                   stratified_halves)
from occam_plugin.apis.l1_logistic import (fit_l1_logistic, objective,
                                           smooth_grad, soft_threshold)
from test_bias_annotated_dataset import (WATERBIRDS_ROWS,
                                         tiny_waterbirds_options,
                                         waterbirds_config, write_waterbirds)

X = torch.tensor([[1., 0.], [0., 2.]], dtype=torch.float64)
Y = torch.tensor([0, 1])
W = torch.tensor([[1., -1.], [0., 0.5]], dtype=torch.float64)
B = torch.tensor([0., 1.], dtype=torch.float64)


def test_soft_threshold_by_hand():
    got = soft_threshold(torch.tensor([3., -0.5, 1., -2.]), 1.0)
    assert got.tolist() == [2., 0., 0., -1.]


def test_objective_and_gradient_by_hand():
    # logits: x0 -> (1, 1), x1 -> (-2, 2)
    ce0 = -math.log(math.exp(1) / (math.exp(1) + math.exp(1)))  # log 2
    ce1 = -math.log(math.exp(2) / (math.exp(-2) + math.exp(2)))
    l1 = 1 + 1 + 0 + 0.5
    C = 2.0
    want = (ce0 + ce1) / 2 + l1 / (C * 2)
    assert float(objective(X, Y, W, B, C)) == pytest.approx(want, abs=1e-12)
    # gradient of the mean CE: (P - onehot)^T X / n
    p1 = math.exp(-2) / (math.exp(-2) + math.exp(2))  # x1's class-0 prob
    r = [[0.5 - 1, 0.5], [p1, (1 - p1) - 1]]
    gW_want = [[(r[0][0] * 1 + r[1][0] * 0) / 2, (r[0][0] * 0 + r[1][0] * 2)
                / 2], [(r[0][1] * 1) / 2, (r[1][1] * 2) / 2]]
    gb_want = [(r[0][0] + r[1][0]) / 2, (r[0][1] + r[1][1]) / 2]
    gW, gb = smooth_grad(X, Y, W, B)
    assert np.allclose(gW.numpy(), gW_want, atol=1e-12)
    assert np.allclose(gb.numpy(), gb_want, atol=1e-12)


def _data(n=60, d=5, seed=0, classes=2):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    w = rng.normal(size=(classes, d)) * np.array([2, 1, 0, 0, 0.5])
    y = (x @ w.T + rng.normal(scale=0.5, size=(n, classes))).argmax(1)
    return torch.tensor(x), torch.tensor(y)


@pytest.mark.slow
@pytest.mark.parametrize('C', [0.05, 1.0])
def test_solution_is_optimal(C):
    """KKT of min mean CE + ||W||_1 / (C n): at the solution the CE
    gradient is -sign(w) / (C n) where w != 0, within [-1, 1] / (C n)
    where w == 0, and 0 for the biases."""
    x, y = _data(classes=3)
    W, b = fit_l1_logistic(x, y, 3, C, max_iter=20000, tol=1e-10)
    gW, gb = smooth_grad(x, y, W, b)
    lam = 1 / (C * len(y))
    nz = W != 0
    assert torch.allclose(gW[nz], -torch.sign(W[nz]) * lam, atol=1e-6)
    assert (gW[~nz].abs() <= lam + 1e-6).all()
    assert gb.abs().max() < 1e-6
    if C == 0.05:
        assert (~nz).any()  # the penalty zeroes weights
    # and no point nearby is better
    base = float(objective(x, y, W, b, C))
    for _ in range(20):
        dW = torch.randn_like(W) * 1e-3
        assert float(objective(x, y, W + dW, b, C)) >= base - 1e-12


@pytest.mark.slow
def test_binary_matches_sklearn():
    """Two classes: our multinomial fit predicts as sklearn's binary L1
    logistic regression (saga: the intercept unpenalised, as ours)."""
    sklearn = pytest.importorskip('sklearn')
    from sklearn.linear_model import LogisticRegression
    major, minor = map(int, sklearn.__version__.split('.')[:2])
    # sklearn 1.8 deprecates penalty= for l1_ratio=
    l1 = dict(l1_ratio=1.0) if (major, minor) >= (1, 8) else dict(
        penalty='l1')
    x, y = _data(n=80)
    C = 0.3
    W, b = fit_l1_logistic(x, y, 2, C, max_iter=20000, tol=1e-11)
    ref = LogisticRegression(C=C, solver='saga', tol=1e-10, max_iter=100000,
                             **l1).fit(x.numpy(), y.numpy())
    ours = torch.softmax(x @ W.T + b, 1)[:, 1].numpy()
    assert np.allclose(ours, ref.predict_proba(x.numpy())[:, 1], atol=1e-5)
    w = (W[1] - W[0]).numpy()
    assert np.allclose(w, ref.coef_[0], atol=1e-5)
    assert ((w == 0) == (ref.coef_[0] == 0)).all()  # the same zeros
    assert (w == 0).sum() == 2


def test_balanced_subset_and_halves():
    keys = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(10):
        sub = balanced_subset(keys, rng)
        # min group size 2: two of each group, no repeats
        assert np.bincount(keys[sub]).tolist() == [2, 2, 2]
        assert len(set(sub.tolist())) == 6
        seen.add(tuple(sub))
    assert len(seen) > 1  # drawn at random
    fit, score = stratified_halves(keys, rng)
    assert np.bincount(keys[fit]).tolist() == [2, 1, 2]  # ceil(n_g / 2)
    assert np.bincount(keys[score]).tolist() == [2, 1, 1]
    assert sorted(fit.tolist() + score.tolist()) == list(range(9))


def test_scaler_folds_into_the_layer():
    x = torch.tensor([[1., 5.], [3., 5.], [2., 5.]], dtype=torch.float64)
    s = Scaler(x)
    assert s.mean.tolist() == [2., 5.]
    assert s.std.tolist() == pytest.approx([math.sqrt(2 / 3), 1.0])  # 0->1
    W2, b2 = s.fold(W, B)
    assert torch.allclose(x @ W2.T + b2, s(x) @ W.T + B)


def test_group_accuracy_and_dfr_fit_choice():
    m = group_accuracy(np.array([0, 1, 1, 1]), np.array([0, 1, 0, 1]),
                       np.array([0, 1, 2, 1]))
    # in percent, as BiasMetric
    assert m['per_group'] == {0: 100.0, 1: 100.0, 2: 0.0}
    assert (m['worst'], m['acc']) == (0.0, 75.0)
    assert m['mean'] == pytest.approx(200 / 3)
    x, y = _data(n=40)
    keys = y.numpy() * 2 + (np.arange(40) % 2)
    fit = dfr_fit(x, y.numpy(), keys, 2, c_options=(1.0, 0.5),
                  num_retrains=3)
    assert fit['C'] == max(fit['tuning'], key=lambda c: (
        fit['tuning'][c], c))  # best worst-group, the first on a tie
    assert fit['weight'].shape == (2, 5)
    assert fit['num_fit'] == 4 * np.bincount(keys).min()


def test_val_lacking_a_group_or_with_one_sample_is_refused():
    """D4 / D5: a val split without group 3, or with one sample of group 2
    (one half then lacks it: every C tied at 0.0), is refused, naming the
    groups and the minimum, instead of balancing over what is there."""
    names = ['landbird/land', 'landbird/water', 'waterbird/land',
             'waterbird/water']
    with pytest.raises(ValueError, match=r'no sample of group\(s\) 3 '
                       r'\(waterbird/water\); balancing over all 4 groups '
                       'needs at least 2 samples of each'):
        check_balance_keys(np.array([0, 0, 1, 1, 2, 2]), 4, names)
    with pytest.raises(ValueError, match=r'too few samples in group\(s\) 2 '
                       r'\(waterbird/land\): 1; .*at least 2'):
        check_balance_keys(np.array([0, 0, 1, 1, 2, 3, 3]), 4, names)
    check_balance_keys(np.array([0, 0, 1, 1, 2, 2, 3, 3]), 4, names)
    # dfr_fit itself (no group count given): a gap or a group of one
    x, y = _data(n=7)
    with pytest.raises(ValueError, match=r'too few samples in key\(s\) 2: 1'):
        dfr_fit(x, y.numpy(), np.array([0, 0, 1, 1, 2, 3, 3]), 2,
                num_retrains=1)
    with pytest.raises(ValueError, match=r'no sample of key\(s\) 1'):
        dfr_fit(x[:4], y[:4].numpy(), np.array([0, 0, 2, 2]), 2,
                num_retrains=1)


def test_options_are_checked_before_features():
    """D7: the C grid and the number of retrains are checked on their own
    (run_dfr calls this before loading the model)."""
    check_options((1.0, 0.1), 3)
    for bad in ((), (1.0, 0.0), (1.0, -0.1), ('a', ), (float('nan'), )):
        with pytest.raises(ValueError, match='DFR: c_options='):
            check_options(bad, 3)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match='DFR: num_retrains='):
            check_options((1.0, ), bad)


def test_dfr_checks_val_before_extracting_features(tmp_path):
    """D4 / D7 through tools/dfr.py: a bad option, and a val split without
    a group, stop before the checkpoint is even read (a checkpoint file of
    garbage: reading it would fail otherwise), with nothing written."""
    rows = [r for r in WATERBIRDS_ROWS if not (r[2] == 1 and r[:2] == (1, 1))]
    root = write_waterbirds(tmp_path / 'wb', rows)
    cfg = waterbirds_config(tmp_path, 'resnet18')
    opts = tiny_waterbirds_options(root)
    ckpt = tmp_path / 'epoch_1.pth'
    ckpt.write_bytes(b'not a checkpoint')
    tool = load_tool('dfr.py')
    out = tmp_path / 'dfr'
    with pytest.raises(SystemExit, match='c_options=.*positive'):
        tool.main([cfg, str(ckpt), '--work-dir', str(out), '--c', '0',
                   '--cfg-options', *opts])
    with pytest.raises(SystemExit, match='num_retrains=0'):
        tool.main([cfg, str(ckpt), '--work-dir', str(out),
                   '--num-retrains', '0', '--cfg-options', *opts])
    with pytest.raises(SystemExit, match=r'the val set \(Waterbirds'
                       r'\) has no sample of group\(s\) 3 '
                       r'\(waterbird/water\)'):
        tool.main([cfg, str(ckpt), '--work-dir', str(out), '--cfg-options',
                   *opts])
    assert not out.exists() or not any(out.iterdir())  # nothing written


def test_layers_per_classifier():
    from mmpretrain.registry import MODELS
    from mmengine.config import Config
    from occam_plugin.apis.dfr import last_layers
    from conftest import REPO
    import os.path as osp
    base = osp.join(REPO, 'configs', '_base_', 'models')
    for name, want in (('resnet18', ['head.fc']),
                       ('occam_resnet18', ['head.cam_convs.1',
                                           'head.cam_convs.2',
                                           'head.cam_convs.3'])):
        model_cfg = Config.fromfile(osp.join(base, name + '.py')).model
        model_cfg.backbone.update(stem_channels=8, base_channels=8)
        model_cfg.head.num_classes = 2
        model = MODELS.build(model_cfg)
        assert [n for n, _ in last_layers(model)] == want
        if name == 'resnet18':
            lff = MODELS.build(dict(type='LfFClassifier',
                                    biased_model=model_cfg))
            assert [n for n, _ in last_layers(lff)] == [
                'debiased_model.head.fc']
    with pytest.raises(ValueError, match="'head.neck' is not in the model"):
        last_layers(model, ['head.neck'])


def val_rich_waterbirds(root):
    """The tiny folder with 3 val birds per group (12), so each half of
    val has every group."""
    rows = [r for r in WATERBIRDS_ROWS if r[2] != 1] + [
        (y, p, 1) for y in (0, 1) for p in (0, 1) for _ in range(3)]
    return write_waterbirds(root, rows)


@pytest.mark.slow
@pytest.mark.parametrize('model', ['resnet18', 'occam_resnet18'])
def test_dfr_tool_end_to_end(tmp_path, model):
    root = val_rich_waterbirds(tmp_path / 'wb')
    cfg = waterbirds_config(tmp_path, model)
    opts = tiny_waterbirds_options(root)
    load_tool('train.py').main([cfg, '--work-dir', str(tmp_path / 'run'),
                                '--cfg-options', *opts])
    ckpt = str(tmp_path / 'run' / 'epoch_1.pth')
    load_tool('dfr.py').main([cfg, ckpt, '--work-dir', str(tmp_path / 'dfr'),
                              '--num-retrains', '3', '--cfg-options', *opts])
    out = tmp_path / 'dfr' / 'dfr_epoch_1.pth'
    result = json.loads((tmp_path / 'dfr' / 'dfr_epoch_1.json').read_text())
    layers = (['head.fc'] if model == 'resnet18' else
              [f'head.cam_convs.{k}' for k in (1, 2, 3)])
    assert list(result['layers']) == layers
    for fit in result['layers'].values():
        assert fit['C'] in (1., 0.7, 0.3, 0.1, 0.07, 0.03, 0.01)
        assert set(map(float, fit['tuning'])) == {1., .7, .3, .1, .07, .03,
                                                  .01}
        assert fit['num_fit'] == 4 * 3  # 3 per group, 4 groups
    assert result['accuracy_unit'] == 'percent'  # as BiasMetric
    assert all(v in (0.0, 100.0) or 0 < v < 100 for v in
               result['val_after']['per_group'].values())
    assert sorted(result['val_after']['per_group']) == [
        'landbird/land', 'landbird/water', 'waterbird/land',
        'waterbird/water']
    before = torch.load(ckpt, weights_only=False)['state_dict']
    after = torch.load(str(out), weights_only=True)
    assert set(after['state_dict']) == set(before)  # the same model
    assert 'optimizer' not in after  # not a checkpoint to resume from
    changed = {k for k in before
               if not torch.equal(before[k], after['state_dict'][k])}
    assert changed == {f'{n}.{p}' for n in layers for p in ('weight',
                                                            'bias')}
    # tools/test.py loads it strictly
    load_tool('test.py').main([cfg, str(out), '--work-dir',
                               str(tmp_path / 'test'), '--cfg-options',
                               *opts])
    # the outputs are never replaced without --overwrite
    with pytest.raises(SystemExit, match='exists and was not written by '
                       'this run'):
        load_tool('dfr.py').main([cfg, ckpt, '--work-dir',
                                  str(tmp_path / 'dfr'), '--cfg-options',
                                  *opts])


@pytest.mark.slow
def test_dfr_on_a_full_disk_is_one_error_and_leaves_nothing(tmp_path,
                                                          monkeypatch):
    """torch's inline_container.cc RuntimeError came through as a
    traceback."""
    import shutil
    import types
    root = val_rich_waterbirds(tmp_path / 'wb')
    cfg = waterbirds_config(tmp_path, 'resnet18')
    opts = tiny_waterbirds_options(root)
    load_tool('train.py').main([cfg, '--work-dir', str(tmp_path / 'run'),
                                '--cfg-options', *opts])
    ckpt = str(tmp_path / 'run' / 'epoch_1.pth')

    def full_disk(obj, f, *args, **kwargs):
        with open(f, 'wb') as out:
            out.write(b'PK\x03\x04 half')
        raise RuntimeError('[enforce fail at inline_container.cc:672] . '
                           'unexpected pos 704 vs 598')

    monkeypatch.setattr(torch, 'save', full_disk)
    monkeypatch.setattr(shutil, 'disk_usage',
                        lambda path: types.SimpleNamespace(free=0))
    out = tmp_path / 'dfr'
    with pytest.raises(SystemExit) as err:
        load_tool('dfr.py').main([cfg, ckpt, '--work-dir', str(out),
                                  '--num-retrains', '2', '--cfg-options',
                                  *opts])
    msg = str(err.value)
    assert msg.startswith('error: no space left on device writing '
                          f"'{out / 'dfr_epoch_1.pth'}'"), msg
    assert os.listdir(out) == []  # no temporary, no half file

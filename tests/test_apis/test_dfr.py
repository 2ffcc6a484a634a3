"""DFR: the L1 logistic regression (scikit-learn's liblinear, as the
reference: binary and one-vs-rest, written into the layer's rows), balanced
subsets and halves, the standardisation folded into the
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

from tests.helpers import load_tool
from occam_plugin.apis.dfr import (Scaler, balanced_subset,
                                   check_balance_keys, check_options,
                                   dfr_fit, group_accuracy,
                                   stratified_halves)
from occam_plugin.apis.l1_logistic import fit_l1_logistic
from tests.helpers import (
    WATERBIRDS_ROWS,
    tiny_waterbirds_options,
    waterbirds_config,
    write_waterbirds,
)

X = torch.tensor([[1., 0.], [0., 2.]], dtype=torch.float64)
Y = torch.tensor([0, 1])
W = torch.tensor([[1., -1.], [0., 0.5]], dtype=torch.float64)
B = torch.tensor([0., 1.], dtype=torch.float64)


def _data(n=60, d=5, seed=0, classes=2):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    w = rng.normal(size=(classes, d)) * np.array([2, 1, 0, 0, 0.5])
    y = (x @ w.T + rng.normal(scale=0.5, size=(n, classes))).argmax(1)
    return torch.tensor(x), torch.tensor(y)


def _liblinear(C, **kw):
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression(l1_ratio=1.0, C=C, solver='liblinear', **kw)


def test_binary_fit_is_the_references_liblinear():
    """Two classes: the layer's two rows hold sklearn's binary (w, b) as
    -w/2 and w/2, so its softmax is the binary model's probability."""
    x, y = _data(n=80)
    C = 0.3
    W, b = fit_l1_logistic(x, y, 2, C)
    ref = _liblinear(C, random_state=0).fit(x.numpy(), y.numpy())
    assert W.shape == (2, 5) and b.shape == (2, )
    assert np.allclose((W[1] - W[0]).numpy(), ref.coef_[0], atol=1e-12)
    assert float(b[1] - b[0]) == pytest.approx(float(ref.intercept_[0]))
    ours = torch.softmax(x @ W.T + b, 1)
    assert np.allclose(ours[:, 1].numpy(), ref.predict_proba(x.numpy())[:, 1],
                       atol=1e-12)
    assert (ours.argmax(1).numpy() == ref.predict(x.numpy())).all()


def test_l1_zeroes_more_weights_as_c_falls():
    x, y = _data(n=80)
    zeros = [int((fit_l1_logistic(x, y, 2, C)[0] == 0).sum())
             for C in (1.0, 0.05)]
    assert zeros[1] > zeros[0], zeros


def test_multiclass_fit_is_one_vs_rest():
    """More classes: row k is liblinear's binary fit of class k against
    the rest (sklearn's liblinear refuses more than two classes)."""
    x, y = _data(n=90, classes=3)
    C = 0.5
    W, b = fit_l1_logistic(x, y, 3, C)
    assert W.shape == (3, 5) and b.shape == (3, )
    for k in range(3):
        ref = _liblinear(C, random_state=0).fit(x.numpy(),
                                                (y == k).long().numpy())
        assert np.allclose(W[k].numpy(), ref.coef_[0], atol=1e-12)
        assert float(b[k]) == pytest.approx(float(ref.intercept_[0]))


def test_fit_refuses_bad_c_and_missing_classes():
    x, y = _data(n=20)
    with pytest.raises(ValueError, match='C=0.0; expected C > 0'):
        fit_l1_logistic(x, y, 2, 0.0)
    with pytest.raises(ValueError, match=r'expected every class of 0 \.\. 2 '
                       r'\(num_classes=3\).*missing \[2\]'):
        fit_l1_logistic(x, y, 3, 1.0)


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
    """A val split without group 3, or with one sample of group 2
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
    """The C grid and the number of retrains are checked on their own
    (run_dfr calls this before loading the model)."""
    check_options((1.0, 0.1), 3)
    for bad in ((), (1.0, 0.0), (1.0, -0.1), ('a', ), (float('nan'), )):
        with pytest.raises(ValueError, match='DFR: c_options='):
            check_options(bad, 3)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match='DFR: num_retrains='):
            check_options((1.0, ), bad)


def test_dfr_checks_val_before_extracting_features(tmp_path):
    """Through tools/dfr.py: a bad option, and a val split without
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
    from tests.helpers import REPO
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

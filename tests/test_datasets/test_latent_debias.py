"""Latent-space de-biasing: hyperplanes, flipped latents, the wrapper, and
the fairness metric (hand-computed)."""
import numpy as np
import pytest
import torch
import torch.nn as nn
from mmpretrain.registry import DATASETS, METRICS, MODELS

import occam_plugin  # noqa: F401  (registers)
from occam_plugin.datasets.latent_debias_dataset import flip_protected


class LeftHalfInk(nn.Module):
    """Target attribute for the test: ink in the left half of the image."""

    def forward(self, images):
        return images[..., :images.shape[-1] // 2].mean(dim=(1, 2, 3))


class LinearGenerator(nn.Module):
    """G(z) = sigmoid(A z) as 8 x 8 grey images: its ink attributes are
    close to linear in z, so fitted hyperplanes must separate them well."""

    latent_dim = 6

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer('A', torch.randn(6, 64, generator=g))

    def forward(self, z):
        return torch.sigmoid(z @ self.A).view(-1, 1, 8, 8)


TINY_GEN = dict(type='ConvVAE', latent_dim=6, width=4)


def colored_mnist(num_samples=12):
    return dict(type='ColoredMNIST', split='train', num_samples=num_samples,
                pipeline=[dict(type='PackBiasInputs')])


def build_wrapper(**kwargs):
    torch.manual_seed(0)  # the untrained generator's weights
    cfg = dict(type='LatentDebiasDataset', dataset=colored_mnist(),
               generator=TINY_GEN, target_scorer=LeftHalfInk(),
               protected_scorer=dict(type='InkMassScorer'),
               target_threshold='median', num_pairs=5, num_fit_samples=200)
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def test_flip_closed_form_by_hand():
    # w_t = e1, w_g = (e1 + e2)/sqrt(2): c = 1/sqrt(2); z = (1, 2), b = 0, 0.5
    w_t = np.array([1.0, 0.0])
    w_g = np.array([1.0, 1.0]) / np.sqrt(2)
    z = np.array([[1.0, 2.0]])
    zf = flip_protected(z, w_t, 0.0, w_g, 0.5)
    # s_g = 3/sqrt(2) + 0.5 = 2.621320; z' = z - 2 s_g / 0.5 (w_g - c w_t)
    #     = (1, 2) - 10.485281 * (0, 0.707107) = (1, -5.414214)
    assert zf[0].tolist() == pytest.approx([1.0, -5.414214], abs=1e-5)
    with pytest.raises(ValueError, match='parallel'):
        flip_protected(z, w_t, 0.0, w_t, 0.0)


def test_flip_keeps_every_target_score_of_a_multiclass_target():
    rng = np.random.default_rng(0)
    w_t = rng.standard_normal((3, 6))
    b_t = rng.standard_normal(3)
    w_g, b_g = rng.standard_normal(6), 0.3
    z = rng.standard_normal((4, 6))
    zf = flip_protected(z, w_t, b_t, w_g, b_g)
    np.testing.assert_allclose(zf @ w_t.T + b_t, z @ w_t.T + b_t, atol=1e-9)
    np.testing.assert_allclose(zf @ w_g + b_g, -(z @ w_g + b_g), atol=1e-9)


class ThreeRegionInk(nn.Module):
    """A 3-class target: which third of the rows holds the most ink."""

    def forward(self, images):
        rows = images.mean(dim=(1, 3))  # [N, H]
        return torch.stack([rows[:, :3].mean(1), rows[:, 3:5].mean(1),
                            rows[:, 5:].mean(1)], dim=1) * 10


def test_multiclass_target_planes():
    ds = build_wrapper(generator=LinearGenerator(),
                       target_scorer=ThreeRegionInk(), num_pairs=10)
    w_t, b_t = ds.target_plane
    assert w_t.shape == (3, 6) and b_t.shape == (3, )
    np.testing.assert_allclose(ds.latents_flipped @ w_t.T,
                               ds.latents @ w_t.T, atol=1e-9)
    labels = {ds.get_data_info(12 + i)['gt_label'] for i in range(20)}
    assert labels <= {0, 1, 2}


def test_flipped_latents_keep_target_and_flip_protected():
    ds = build_wrapper()  # the tiny untrained ConvVAE
    (w_t, b_t), (w_g, b_g) = ds.target_plane, ds.protected_plane
    assert np.linalg.norm(w_t) == pytest.approx(1.0)
    z, zf = ds.latents, ds.latents_flipped
    assert z.shape == zf.shape == (5, 6)
    np.testing.assert_allclose(zf @ w_t + b_t, z @ w_t + b_t, atol=1e-9)
    np.testing.assert_allclose(zf @ w_g + b_g, -(z @ w_g + b_g), atol=1e-9)


def test_fitted_planes_separate_and_pairs_flip_protected():
    ds = build_wrapper(generator=LinearGenerator(), num_pairs=20)
    (w_t, b_t), (w_g, b_g) = ds.target_plane, ds.protected_plane
    rng = np.random.default_rng(1)
    zz = rng.standard_normal((300, 6))
    imgs = ds._generate(zz)
    ink = ds._score(ds.protected_scorer, imgs).numpy()
    left = ds._score(ds.target_scorer, imgs).numpy()
    # the planes are fitted: they predict the attributes of new samples
    assert np.mean(((zz @ w_g + b_g) > 0) ==
                   (ink > ds.protected_threshold_value)) > 0.9
    assert np.mean(((zz @ w_t + b_t) > 0) ==
                   (left > ds.target_threshold_value)) > 0.9
    # so the generated pairs mostly differ in the protected attribute
    synth = [ds.get_data_info(12 + i) for i in range(40)]
    flips = [a['bias_label'] != b['bias_label']
             for a, b in zip(synth[0::2], synth[1::2])]
    assert np.mean(flips) > 0.7


def test_conv_vae_latent_prior_by_hand(tmp_path):
    """ConvVAE.sample_latents: N(0, I) without a prior (the same stream as
    rng.standard_normal), the fitted mixture with one; the checkpoint
    carries the mixture."""
    vae = MODELS.build(dict(TINY_GEN))
    assert vae.prior_components == 0
    np.testing.assert_array_equal(
        vae.sample_latents(7, np.random.default_rng(3)),
        np.random.default_rng(3).standard_normal((7, 6)))
    # two components, all weight on the second: mean m, covariance C
    m = np.arange(6.0)
    cov = np.diag([4.0, 1.0, 0.25, 1.0, 1.0, 1.0])
    cov[0, 1] = cov[1, 0] = 1.0  # one correlation, still PD
    vae.set_latent_prior([0.0, 2.0], np.stack([-m, m]),
                         np.stack([np.eye(6), cov]))
    assert vae.prior_components == 2
    z = vae.sample_latents(40_000, np.random.default_rng(0))
    np.testing.assert_allclose(z.mean(0), m, atol=0.05)
    np.testing.assert_allclose(np.cov(z.T), cov, atol=0.1)
    path = str(tmp_path / 'vae.pth')
    torch.save(vae.state_dict(), path)
    loaded = MODELS.build(dict(TINY_GEN, checkpoint=path))
    assert loaded.prior_components == 2
    np.testing.assert_array_equal(
        loaded.sample_latents(5, np.random.default_rng(1)),
        vae.sample_latents(5, np.random.default_rng(1)))
    with pytest.raises(ValueError, match=r'means \[K, 6\]'):
        vae.set_latent_prior([1.0], np.zeros((1, 5)), np.eye(5)[None])


def test_wrapper_draws_latents_from_the_generator_prior():
    torch.manual_seed(0)
    gen = MODELS.build(dict(TINY_GEN))
    gen.set_latent_prior([1.0], np.full((1, 6), 3.0), np.eye(6)[None] * 0.01)
    ds = build_wrapper(generator=gen, num_pairs=50)
    # the pairs' z come from the mixture (mean 3, std 0.1), not N(0, I)
    np.testing.assert_allclose(ds.latents.mean(0), 3.0, atol=0.05)
    assert ds.latents.std(0).max() < 0.2


def test_wrapper_length_labels_and_samples():
    ds = build_wrapper(pair_label='shared')
    assert len(ds) == 12 + 2 * 5
    assert ds.metainfo['classes'] == ds.dataset.metainfo['classes']
    synth = [ds.get_data_info(12 + i) for i in range(10)]
    assert all(s['is_synthetic'] for s in synth)
    # shared: G(z') takes the label of G(z); labels in the target's {0, 1}
    assert [s['gt_label'] for s in synth[0::2]] == [
        s['gt_label'] for s in synth[1::2]]
    assert {s['gt_label'] for s in synth} <= {0, 1}
    assert [s['sample_idx'] for s in synth] == list(range(12, 22))
    item = ds[13]
    assert item['inputs'].shape == (3, 28, 28)
    assert item['data_samples'].sample_idx == 13
    assert item['data_samples'].bias_label in (0, 1)
    assert ds[0]['data_samples'].sample_idx == 0  # a real sample


def test_wrapper_with_classifier_scorer_and_img_size():
    torch.manual_seed(0)
    target = dict(type='ClassifierScorer', model=dict(
        type='ImageClassifier',
        backbone=dict(type='MLPBackbone', in_channels=3, img_size=16,
                      hidden_dims=(8, )),
        head=dict(type='LinearClsHead', num_classes=2, in_channels=8)),
        input_size=16, score_class=1)
    ds = build_wrapper(target_scorer=target, num_pairs=3, img_size=16,
                       pair_label='independent', fit_method='svm')
    assert len(ds) == 12 + 6
    assert ds.get_data_info(12)['img'].shape == (16, 16, 3)


def test_bad_config_is_clear():
    with pytest.raises(ValueError, match='fit_method'):
        build_wrapper(fit_method='tree')
    with pytest.raises(ValueError, match='both values'):
        # threshold above every ink score: one protected value only
        build_wrapper(protected_threshold=2.0)


def test_fairness_metric_by_hand():
    metric = METRICS.build(dict(type='FairnessMetric'))
    attr = [0, 0, 0, 0, 1, 1, 1, 1]
    gt = [1, 1, 1, 0, 1, 0, 0, 0]
    p1 = [0.9, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1]  # predicted 1 iff attr 0
    metric.process(None, [
        dict(gt_label=torch.tensor([g]), bias_label=a,
             pred_score=torch.tensor([1 - p, p]))
        for g, a, p in zip(gt, attr, p1)
    ])
    res = metric.evaluate(8)
    assert res['fairness/accuracy'] == pytest.approx(75.0)
    # TPR(attr 0) = 3/3, TPR(attr 1) = 0/1 -> DEO = 1
    assert res['fairness/DEO'] == pytest.approx(1.0)
    # y = 1 for (t1, a0), (t0, a1); every |D_at| = 0.25, all signs favour
    # amplification -> BA = 0.25
    assert res['fairness/BA'] == pytest.approx(0.25)
    # AP of class 1: scores 0.9 for 3 of 4 positives + 1 negative, 0.1 for
    # the rest: precision 3/4 at recall 3/4, 4/8 at recall 1
    # -> AP = 0.75 * 0.75 + 0.25 * 0.5 = 0.6875
    assert res['fairness/AP'] == pytest.approx(68.75)
    # score histograms: attr 0 all in bin 9, attr 1 all in bin 0 -> huge KL
    assert res['fairness/KL'] > 10


def test_fairness_calculate_by_hand():
    """The pure statistics: 3-class scores, arrays in, dict out."""
    calc = METRICS.get('FairnessMetric').calculate
    gt = np.array([0, 0, 1, 1, 2, 2])
    attr = np.array([0, 1, 0, 1, 0, 1])
    scores = np.eye(3)[[0, 1, 1, 1, 2, 0]]  # preds 0 1 1 1 2 0
    res = calc(gt, attr, scores)
    assert set(res) == {'accuracy', 'AP', 'DEO', 'BA', 'KL'}
    assert res['accuracy'] == pytest.approx(400 / 6)
    # TPR gaps per class: |1 - 0|, |1 - 1|, |1 - 0| -> mean 2/3
    assert res['DEO'] == pytest.approx(2 / 3)
    # AP one-vs-rest (recall step x precision): class 0 scores 1 for one
    # positive and one negative, 0 for the rest: 0.5 * 1/2 + 0.5 * 2/6 =
    # 5/12; class 1: both positives among 3 ones: 2/3; class 2: its one
    # score-1 sample is positive: 0.5 * 1 + 0.5 * 2/6 = 2/3 -> mean 7/12
    assert res['AP'] == pytest.approx(700 / 12)
    # every (class, attr) cell has P(t, a) = P(t) P(a): y = 0, BA = mean(-D);
    # attr 1 predicts 0, 1, 1 for classes 0, 1, 2: D = 0, 1/3, -1/3 -> 0
    assert res['BA'] == pytest.approx(0.0)
    # a binary task reports the positive class only
    binary = calc(np.array([1, 0]), np.array([0, 1]),
                  np.array([[0.2, 0.8], [0.6, 0.4]]), positive_class=1)
    assert binary['accuracy'] == 100.0 and binary['AP'] == 100.0
    assert binary['DEO'] != binary['DEO']  # NaN: one group per class


def test_fairness_kl_by_hand():
    from occam_plugin.evaluation.metrics.fairness_metric import score_kl
    scores = np.array([0.95, 0.95, 0.95, 0.05, 0.05, 0.05, 0.05, 0.95])
    attr = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    # P0 = (.25 bin 0, .75 bin 9), P1 = (.75, .25):
    # KL(P0||P1) = KL(P1||P0) = 0.5 ln 3 -> sum ln 3 = 1.098612
    assert score_kl(scores, attr) == pytest.approx(1.098612, abs=1e-5)


@pytest.mark.slow
def test_train_generator_tool_and_checkpoint(tmp_path):
    """tools/train_generator.py trains the ConvVAE on the offline digits and
    saves what ConvVAE(checkpoint=...) loads (one tiny epoch here)."""
    import importlib.util
    import os.path as osp

    from tests.helpers import REPO
    spec = importlib.util.spec_from_file_location(
        'train_generator', osp.join(REPO, 'tools', 'train_generator.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = str(tmp_path / 'vae.pth')
    tool.main(['--epochs', '1', '--width', '4', '--latent-dim', '4',
               '--batch-size', '256', '--out', out])
    vae = MODELS.build(dict(type='ConvVAE', latent_dim=4, width=4,
                            checkpoint=out))
    # the default latent prior: 20 components fitted on the posterior means
    assert vae.prior_components == 20
    assert float(vae.prior_weights.sum()) == pytest.approx(1.0)
    saved = torch.load(out, weights_only=True)
    assert torch.equal(vae.fc_dec.weight, saved['fc_dec.weight'])
    img = vae(torch.zeros(2, 4))
    assert img.shape == (2, 1, 28, 28)
    assert 0 <= float(img.min()) and float(img.max()) <= 1
    with pytest.raises(RuntimeError, match='does not match'):
        MODELS.build(dict(type='ConvVAE', latent_dim=8, width=4,
                          checkpoint=out))
    # a trained generator is never overwritten
    with pytest.raises(SystemExit, match='exists'):
        tool.main(['--epochs', '1', '--out', out])
    assert torch.equal(torch.load(out, weights_only=True)['fc_dec.weight'],
                       saved['fc_dec.weight'])

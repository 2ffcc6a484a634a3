"""The shared method plug point (MethodPlugPoint) and the per-sample state
protocol give the numbers of the code before they were shared.

The PINNED values were computed by the code of commit aa05212 (each head
with its own loss -> weight -> method reduction, PGI's order-dependent
cache, per-module ``_load_from_state_dict``) on the deterministic inputs
below; ``_run`` must give them to the printed precision.
"""
import math

import pytest
import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import occam_plugin  # noqa: F401  (registers)
from occam_plugin.models.utils.training_state import prepare_from_dataset

METHODS = {
    'none': None,
    'upwt': dict(type='GroupUpweighting'),
    'gdro': dict(type='GroupDRO', eta=0.5),
    'sd': dict(type='SpectralDecoupling', sd_lambda=0.3),
    'pgi': dict(type='PGILoss', pgi_lambda=2.0),  # groups of the bias exit
    'pgi_aligned': dict(type='PGILoss', pgi_lambda=2.0),
}
INFO = dict(num_samples=8, gt_label=[i % 3 for i in range(8)],
            group_idx=[0, 0, 0, 1, 1, 2, 3, 3], num_groups=4,
            dataset_name='Tiny')


def _fill(module):
    # deterministic, non-symmetric parameters (no RNG: stable across torch)
    for i, p in enumerate(module.parameters()):
        n = p.numel()
        p.data = (0.7 * torch.sin(torch.arange(n, dtype=torch.float) * 1.3
                                  + i)).reshape(p.shape)


def _samples(step, aligned):
    out = []
    for i in range(6):
        ds = DataSample(metainfo=dict(sample_idx=(i + 2 * step) % 8))
        ds.set_gt_label((i + step) % 3)
        ds.set_field((i * 3 + step) % 4, 'group_idx')
        if aligned:
            ds.set_field(i < 3, 'bias_aligned', field_type='metainfo')
        out.append(ds)
    return out


def _run(kind, method):
    """Three training steps; the rounded losses and input-gradient sums."""
    cfg = METHODS[method]
    cfg = None if cfg is None else dict(cfg)
    if kind == 'occam':
        head = MODELS.build(dict(type='OccamHead', num_classes=3,
                                 in_channels=[2, 3, 4], method=cfg))
    else:
        head = MODELS.build(dict(type='MethodLinearClsHead', num_classes=3,
                                 in_channels=5, method=cfg))
    _fill(head)
    head.train()
    prepare_from_dataset(head, INFO)
    values = []
    for step in range(3):
        if kind == 'occam':
            feats = [
                torch.sin(torch.arange(6 * c * 4, dtype=torch.float) *
                          (0.37 + 0.1 * step + 0.05 * c)).reshape(6, c, 2, 2)
                for c in (2, 3, 4)
            ]
        else:
            feats = [torch.cos(torch.arange(30, dtype=torch.float) *
                               (0.41 + 0.1 * step)).reshape(6, 5)]
        for f in feats:
            f.requires_grad_(True)
        weight = (None if step == 1 else
                  torch.linspace(0.2, 1.4, 6) * (1 + step))
        losses = head.loss(feats, _samples(step, method != 'pgi'),
                           sample_weight=weight)
        total = sum(v for k, v in losses.items() if k.startswith('loss'))
        total.backward()
        values += [round(losses[k].item(), 6) for k in sorted(losses)]
        values += [round(f.grad.sum().item(), 6) for f in feats]
    return values


PINNED = {  # from the code of commit aa05212
    'linear/gdro': [
        1.096735, -0.010202, 1.077511, -0.002812, 3.72215, -0.0507],
    'linear/none': [
        1.039253, -0.009386, 1.17173, -0.006402, 2.605795, -0.00917],
    'linear/pgi': [
        1.039293, -0.009386, 1.180956, -0.006346, 2.60788, -0.009181],
    'linear/pgi_aligned': [
        1.039293, -0.009386, 1.180928, -0.006344, 2.607886, -0.009181],
    'linear/sd': [
        1.381781, -0.026001, 1.675462, -0.029458, 3.390868, -0.0264],
    'linear/upwt': [
        1.180751, -0.013077, 1.174271, -0.006416, 3.172258, -0.000867],
    'occam/gdro': [
        0.5, 0.333333, 0.333333, 0.008262, 0.017741, 0.009279, 0.323233,
        0.976996, 0.766477, 0.917011, 0.743717, 0.873922, -0.064886, 0.269655,
        -0.024137, 0.5, 0.333333, 0.333333, 0.008342, 0.007213, 0.007556,
        0.317616, 0.920103, 0.907307, 0.763603, 1.044026, 0.946458, 0.018937,
        -0.063356, -0.015339, 0.5, 0.333333, 0.333333, 0.009757, 0.004506,
        0.010522, 0.716022, 2.213028, 2.708096, 0.668404, 1.360538, 0.851318,
        0.064934, -0.581263, -0.035595],
    'occam/none': [
        0.5, 0.333333, 0.333333, 0.008262, 0.017741, 0.009279, 0.306031,
        0.908664, 0.739629, 0.917011, 0.743717, 0.873922, -0.014273, 0.188042,
        -0.000262, 0.5, 0.333333, 0.333333, 0.008342, 0.007213, 0.007556,
        0.306597, 0.976133, 0.79193, 0.763603, 1.044026, 0.946458, 0.014776,
        0.012971, -0.012149, 0.5, 0.333333, 0.333333, 0.009757, 0.004506,
        0.010522, 0.729405, 1.904706, 2.546631, 0.668404, 1.360538, 0.851318,
        0.01442, -0.413645, -0.042449],
    'occam/pgi': [
        0.5, 0.333333, 0.333333, 0.008262, 0.017741, 0.009279, 0.633931,
        0.910076, 0.870469, 0.917011, 0.743717, 0.873922, -0.026817, 0.189365,
        0.01883, 0.5, 0.333333, 0.333333, 0.008342, 0.007213, 0.007556,
        0.470445, 1.427875, 0.796506, 0.763603, 1.044026, 0.946458, 0.000184,
        0.152393, -0.01207, 0.5, 0.333333, 0.333333, 0.009757, 0.004506,
        0.010522, 1.189637, 1.918287, 2.561157, 0.668404, 1.360538, 0.851318,
        -0.04785, -0.41312, -0.041297],
    'occam/pgi_aligned': [
        0.5, 0.333333, 0.333333, 0.008262, 0.017741, 0.009279, 0.63013,
        0.910108, 0.885172, 0.917011, 0.743717, 0.873922, -0.042361, 0.189387,
        0.020955, 0.5, 0.333333, 0.333333, 0.008342, 0.007213, 0.007556,
        0.470598, 1.460231, 0.796448, 0.763603, 1.044026, 0.946458, 0.00357,
        0.146731, -0.012072, 0.5, 0.333333, 0.333333, 0.009757, 0.004506,
        0.010522, 1.196037, 1.917927, 2.561621, 0.668404, 1.360538, 0.851318,
        -0.040681, -0.413152, -0.041186],
    'occam/sd': [
        0.5, 0.333333, 0.333333, 0.008262, 0.017741, 0.009279, 0.496193,
        1.294894, 0.934151, 0.917011, 0.743717, 0.873922, 0.146877, 0.090567,
        -0.060591, 0.5, 0.333333, 0.333333, 0.008342, 0.007213, 0.007556,
        0.489342, 1.136195, 0.94838, 0.763603, 1.044026, 0.946458, 0.174447,
        -0.025672, -0.053777, 0.5, 0.333333, 0.333333, 0.009757, 0.004506,
        0.010522, 0.88897, 2.015859, 2.733704, 0.668404, 1.360538, 0.851318,
        0.164159, -0.452676, -0.089842],
    'occam/upwt': [
        0.5, 0.333333, 0.333333, 0.008262, 0.017741, 0.009279, 0.29387,
        0.999808, 0.669106, 0.917011, 0.743717, 0.873922, -0.014084, 0.278562,
        -0.014972, 0.5, 0.333333, 0.333333, 0.008342, 0.007213, 0.007556,
        0.346769, 1.009848, 0.918495, 0.763603, 1.044026, 0.946458, 0.053796,
        -0.110771, 0.023816, 0.5, 0.333333, 0.333333, 0.009757, 0.004506,
        0.010522, 0.905838, 2.04945, 3.602091, 0.668404, 1.360538, 0.851318,
        -0.094934, -0.223295, -0.188826],
}


@pytest.mark.parametrize('kind', ['occam', 'linear'])
@pytest.mark.parametrize('method', sorted(METHODS))
def test_losses_and_grads_as_before(kind, method):
    got = _run(kind, method)
    want = PINNED[f'{kind}/{method}']
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g == pytest.approx(w, abs=2e-6)
    assert all(math.isfinite(v) for v in got)


@pytest.mark.parametrize('kind', ['occam', 'linear'])
def test_sample_weight_of_another_size_names_both_sizes(kind):
    if kind == 'occam':
        head = MODELS.build(dict(type='OccamHead', num_classes=3,
                                 in_channels=[2, 2], use_gates=False))
        feats = [torch.ones(6, 2, 2, 2)] * 2
    else:
        head = MODELS.build(dict(type='MethodLinearClsHead', num_classes=3,
                                 in_channels=5))
        feats = [torch.ones(6, 5)]
    with pytest.raises(ValueError, match='sample_weight has 4 values for 6'):
        head.loss(feats, _samples(0, False), sample_weight=torch.ones(4))

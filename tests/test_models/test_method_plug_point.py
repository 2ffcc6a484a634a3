"""The shared method plug point (MethodPlugPoint) and the per-sample state
protocol give the numbers of the code before they were shared.

The PINNED values were computed by the code of commit aa05212 (each head
with its own loss -> weight -> method reduction, PGI's order-dependent
cache, per-module ``_load_from_state_dict``) on the deterministic inputs
below; ``_run`` must give them to the printed precision.
"""
import json
import math
import os.path as osp

import pytest
import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import occam_plugin  # noqa: F401  (registers)
from occam_plugin.models.utils.training_state import prepare_from_dataset
from tests.helpers import DATA

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


#: from the code of commit aa05212
with open(osp.join(DATA, 'method_plug_point_pinned.json'),
          encoding='utf-8') as _f:
    PINNED = json.load(_f)


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

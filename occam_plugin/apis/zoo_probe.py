"""What a published model predicts on inputs anyone can make again.

A model-zoo entry whose dataset cannot ship with the repository (BAR's
images carry their sources' terms) is checked without the data: when it is
published, its class scores on a few seeded random images are recorded in
``<weights>.probe.json``; the zoo test rebuilds the same images, loads the
weights strictly and compares. A wrong config, other weights or a changed
model code path changes the scores.

    from occam_plugin.apis.zoo_probe import record_probe, check_probe
    record_probe(config, weights)            # -> weights[:-4] + '.probe.json'
    check_probe(config, weights)             # raises AssertionError on change
"""
import json
import os.path as osp
from typing import List

import torch

__all__ = [
    'probe_path', 'probe_images', 'probe_scores', 'record_probe', 'check_probe'
]

#: how the probe images are made: ``num`` uint8 RGB images of ``size`` px
#: drawn by ``torch.Generator().manual_seed(seed)``
DEFAULT_PROBE = dict(num=4, size=112, seed=0)


def probe_path(weights: str) -> str:
    """``<weights without .pth>.probe.json``."""
    return osp.splitext(weights)[0] + '.probe.json'


def probe_images(num: int, size: int, seed: int) -> torch.Tensor:
    """``(num, 3, size, size)`` uint8 images, the same on every machine."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (num, 3, size, size), generator=gen,
                         dtype=torch.uint8)


@torch.no_grad()
def probe_scores(model, num: int, size: int, seed: int) -> List[List[float]]:
    """The model's ``pred_score`` for each probe image (eval mode, through
    its data preprocessor, as a test run feeds it)."""
    from mmpretrain.structures import DataSample
    model.eval()
    inputs = list(probe_images(num, size, seed))
    data = model.data_preprocessor(
        dict(inputs=inputs, data_samples=[DataSample() for _ in inputs]),
        False)
    samples = model.predict(data['inputs'], data['data_samples'])
    return [s.pred_score.float().tolist() for s in samples]


def record_probe(config: str, weights: str, **probe) -> str:
    """Write the probe file of published ``weights``; returns its path."""
    from .model import init_occam_model
    spec = dict(DEFAULT_PROBE, **probe)
    model = init_occam_model(config, weights, device='cpu')
    payload = dict(probe=spec, config=osp.basename(config),
                   weights=osp.basename(weights),
                   pred_score=probe_scores(model, **spec))
    path = probe_path(weights)
    from ..fileio import write_json
    write_json(path, payload, indent=1)
    return path


def check_probe(config: str, weights: str, atol: float = 1e-4) -> None:
    """Load ``weights`` strictly into ``config``'s model and compare its
    scores on the probe images with the recorded ones.

    Raises:
        FileNotFoundError: No probe file next to the weights.
        AssertionError: A score differs by more than ``atol``.
    """
    from .model import init_occam_model
    path = probe_path(weights)
    with open(path, encoding='utf-8') as f:
        recorded = json.load(f)
    model = init_occam_model(config, weights, device='cpu')
    got = torch.tensor(probe_scores(model, **recorded['probe']))
    want = torch.tensor(recorded['pred_score'])
    if got.shape != want.shape:
        raise AssertionError(
            f'{weights}: {tuple(got.shape)} scores on the probe images, '
            f'{path} recorded {tuple(want.shape)}.')
    diff = (got - want).abs().max().item()
    if diff > atol:
        raise AssertionError(
            f'{weights}: the scores on the probe images of {path} changed '
            f'by up to {diff:.2e} (> {atol}); recorded {want.tolist()}, got '
            f'{got.tolist()}.')

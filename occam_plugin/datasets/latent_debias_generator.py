"""Latent-space de-biasing (Ramaswamy et al., CVPR 2021): the functions that
make the synthetic pairs (attribute labels from scorer outputs, the latent
hyperplanes, the flip of the protected attribute, the images as samples);
:mod:`.latent_debias_dataset` is the dataset wrapper that runs them with a
generator and scorers and serves real + synthetic samples.
"""
from typing import Optional, Union

import numpy as np
import torch

from ..extras import import_extra

__all__ = [
    'binarize', 'to_class_labels', 'flip_protected', 'fit_plane',
    'to_bgr_uint8'
]

_FEATURE = 'Latent-space de-biasing (its attribute hyperplanes)'


def binarize(scores: torch.Tensor, threshold: Union[float, str, None],
             positive_class: Optional[int], what: str) -> np.ndarray:
    """Binary attribute labels from scorer outputs.

    ``[N]`` scores: ``score > threshold`` (``'median'``: the median of these
    scores). ``[N, K]`` logits: ``argmax == positive_class`` (``K == 2``:
    positive class 1 by default).
    """
    scores = scores.detach().float().cpu()
    if scores.dim() == 1:
        thr = float(scores.median()) if threshold == 'median' else float(
            threshold or 0.0)
        return (scores > thr).numpy().astype(np.int64)
    if scores.dim() != 2:
        raise ValueError(f'{what}: the scorer must return [N] scores or '
                         f'[N, K] logits, got shape {list(scores.shape)}')
    if positive_class is None:
        if scores.size(1) != 2:
            raise ValueError(
                f'{what}: the scorer returns {scores.size(1)} classes; set '
                f'the positive class of the binary attribute '
                f'({what}_positive_class=...)')
        positive_class = 1
    return (scores.argmax(1) == positive_class).numpy().astype(np.int64)


def to_class_labels(scores: torch.Tensor, threshold=0.0) -> np.ndarray:
    """Class labels the target classifier assigns: argmax of ``[N, K]``
    logits, or ``score > threshold`` for ``[N]`` scores."""
    scores = scores.detach().float().cpu()
    if scores.dim() == 1:
        return (scores > float(threshold or 0.0)).numpy().astype(np.int64)
    return scores.argmax(1).numpy().astype(np.int64)


def flip_protected(z: np.ndarray, w_t: np.ndarray, b_t, w_g: np.ndarray,
                   b_g: float) -> np.ndarray:
    """Ramaswamy et al.'s closed form: ``z'`` with the same target score(s)
    and the negated protected score.

    Binary target, unit normals ``w_t``, ``w_g`` (``c = w_t . w_g``),
    protected score ``s_g = w_g . z + b_g``::

        z' = z - 2 s_g / (1 - c^2) * (w_g - c w_t)

    so ``w_t . z' = w_t . z`` and ``w_g . z' + b_g = -s_g``. With several
    target planes (``w_t`` ``[K, d]``: one-vs-rest planes of a K-class target)
    the same holds with ``u = w_g`` minus its projection on the span of the
    target normals: ``z' = z - 2 s_g / (w_g . u) * u`` (for ``K = 1``,
    ``u = w_g - c w_t`` and ``w_g . u = 1 - c^2``).
    """
    w_t = np.atleast_2d(np.asarray(w_t, dtype=np.float64))
    w_g = np.asarray(w_g, dtype=np.float64)
    # u: the part of w_g orthogonal to every target normal
    q, _ = np.linalg.qr(w_t.T)
    u = w_g - q @ (q.T @ w_g)
    denom = float(w_g @ u)
    if denom < 1e-6:
        raise ValueError(
            'LatentDebiasDataset: the protected hyperplane is (nearly) '
            'parallel to the target hyperplane(s) (|w_g - projection| = '
            f'{denom:.2e}); the protected attribute cannot be flipped while '
            'the target score is kept.')
    s_g = z @ w_g + b_g
    return z - (2.0 * s_g / denom)[:, None] * u[None]


def fit_plane(z: np.ndarray, labels: np.ndarray, method: str, what: str):
    """Linear hyperplane(s) in ``z`` separating ``labels``, with unit
    normals: ``(w [d], b)`` for two labels, ``(w [K, d], b [K])``
    one-vs-rest for K.

    Args:
        z (np.ndarray): ``N x d`` latents.
        labels (np.ndarray): ``N`` attribute labels.
        method (str): ``'logistic'`` (``LogisticRegression``) or ``'svm'``
            (``LinearSVC``).
        what (str): The attribute, for the error message.
    """
    if len(np.unique(labels)) < 2:
        raise ValueError(
            f'LatentDebiasDataset: every one of the {len(labels)} fitting '
            f'samples has {what} label {labels[0]}; a hyperplane needs '
            'both values (check the scorer, its threshold/positive class, '
            'or raise num_fit_samples).')
    if method == 'logistic':
        clf = import_extra('sklearn.linear_model', 'fairness', _FEATURE) \
            .LogisticRegression(max_iter=1000)
    else:
        clf = import_extra('sklearn.svm', 'fairness', _FEATURE).LinearSVC()
    clf.fit(z, labels)
    w = np.asarray(clf.coef_, dtype=np.float64)
    b = np.asarray(clf.intercept_, dtype=np.float64).reshape(-1)
    norm = np.linalg.norm(w, axis=1)
    w, b = w / norm[:, None], b / norm
    if w.shape[0] == 1:  # binary: one plane
        return w[0], float(b[0])
    return w, b  # K classes: one-vs-rest planes [K, d], [K]


def to_bgr_uint8(imgs: torch.Tensor) -> np.ndarray:
    """``N x C x H x W`` images in [0, 1] (RGB or grey) -> ``N x H x W x 3``
    uint8, BGR (mmcv's channel order)."""
    arr = (imgs.permute(0, 2, 3, 1).cpu().numpy() * 255.0).round()
    arr = arr.astype(np.uint8)
    if arr.shape[-1] == 1:
        return np.repeat(arr, 3, axis=-1)
    return arr[..., ::-1].copy()  # RGB -> BGR (mmcv convention)

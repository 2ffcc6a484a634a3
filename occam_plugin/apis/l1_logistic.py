"""DFR's last-layer fit: scikit-learn's L1-regularised logistic regression
with the ``liblinear`` solver, called as the reference DFR calls it
(``LogisticRegression(penalty='l1', C=C, solver='liblinear')``, scikit-learn's
defaults otherwise; scikit-learn >= 1.8 spells ``penalty='l1'`` as
``l1_ratio=1``).

liblinear minimises ``||w||_1 + C sum_i log(1 + exp(-y_i (w x_i + b)))``
with the intercept penalised as the weight of a constant feature of value 1
(``intercept_scaling=1``). It fits two classes as one binary problem and,
in scikit-learn >= 1.7, refuses more; for more classes the binary fit is
wrapped in ``OneVsRestClassifier``, the one-vs-rest scheme the reference's
scikit-learn applied to liblinear. The result is returned as a layer of
``K`` rows: for two classes the binary ``(w, b)`` becomes ``(-w/2, -b/2)``
and ``(w/2, b/2)`` (the softmax of these logits is the binary model's
sigmoid, their argmax its prediction).
"""
from typing import Tuple

import numpy as np
import torch

from ..extras import import_extra

__all__ = ['fit_l1_logistic']

_FEATURE = "DFR's L1 logistic regression"


def fit_l1_logistic(X: torch.Tensor, y: torch.Tensor, num_classes: int,
                    C: float, max_iter: int = 100, tol: float = 1e-4,
                    random_state: int = 0
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fit scikit-learn's L1 logistic regression (``liblinear``).

    Args:
        X (Tensor): ``[n, d]`` features (float64 is used inside).
        y (Tensor): ``[n]`` labels; every one of ``0 .. num_classes - 1``
            must occur.
        num_classes (int): ``K`` (>= 2).
        C (float): Inverse regularisation strength (> 0), scikit-learn's.
        max_iter (int): liblinear's iteration cap. Defaults to 100
            (scikit-learn's, as the reference).
        tol (float): liblinear's stopping tolerance. Defaults to 1e-4
            (scikit-learn's).
        random_state (int): Seed of liblinear's coordinate order, so that
            a fit is repeatable. Defaults to 0.

    Returns:
        tuple[Tensor, Tensor]: ``W`` ``[K, d]`` and ``b`` ``[K]`` (float64).
    """
    if not C > 0:
        raise ValueError(f'fit_l1_logistic: C={C!r}; expected C > 0')
    labels = np.asarray(torch.as_tensor(y).long().cpu().numpy())
    missing = sorted(set(range(num_classes)) - set(labels.tolist()))
    if num_classes < 2 or missing:
        raise ValueError(
            f'fit_l1_logistic: the labels hold the classes '
            f'{sorted(set(labels.tolist()))}; expected every class of '
            f'0 .. {num_classes - 1} (num_classes={num_classes}) at least '
            'once' + (f', missing {missing}' if missing else ''))
    linear_model = import_extra('sklearn.linear_model', 'fairness', _FEATURE)
    features = torch.as_tensor(X).double().cpu().numpy()
    binary = linear_model.LogisticRegression(
        l1_ratio=1.0, C=float(C), solver='liblinear', max_iter=max_iter,
        tol=tol, random_state=random_state)
    if num_classes == 2:
        binary.fit(features, labels)
        w = binary.coef_[0] / 2
        b = binary.intercept_[0] / 2
        W, bias = np.stack([-w, w]), np.array([-b, b])
    else:
        multiclass = import_extra('sklearn.multiclass', 'fairness', _FEATURE)
        ovr = multiclass.OneVsRestClassifier(binary).fit(features, labels)
        W = np.concatenate([est.coef_ for est in ovr.estimators_])
        bias = np.concatenate([est.intercept_ for est in ovr.estimators_])
    return (torch.as_tensor(W, dtype=torch.float64),
            torch.as_tensor(bias, dtype=torch.float64))

"""L1-regularised multinomial logistic regression in torch (DFR's last-layer
fit), by FISTA: proximal gradient with Nesterov momentum, a fixed step from
the gradient's Lipschitz bound and a restart when the objective rises.

The objective, for features ``X`` ``[n, d]``, labels ``y`` ``[n]``, weights
``W`` ``[K, d]`` and biases ``b`` ``[K]``::

    F(W, b) = 1/n sum_i CE(W x_i + b, y_i) + ||W||_1 / (C n)

i.e. sklearn's ``LogisticRegression(penalty='l1', C=C)`` objective
``||W||_1 + C sum_i CE_i`` divided by ``C n`` (same minimiser); the
intercept is not penalised (sklearn's ``saga`` solver: neither; DFR's
``liblinear`` penalises it as a feature of value 1). Multinomial softmax
for any number of classes; with two classes its minimiser gives the same
predictions as the binary L1 logistic regression (the penalty of
``(w_0, w_1)`` is least at ``w_1 = -w_0 = w / 2``, where it is ``||w||_1``).
"""
from typing import Tuple

import torch
import torch.nn.functional as F

__all__ = [
    'soft_threshold', 'smooth_loss', 'smooth_grad', 'objective',
    'fit_l1_logistic'
]


def soft_threshold(x: torch.Tensor, t: float) -> torch.Tensor:
    """The proximal map of ``t ||.||_1``: ``sign(x) max(|x| - t, 0)``."""
    return torch.sign(x) * torch.clamp(x.abs() - t, min=0)


def smooth_loss(X: torch.Tensor, y: torch.Tensor, W: torch.Tensor,
                b: torch.Tensor) -> torch.Tensor:
    """The mean cross-entropy ``1/n sum_i CE(W x_i + b, y_i)``."""
    return F.cross_entropy(X @ W.T + b, y)


def smooth_grad(X: torch.Tensor, y: torch.Tensor, W: torch.Tensor,
                b: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Gradient of :func:`smooth_loss`: ``(P - Y)^T X / n`` and the column
    means of ``P - Y`` (``P`` the softmax, ``Y`` the one-hot labels)."""
    n = X.shape[0]
    r = torch.softmax(X @ W.T + b, dim=1)
    r[torch.arange(n), y] -= 1
    return r.T @ X / n, r.mean(0)


def objective(X: torch.Tensor, y: torch.Tensor, W: torch.Tensor,
              b: torch.Tensor, C: float) -> torch.Tensor:
    """``F(W, b)`` of the module docstring."""
    return smooth_loss(X, y, W, b) + W.abs().sum() / (C * X.shape[0])


def fit_l1_logistic(X: torch.Tensor, y: torch.Tensor, num_classes: int,
                    C: float, max_iter: int = 5000, tol: float = 1e-7
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Minimise ``F`` (module docstring) by FISTA.

    Args:
        X (Tensor): ``[n, d]`` features (float64 is used inside).
        y (Tensor): ``[n]`` labels in ``[0, num_classes)``.
        num_classes (int): ``K``.
        C (float): Inverse regularisation strength (> 0), as sklearn's.
        max_iter (int): Iteration cap. Defaults to 5000.
        tol (float): Stop when the proximal-gradient step moves the
            parameters by less than ``tol`` (max norm, scaled by the step).

    Returns:
        tuple[Tensor, Tensor]: ``W`` ``[K, d]`` and ``b`` ``[K]`` (float64).
    """
    if not C > 0:
        raise ValueError(f'fit_l1_logistic: C={C!r}; expected C > 0')
    X = X.double()
    y = y.long()
    n, d = X.shape
    # Lipschitz bound of the mean-CE gradient in (W, b): the softmax
    # Hessian is <= I/2, so L <= ||[X 1]||_2^2 / (2 n); doubled for safety
    Xb = torch.cat([X, X.new_ones(n, 1)], 1)
    L = max(float(torch.linalg.matrix_norm(Xb, ord=2)) ** 2 / n, 1e-12)
    step, thresh = 1.0 / L, 1.0 / (L * C * n)
    W = X.new_zeros(num_classes, d)
    b = X.new_zeros(num_classes)
    VW, Vb, t = W.clone(), b.clone(), 1.0
    last = float(objective(X, y, W, b, C))
    for _ in range(max_iter):
        gW, gb = smooth_grad(X, y, VW, Vb)
        W_new = soft_threshold(VW - step * gW, thresh)
        b_new = Vb - step * gb
        moved = max(float((W_new - W).abs().max()),
                    float((b_new - b).abs().max()))
        value = float(objective(X, y, W_new, b_new, C))
        if value > last:  # restart the momentum
            VW, Vb, t = W.clone(), b.clone(), 1.0
            continue
        t_new = (1 + (1 + 4 * t * t) ** 0.5) / 2
        VW = W_new + (t - 1) / t_new * (W_new - W)
        Vb = b_new + (t - 1) / t_new * (b_new - b)
        W, b, t, last = W_new, b_new, t_new, value
        if moved < tol:
            break
    return W, b

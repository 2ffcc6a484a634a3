"""One check for non-finite losses, shared by models and the guard hook."""
from typing import Dict, Mapping

import torch

__all__ = ['non_finite_losses', 'check_finite_losses']


def non_finite_losses(losses: Mapping) -> Dict[str, list]:
    """The losses that are NaN or inf (``name -> values``).

    Only keys containing ``'loss'`` are checked (as mmengine sums them);
    values may be tensors or numbers.
    """
    bad = {}
    for key, value in losses.items():
        if 'loss' not in key:
            continue
        tensor = torch.as_tensor(
            value.detach() if isinstance(value, torch.Tensor) else value)
        if not torch.isfinite(tensor).all():
            bad[key] = tensor.float().cpu().tolist()
    return bad


def check_finite_losses(losses: Mapping, where: str, hint: str = '') -> None:
    """Raise ``FloatingPointError`` naming every loss that is NaN or inf.

    Args:
        losses (Mapping): ``name -> value`` (see :func:`non_finite_losses`).
        where (str): Who computed them, for the message (model, iteration).
        hint (str): What to check, appended to the message.
    """
    bad = non_finite_losses(losses)
    if bad:
        raise FloatingPointError(
            f'{where}: non-finite loss {bad}; '
            + (hint or 'check the learning rate, the input normalisation '
               'and the labels.'))

"""One check for non-finite losses, shared by models and the guard hook."""
from typing import Mapping

import torch


def check_finite_losses(losses: Mapping, where: str, hint: str = '') -> None:
    """Raise ``FloatingPointError`` naming every loss that is NaN or inf.

    Args:
        losses (Mapping): ``name -> value`` (tensors or numbers); only keys
            containing ``'loss'`` are checked (as mmengine sums them).
        where (str): Who computed them, for the message (model, iteration).
        hint (str): What to check, appended to the message.
    """
    bad = {}
    for key, value in losses.items():
        if 'loss' not in key:
            continue
        tensor = torch.as_tensor(
            value.detach() if isinstance(value, torch.Tensor) else value)
        if not torch.isfinite(tensor).all():
            bad[key] = tensor.float().cpu().tolist()
    if bad:
        raise FloatingPointError(
            f'{where}: non-finite loss {bad}; '
            + (hint or 'check the learning rate, the input normalisation '
               'and the labels.'))

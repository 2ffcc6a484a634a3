"""The distributed reduction ``mmengine.dist`` does not offer.

Everything else goes through ``mmengine.dist`` (``all_reduce``,
``all_gather``, ``get_world_size``, ``broadcast_object_list``, ...), which is
a no-op in one process and moves tensors to the backend's device.
"""
import torch
from mmengine.dist import all_gather, get_world_size

__all__ = ['all_gather_rows']


def all_gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Concatenate, in rank order, the ``[n_r, ...]`` tensors of every rank.

    ``mmengine.dist.all_gather`` needs the same shape on every rank; here
    the number of rows ``n_r`` may differ (the trailing dimensions, dtype and
    device may not). Each rank pads its rows to the largest ``n_r``.

    Args:
        x (torch.Tensor): This rank's rows, ``[n_r, ...]``.

    Returns:
        torch.Tensor: ``[sum_r n_r, ...]``, the same on every rank; ``x``
        itself when not distributed.
    """
    if get_world_size() < 2:
        return x
    sizes = [int(s.item()) for s in all_gather(
        torch.tensor([x.size(0)], device=x.device))]
    padded = x.new_zeros((max(sizes), ) + tuple(x.shape[1:]))
    padded[:x.size(0)] = x
    return torch.cat([rows[:n] for rows, n in zip(all_gather(padded), sizes)])

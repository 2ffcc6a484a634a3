"""Helpers of the per-sample methods: the plug-point inputs checked, and a
bias annotation of every data sample read as a tensor (the data-sample
contract of ``docs/architecture.md``).
"""
from typing import List, Optional, Sequence

import torch

from ...errors import MissingKeyError

__all__ = ['check_per_sample', 'sample_field']


def sample_field(data_samples: Optional[Sequence], key: str,
                 device: torch.device, owner: str,
                 required: bool = True) -> Optional[torch.Tensor]:
    """Stack the per-sample field ``key`` of ``data_samples`` as a long tensor.

    Args:
        data_samples (Sequence[DataSample] | None): The batch's data samples.
        key (str): A data-sample key, e.g. ``'group_idx'``.
        device (torch.device): Where to put the result.
        owner (str): Name of the calling module, for the error message.
        required (bool): Raise when a sample lacks the key, else return None.

    Returns:
        Tensor | None: ``[N]`` long tensor.
    """
    missing = (data_samples is None or len(data_samples) == 0
               or any(key not in ds for ds in data_samples))
    if missing:
        if required:
            raise MissingKeyError(
                f'{owner} needs the data-sample key {key!r} on every sample; '
                f"end the pipeline with dict(type='PackBiasInputs') and use a "
                f'dataset that provides {key!r} (e.g. BiasedMNIST, '
                'ColoredMNIST, BiasAnnotatedDataset).')
        return None
    values: List[int] = []
    for ds in data_samples:
        v = ds.get(key)
        if isinstance(v, torch.Tensor):
            v = v.reshape(-1)[0].item()
        values.append(int(v))
    return torch.tensor(values, dtype=torch.long, device=device)


def check_per_sample(per_sample_loss: torch.Tensor, logits: torch.Tensor,
                     gt: torch.Tensor, owner: str) -> None:
    """Validate the shapes of the plug-point inputs."""
    n = logits.size(0)
    if per_sample_loss.dim() != 1 or per_sample_loss.numel() != n:
        raise ValueError(
            f'{owner}: per_sample_loss must have shape [N]={[n]} (one loss '
            f'per sample), got {list(per_sample_loss.shape)}')
    if gt.dim() != 1 or gt.numel() != n:
        raise ValueError(f'{owner}: gt must have shape [N]={[n]}, got '
                         f'{list(gt.shape)}')

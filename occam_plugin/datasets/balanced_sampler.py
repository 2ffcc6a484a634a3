"""What the group- and class-balanced samplers share: sampling with
replacement, each sample with a probability inversely proportional to the
size of its group (class), deterministic given the seed and the epoch and
split over the ranks as mmengine's ``DefaultSampler`` splits its indices."""
import math
from typing import Iterator, Optional, Sized

import numpy as np
import torch
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

__all__ = ['BalancedSampler']


class BalancedSampler(Sampler):
    """Indices drawn with replacement, sample ``i`` with probability
    ``1 / (K * n_k(i))``: ``n_k(i)`` the number of samples of its key (group
    or class) and ``K`` the number of keys present, so every present key is
    drawn with probability ``1 / K`` and, within it, every sample alike (the
    weights ``N / n_k`` of SubpopBench's and BalancingGroups'
    ``WeightedRandomSampler``, normalised).

    Each epoch draws ``total_size`` indices from a generator seeded with
    ``seed + epoch`` (the same on every rank) and rank ``r`` of ``W`` takes
    every ``W``-th from the ``r``-th, as ``DefaultSampler`` does; so the run
    is the same for a given seed, epoch and world size, and ``set_epoch``
    (called by mmengine's train loop) gives every epoch its own draw.

    Subclasses set :attr:`name`, :attr:`key` (the sample field balanced)
    and :attr:`missing_hint` (what to do when samples lack it).

    Args:
        dataset (Sized): The dataset; its ``get_data_info`` is read (no image
            is loaded).
        num_samples (int, optional): Indices drawn per epoch over all ranks.
            Defaults to ``len(dataset)`` (an epoch as long as an unbalanced
            one).
        seed (int, optional): Random seed, the same on every rank. Defaults
            to None: a seed shared by the ranks (``sync_random_seed``), as
            ``DefaultSampler``.
        shuffle (bool): Accepted so that a ``DefaultSampler`` config becomes
            this one by its ``type`` alone
            (``train_dataloader.sampler.type=GroupBalancedSampler``); the
            draw is random, so it must be True. Defaults to True.
    """

    #: the sampler's name, for messages
    name = 'BalancedSampler'
    #: the field of ``get_data_info`` balanced: 'group_idx' or 'gt_label'
    key = 'group_idx'
    #: the end of the error when samples lack :attr:`key`
    missing_hint = ''

    def __init__(self,
                 dataset: Sized,
                 num_samples: Optional[int] = None,
                 seed: Optional[int] = None,
                 shuffle: bool = True) -> None:
        if shuffle is not True:
            raise ValueError(
                f'{self.name}: shuffle={shuffle!r}, but balanced sampling '
                'draws at random (with replacement); leave shuffle=True, or '
                "use dict(type='DefaultSampler', shuffle=False) for an "
                'ordered, unbalanced pass')
        self.rank, self.world_size = get_dist_info()
        self.dataset = dataset
        if len(dataset) == 0:
            raise ValueError(f'{self.name}: the dataset is empty')
        if num_samples is None:
            num_samples = len(dataset)
        if isinstance(num_samples, bool) or not isinstance(
                num_samples, int) or num_samples < 1:
            raise ValueError(f'{self.name}: num_samples must be an integer '
                             f'>= 1 (or None: the dataset size), got '
                             f'{num_samples!r}')
        self.seed = sync_random_seed() if seed is None else seed
        self.epoch = 0
        self.num_samples = math.ceil(num_samples / self.world_size)
        self.total_size = self.num_samples * self.world_size
        keys = np.asarray(self.keys(dataset), dtype=np.int64)
        _, inverse, counts = np.unique(keys, return_inverse=True,
                                       return_counts=True)
        #: per key present: its number of samples
        self.key_counts = dict(zip(np.unique(keys).tolist(),
                                   counts.tolist()))
        weights = 1.0 / (len(counts) * counts[inverse])
        #: the probability of drawing each sample (sums to 1)
        self.probabilities = torch.as_tensor(weights, dtype=torch.float64)

    def keys(self, dataset) -> np.ndarray:
        """The :attr:`key` of every sample (read as the training-state
        hooks read it); an error names the samples without one."""
        from .training_set_info import training_set_info
        keys = training_set_info(dataset)[self.key]
        missing = (np.arange(len(dataset)) if keys is None else
                   np.flatnonzero(keys < 0))
        if len(missing):
            raise ValueError(
                f'{self.name}: {len(missing)} of {len(dataset)} samples of '
                f'the training set ({type(dataset).__name__}) have no '
                f'{self.key} (e.g. sample {int(missing[0])}), so there is '
                f'nothing to balance. {self.missing_hint}')
        return keys

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        indices = torch.multinomial(self.probabilities, self.total_size,
                                    replacement=True, generator=g).tolist()
        return iter(indices[self.rank:self.total_size:self.world_size])

    def __len__(self) -> int:
        """The number of indices of this rank per epoch."""
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Draw the indices of ``epoch`` next."""
        self.epoch = epoch

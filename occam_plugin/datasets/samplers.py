"""A batch rule for training: no batch of a single sample."""
import logging
from typing import Iterator, List

from mmengine.logging import print_log
from mmpretrain.registry import DATA_SAMPLERS
from torch.utils.data import Sampler

__all__ = ['NoSingletonBatchSampler']


@DATA_SAMPLERS.register_module()
class NoSingletonBatchSampler(Sampler):
    """Batches of ``batch_size`` indices, as torch's ``BatchSampler``
    (``drop_last=False``), except that a last batch of one sample joins the
    batch before it.

    A batch of one sample cannot train a BatchNorm that sees one value per
    channel (a ``BatchNorm1d``, such as the Occam gate MLP's, or a trunk's
    ``BatchNorm2d`` on a 1 x 1 map): torch stops the epoch with "Expected
    more than 1 value per channel when training". That last batch holds one
    sample whenever the samples of a rank number 1 modulo ``batch_size``
    (with mmengine's ``DefaultSampler``: N mod (batch x ranks) = 1, on every
    rank at once), so it strikes real datasets of any size. Here the lone
    sample is put into the batch before it (``batch_size + 1`` samples), so
    every sample is still trained on once per epoch and the per-sample state
    of the models (the Occam gate memory, LfF's loss EMAs) sees it as any
    other; the epoch has one iteration less. A console warning says so the
    first time. In every other case the batches (their order and content,
    and ``len``) are exactly those of ``BatchSampler``, so runs without a
    lone last sample are unchanged. A rank with a single sample in all still
    gets that batch of one (nothing to merge it with).

    ``tools/train.py`` uses this for the train dataloader unless the config
    sets a ``batch_sampler`` (``batch_sampler=None`` keeps torch's) or
    ``drop_last=True``.

    Args:
        sampler (Sampler): The index sampler (e.g. ``DefaultSampler``); its
            ``set_epoch`` is reached as ``batch_sampler.sampler``, as
            mmengine's hooks look for it.
        batch_size (int): Samples per batch.
    """

    def __init__(self, sampler: Sampler, batch_size: int) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) \
                or batch_size < 1:
            raise ValueError(f'{type(self).__name__}: batch_size must be an '
                             f'integer >= 1, got {batch_size!r}')
        self.sampler = sampler
        self.batch_size = batch_size
        self._warned = False

    def _merges(self, num_samples: int) -> bool:
        return (self.batch_size > 1 and num_samples > self.batch_size
                and num_samples % self.batch_size == 1)

    def __iter__(self) -> Iterator[List[int]]:
        batch: List[int] = []
        full = None  # the last full batch, held back by one
        for idx in self.sampler:
            batch.append(idx)
            if len(batch) == self.batch_size:
                if full is not None:
                    yield full
                full, batch = batch, []
        if len(batch) == 1 and full is not None and self.batch_size > 1:
            if not self._warned:
                self._warned = True
                print_log(
                    f'NoSingletonBatchSampler: the last training batch of '
                    f'the epoch would hold 1 sample ({len(self.sampler)} '
                    f'samples on this rank, batch size {self.batch_size}), '
                    'which a BatchNorm cannot train on; it joins the batch '
                    f'before it ({self.batch_size + 1} samples) in every '
                    'such epoch (noted once).', logger='current',
                    level=logging.WARNING)
            yield full + batch
            return
        if full is not None:
            yield full
        if batch:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        batches = (n + self.batch_size - 1) // self.batch_size
        return batches - 1 if self._merges(n) else batches

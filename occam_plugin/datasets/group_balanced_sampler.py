"""Group-balanced sampling: every bias group equally likely."""
from mmpretrain.registry import DATA_SAMPLERS

from .balanced_sampler import BalancedSampler

__all__ = ['GroupBalancedSampler']


@DATA_SAMPLERS.register_module()
class GroupBalancedSampler(BalancedSampler):
    """Samples drawn with replacement, each with a probability inversely
    proportional to the size of its group (``group_idx``), so every group of
    the training set is drawn equally often in expectation (SubpopBench's
    and BalancingGroups' group-balanced sampling).

    ``train_dataloader.sampler = dict(type='GroupBalancedSampler')`` on any
    dataset whose samples carry ``group_idx`` (the biased datasets,
    ``BiasAnnotatedDataset`` with attributes). Arguments (``num_samples``,
    ``seed``, ``shuffle``), seeding, epochs and ranks: see
    :class:`~.balanced_sampler.BalancedSampler`.
    """

    name = 'GroupBalancedSampler'
    key = 'group_idx'
    missing_hint = (
        'Train on data with bias annotations (a biased dataset, or '
        "type='BiasAnnotatedDataset' with attribute columns), or balance "
        "the classes with sampler=dict(type='ClassBalancedSampler').")

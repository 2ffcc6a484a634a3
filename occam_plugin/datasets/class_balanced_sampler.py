"""Class-balanced sampling: every class equally likely."""
from mmpretrain.registry import DATA_SAMPLERS

from .balanced_sampler import BalancedSampler

__all__ = ['ClassBalancedSampler']


@DATA_SAMPLERS.register_module()
class ClassBalancedSampler(BalancedSampler):
    """Samples drawn with replacement, each with a probability inversely
    proportional to the size of its class (``gt_label``), so every class of
    the training set is drawn equally often in expectation (SubpopBench's
    class-balanced sampling; it needs no bias annotations). Arguments
    (``num_samples``, ``seed``, ``shuffle``), seeding, epochs and ranks: see
    :class:`~.balanced_sampler.BalancedSampler`.
    """

    name = 'ClassBalancedSampler'
    key = 'gt_label'
    missing_hint = 'Every training sample needs a gt_label.'

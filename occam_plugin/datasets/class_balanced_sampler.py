"""Class-balanced sampling: every class equally likely."""
import numpy as np
from mmpretrain.registry import DATA_SAMPLERS

from .balanced_sampler import BalancedSampler


@DATA_SAMPLERS.register_module()
class ClassBalancedSampler(BalancedSampler):
    """Samples drawn with replacement, each with a probability inversely
    proportional to the size of its class (``gt_label``), so every class of
    the training set is drawn equally often in expectation (SubpopBench's
    class-balanced sampling; needs no bias annotations; see
    :class:`~.balanced_sampler.BalancedSampler` for seed, epochs and ranks).

    Args:
        dataset (Sized): The training set.
        num_samples (int, optional): Indices per epoch over all ranks.
            Defaults to the dataset size.
        seed (int, optional): Random seed. Defaults to one shared by the
            ranks.
    """

    name = 'ClassBalancedSampler'

    def keys(self, dataset) -> np.ndarray:
        from ..engine.hooks.training_state_hook import training_set_info
        labels = training_set_info(dataset)['gt_label']
        missing = np.flatnonzero(labels < 0)
        if len(missing):
            raise ValueError(
                f'{self.name}: {len(missing)} of {len(dataset)} samples of '
                f'the training set ({type(dataset).__name__}) have no '
                f'gt_label (e.g. sample {int(missing[0])}): no classes to '
                'balance.')
        return labels

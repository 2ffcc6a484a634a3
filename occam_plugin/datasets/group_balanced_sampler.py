"""Group-balanced sampling: every bias group equally likely."""
import numpy as np
from mmpretrain.registry import DATA_SAMPLERS

from .balanced_sampler import BalancedSampler


@DATA_SAMPLERS.register_module()
class GroupBalancedSampler(BalancedSampler):
    """Samples drawn with replacement, each with a probability inversely
    proportional to the size of its group (``group_idx``), so every group of
    the training set is drawn equally often in expectation (SubpopBench's
    and BalancingGroups' group-balanced sampling; see
    :class:`~.balanced_sampler.BalancedSampler` for seed, epochs and ranks).

    ``train_dataloader.sampler = dict(type='GroupBalancedSampler')`` on any
    dataset whose samples carry ``group_idx`` (the biased datasets,
    ``BiasAnnotatedDataset`` with attributes).

    Args:
        dataset (Sized): The training set.
        num_samples (int, optional): Indices per epoch over all ranks.
            Defaults to the dataset size.
        seed (int, optional): Random seed. Defaults to one shared by the
            ranks.
    """

    name = 'GroupBalancedSampler'

    def keys(self, dataset) -> np.ndarray:
        from ..engine.hooks.training_state_hook import training_set_info
        groups = training_set_info(dataset)['group_idx']
        missing = (np.arange(len(dataset)) if groups is None else
                   np.flatnonzero(groups < 0))
        if len(missing):
            raise ValueError(
                f'{self.name}: {len(missing)} of {len(dataset)} samples of '
                f'the training set ({type(dataset).__name__}) have no '
                f'group_idx (e.g. sample {int(missing[0])}), so there are no '
                'groups to balance. Train on data with bias annotations (a '
                "biased dataset, or type='BiasAnnotatedDataset' with "
                'attribute columns), or balance the classes with '
                "sampler=dict(type='ClassBalancedSampler').")
        return groups

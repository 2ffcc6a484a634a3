"""The protocol of modules that read bias annotations from every training
sample (group ids, aligned flags): they declare the keys, and the train
guard checks the training set for them before the first step, so a new
method that needs groups gets the check by declaring them."""
from typing import Tuple

import torch.nn as nn

__all__ = ['AnnotationNeeds', 'GroupAnnotationNeeds']


class AnnotationNeeds:
    """Mixin for modules that read annotations from every training sample.

    ``TrainGuardHook`` finds every such module of the model before training
    and stops the run, naming the module and the keys, when the training
    set's samples do not carry one of them.
    """

    def needed_sample_keys(self, model: nn.Module) -> Tuple[str, ...]:
        """Data-sample keys of which one must be on every training sample
        (empty: none in this configuration).

        Args:
            model (nn.Module): The whole model (a module's needs may depend
                on it: PGI reads groups from an exit when the model has
                exits).
        """
        return ()


class GroupAnnotationNeeds(AnnotationNeeds):
    """``AnnotationNeeds`` of a module that reads one group id from every
    training sample, under its ``group_key`` attribute."""

    group_key: str = 'group_idx'

    def needed_sample_keys(self, model: nn.Module) -> Tuple[str, ...]:
        return (self.group_key, )

import random
from typing import Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

__all__ = ['RandomStateHook']


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save the random-number states in checkpoints and restore them on resume.

    mmengine re-seeds at start-up, so a resumed run draws different data
    augmentations (crops, flips) than an uninterrupted run would. With the
    Python, numpy and torch (CPU) generator states stored in the checkpoint's
    ``meta`` and put back right before training continues, "train 2 epochs" and
    "train 1 epoch + resume 1" give identical weights (with ``num_workers=0``
    and deterministic kernels; worker processes seed themselves).

    Only the saving rank's states are stored; on resume every rank gets them.

    Args:
        restore (bool): Whether to put the saved states back on resume.
            Defaults to True.
    """

    priority = 'VERY_LOW'  # restore after every other hook's before_train
    META_KEY = 'random_states'

    def __init__(self, restore: bool = True):
        self.restore = restore
        self._loaded: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})[self.META_KEY] = dict(
            python=random.getstate(),
            numpy=np.random.get_state(),
            torch=torch.get_rng_state())

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # applied in before_train: mmengine may re-seed after loading
        self._loaded = checkpoint.get('meta', {}).get(self.META_KEY)

    def before_train(self, runner) -> None:
        states, self._loaded = self._loaded, None
        if not self.restore or states is None:
            return
        random.setstate(states['python'])
        np.random.set_state(states['numpy'])
        # a resume on a GPU maps the checkpoint's tensors there; the CPU
        # generator takes its state as a CPU ByteTensor only
        torch.set_rng_state(states['torch'].to('cpu', torch.uint8))

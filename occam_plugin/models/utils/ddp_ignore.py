"""The DDP ignore list of a model: its declared rank-local buffers."""
from typing import List

from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from .training_state import rank_local_buffers

__all__ = ['ignore_rank_local_buffers']


def ignore_rank_local_buffers(model: nn.Module) -> List[str]:
    """Tell torch DDP not to broadcast the model's rank-local buffers.

    The per-sample memories declared in ``TrainingState.RANK_LOCAL_BUFFERS``
    differ between ranks by design (``TrainingStateHook`` merges them); DDP
    would otherwise overwrite them with rank 0's copy at every forward. Call
    it on the unwrapped model before ``DistributedDataParallel`` wraps it
    (``OccamClassifier`` does at build time, ``SafeRunner.wrap_model`` for
    every model).

    Args:
        model (nn.Module): The model DDP will wrap.

    Returns:
        list[str]: The ignored buffer names (possibly empty).
    """
    names = rank_local_buffers(model)
    DDP._set_params_and_buffers_to_ignore_for_model(model, names)
    return names

"""Multi-process training without CUDA (CPU, gloo).

mmengine's ``pytorch`` launcher calls ``torch.cuda.set_device`` before it
opens the process group, and its default DDP wrapper passes CUDA
``device_ids``. Both fail on a CPU-only machine. :func:`setup_cpu_distributed`
opens the gloo process group itself (the Runner then finds it open and skips
``init_dist``) and configures a DDP wrapper without ``device_ids``.
"""
import datetime
import os

import torch
import torch.distributed as torch_dist
from mmengine.dist import is_distributed

__all__ = ['setup_cpu_distributed', 'CPU_MODEL_WRAPPER_CFG']

#: DDP wrapper for CPU processes: no ``device_ids`` (those name CUDA devices);
#: buffers (BN statistics, Occam gate memory) are not broadcast every step,
#: the TrainingStateHook merges the rank-local state at each epoch end.
CPU_MODEL_WRAPPER_CFG = dict(
    type='MMDistributedDataParallel', device_ids=None,
    broadcast_buffers=False)

_REQUIRED_ENV = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')


def setup_cpu_distributed(cfg) -> bool:
    """Prepare a ``pytorch``-launched run on a machine without CUDA.

    Does nothing (returns False) unless ``cfg.launcher == 'pytorch'`` and CUDA
    is unavailable. Otherwise opens a gloo process group from the torchrun
    environment variables (if not already open), sets
    ``cfg.env_cfg.dist_cfg.backend = 'gloo'`` and fills
    ``cfg.model_wrapper_cfg`` with :data:`CPU_MODEL_WRAPPER_CFG` (keys the
    user set there win, except ``device_ids``, which must be None on CPU).

    Args:
        cfg (mmengine.Config): The run's config, modified in place.

    Returns:
        bool: Whether the CPU distributed setup was applied.
    """
    if cfg.get('launcher', 'none') != 'pytorch' or torch.cuda.is_available():
        return False
    missing = [k for k in _REQUIRED_ENV if k not in os.environ]
    if missing:
        raise RuntimeError(
            f'--launcher pytorch needs the environment variables '
            f'{list(_REQUIRED_ENV)} that torchrun sets; missing {missing}. '
            'Start the run with tools/dist_train.sh or '
            '`torchrun --nproc_per_node=N tools/train.py CONFIG --launcher '
            'pytorch`.')
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'  # nccl needs CUDA
    if not is_distributed():
        kwargs = {}
        timeout = dist_cfg.get('timeout')
        if timeout is not None:
            kwargs['timeout'] = datetime.timedelta(seconds=timeout)
        torch_dist.init_process_group(
            backend='gloo',
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']),
            **kwargs)
    wrapper = dict(CPU_MODEL_WRAPPER_CFG)
    wrapper.update(cfg.get('model_wrapper_cfg') or {})
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    return True

"""SafeRunner wraps a model for DDP in the installed torch's words: no
FutureWarning from our wrapper config (``broadcast_buffers`` is deprecated
since torch 2.14), rank-local buffers still out of DDP's syncs."""
import json
import os
import warnings

import pytest
from torch.nn.parallel import DistributedDataParallel as DDP

from tests.helpers import run_gloo_ranks, tiny_occam_cfg
from occam_plugin.dist import CPU_MODEL_WRAPPER_CFG
from occam_plugin.engine.runner.safe_runner import ddp_wrapper_cfg

NEW_TORCH = 'forward_sync_buffers' in DDP.__init__.__code__.co_varnames

OCCAM_MODEL = tiny_occam_cfg(2)


def _wrap_worker(rank, init_file, out_dir):
    """One gloo rank: SafeRunner wraps an OccamNet with the CPU wrapper
    config; the warnings raised meanwhile and the DDP settings go to
    ``out_dir/wrap.json``."""
    import torch.distributed as dist
    from occam_plugin.engine.runner import SafeRunner
    os.environ.setdefault('LOCAL_RANK', '0')  # mmengine reads it
    dist.init_process_group('gloo', init_method=f'file://{init_file}',
                            rank=rank, world_size=1)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            runner = SafeRunner(
                model=OCCAM_MODEL, work_dir=f'{out_dir}/work',
                launcher='pytorch', default_scope='mmpretrain',
                env_cfg=dict(dist_cfg=dict(backend='gloo')),
                cfg=dict(model_wrapper_cfg=dict(CPU_MODEL_WRAPPER_CFG)),
                log_level='WARNING')
        ddp = runner.model
        record = dict(
            warnings=[dict(category=w.category.__name__, file=w.filename,
                           message=str(w.message)) for w in caught],
            wrapper=type(ddp).__name__,
            forward_sync=bool(getattr(ddp, 'forward_sync_buffers',
                                      ddp.broadcast_buffers
                                      if hasattr(ddp, 'broadcast_buffers')
                                      else True)),
            ignored=sorted(ddp.parameters_to_ignore))
        with open(f'{out_dir}/wrap.json', 'w') as f:
            json.dump(record, f)
    finally:
        dist.destroy_process_group()


def _ours_or_wrappers(w):
    """A FutureWarning raised by the DDP wrappers our configs build."""
    return w['category'] == 'FutureWarning' and any(
        part in w['file'] for part in (
            'occam_plugin', os.path.join('mmengine', 'model'),
            os.path.join('torch', 'nn', 'parallel')))


@pytest.mark.slow
def test_wrapping_for_ddp_raises_no_future_warning(tmp_path):
    run_gloo_ranks(_wrap_worker, tmp_path, world_size=1)
    with open(tmp_path / 'wrap.json') as f:
        record = json.load(f)
    assert record['wrapper'] == 'MMDistributedDataParallel'
    assert [w for w in record['warnings'] if _ours_or_wrappers(w)] == []
    # buffers still not synced at each forward, the gate memory never
    assert record['forward_sync'] is False
    assert {'head.gate_loss.memory', 'head.gate_loss.valid'} <= set(
        record['ignored'])


@pytest.mark.skipif(not NEW_TORCH, reason='a torch without '
                    'forward_sync_buffers takes broadcast_buffers as is')
@pytest.mark.parametrize('given, expected', [
    # mmengine's default wrapper (no model_wrapper_cfg), in new words
    (None, dict(type='MMDistributedDataParallel', forward_sync_buffers=False,
                find_unused_parameters=True)),
    # the CPU wrapper of tools/dist_train.sh
    (CPU_MODEL_WRAPPER_CFG, dict(type='MMDistributedDataParallel',
                                 device_ids=None,
                                 forward_sync_buffers=False)),
    # the user's own choice of the new key is kept
    (dict(broadcast_buffers=True, forward_sync_buffers=False),
     dict(broadcast_buffers=True, forward_sync_buffers=False)),
    # not a DDP: left alone
    (dict(type='MMFullyShardedDataParallel', broadcast_buffers=False),
     dict(type='MMFullyShardedDataParallel', broadcast_buffers=False)),
])
def test_ddp_wrapper_cfg(given, expected):
    got = ddp_wrapper_cfg(given, find_unused_parameters=True)
    assert got == expected
    assert got is not given
    assert CPU_MODEL_WRAPPER_CFG['broadcast_buffers'] is False  # unchanged

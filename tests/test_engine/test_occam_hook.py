"""TrainingStateHook driving the Occam gate state through a real Runner."""
import numpy as np
import pytest
import torch
from mmengine.dataset import BaseDataset
from mmengine.hooks import Hook

import occam_plugin  # noqa: F401  (registers)
from tests.helpers import end_rank, gloo_rank_results, tiny_occam_cfg
from occam_plugin.engine.runner import SafeRunner
from occam_plugin.models.utils.training_state import (rank_local_buffers,
                                                      reset_epoch_state,
                                                      sync_state)
from mmpretrain.datasets.transforms import PackInputs


class TinySet(BaseDataset):
    """10 random 16 px images, 2 classes, in memory."""

    METAINFO = dict(classes=('cat', 'dog'))

    def load_data_list(self):
        rng = np.random.default_rng(0)
        return [
            dict(img=rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
                 gt_label=i % 2) for i in range(10)
        ]


class RecordEpochState(Hook):
    """Snapshot the head's gate state after each training epoch."""

    priority = 'LOW'  # after TrainingStateHook

    def __init__(self):
        self.seen = []

    def after_train_epoch(self, runner):
        gate = runner.model.head.gate_loss
        self.seen.append(
            dict(epoch=int(gate.epoch), total=gate.total.sum(1).tolist(),
                 running_max=runner.model.head.exit_ce.running_max.clone()))


def make_model_cfg(num_classes):
    return tiny_occam_cfg(
        num_classes,
        data_preprocessor=dict(mean=[127.5] * 3, std=[127.5] * 3,
                               num_classes=num_classes))


def make_runner(tmp_path, num_classes=2, hooks=()):
    model = make_model_cfg(num_classes)
    # SafeRunner: what every occam-plugin config runs with (its `guard`
    # hook checks the class count)
    return SafeRunner(
        model=model,
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=TinySet(pipeline=[PackInputs()]),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=4,
            num_workers=0),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        custom_hooks=list(hooks),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=1)),
        default_scope='mmpretrain',
        randomness=dict(seed=0),
        log_level='WARNING')


def test_hook_sizes_memory_and_resets_each_epoch(tmp_path):
    record = RecordEpochState()
    runner = make_runner(tmp_path, hooks=[record])
    assert runner.model.head.gate_loss.memory.shape[0] == 0
    runner.train()
    gate = runner.model.head.gate_loss
    assert gate.memory.shape == (10, 4)  # len(train set) x exits
    assert gate.valid.all()  # every sample got a target for every exit
    # counts restart each epoch: each epoch sees the 10 samples once per exit
    assert [s['epoch'] for s in record.seen] == [0, 1]
    assert [s['total'] for s in record.seen] == [[10.0] * 4, [10.0] * 4]
    assert all(s['running_max'].gt(0).all() for s in record.seen)
    # the checkpoint carries the state; a fresh runner resumes it exactly
    ckpt = torch.load(tmp_path / 'epoch_2.pth', weights_only=True,
                      map_location='cpu')['state_dict']
    assert torch.equal(ckpt['head.gate_loss.memory'], gate.memory)
    assert torch.equal(ckpt['head.gate_loss.valid'], gate.valid)


def test_rank_local_buffers_come_from_the_declarations():
    from mmpretrain.registry import MODELS
    model = MODELS.build(make_model_cfg(2))
    expected = [f'head.gate_loss.{b}' for b in ('memory', 'valid', 'written')]
    assert rank_local_buffers(model) == expected
    assert model._ddp_params_and_buffers_to_ignore == expected


def test_runner_rejects_num_classes_mismatch(tmp_path):
    runner = make_runner(tmp_path, num_classes=3)
    with pytest.raises(ValueError) as err:
        runner.train()
    msg = str(err.value)
    assert 'model.head.num_classes' in msg and '3' in msg and '2 classes' \
        in msg


# ------------------------------------------------------- two processes (gloo)
def _dist_worker(rank, init_file, out_dir):
    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample
    dist.init_process_group('gloo', init_method=f'file://{init_file}',
                            rank=rank, world_size=2)
    torch.manual_seed(0)  # same initial weights on both ranks
    model = MODELS.build(tiny_occam_cfg(2))
    model.head.gate_loss.resize_memory(8)
    reset_epoch_state(model, 0)
    ddp = MMDistributedDataParallel(module=model, device_ids=None)
    torch.manual_seed(rank)  # each rank its own images
    for step in range(2):
        # rank r, step s sees samples 4s + 2r, 4s + 2r + 1 (disjoint)
        idx = [4 * step + 2 * rank, 4 * step + 2 * rank + 1]
        ds = [DataSample(metainfo=dict(sample_idx=i)).set_gt_label(i % 2)
              for i in idx]
        losses = ddp(torch.randn(2, 3, 16, 16), ds, mode='loss')
        sum(v for k, v in losses.items() if 'loss' in k).backward()
    gate = model.head.gate_loss
    before = gate.valid.clone()
    sync_state(model)
    end_rank(out_dir, rank, dict(
        before=before, memory=gate.memory, valid=gate.valid,
        total=gate.total, running_max=model.head.exit_ce.running_max))


@pytest.mark.slow
def test_two_ranks_keep_and_share_the_gate_memory(tmp_path):
    r0, r1 = gloo_rank_results(_dist_worker, tmp_path)
    # before the sync each rank still holds its own writes (DDP did not
    # overwrite them with rank 0's buffers at the second forward)
    own = [torch.tensor([0, 1, 4, 5]), torch.tensor([2, 3, 6, 7])]
    for r, state in enumerate((r0, r1)):
        assert state['before'][own[r]].all()
        assert not state['before'][own[1 - r]].any()
    # after it every rank knows every sample's target, identically
    assert r0['valid'].all() and r1['valid'].all()
    assert torch.equal(r0['memory'], r1['memory'])
    # per-class counts were all-reduced in the step: 8 samples per exit
    assert r0['total'].sum(1).tolist() == [8.0] * 4
    assert torch.equal(r0['total'], r1['total'])
    assert torch.equal(r0['running_max'], r1['running_max'])


class NamedSet(BaseDataset):
    """TinySet's 10 images, each with a file name (its identity), in the
    order ``order`` (a permutation of 0..9)."""

    METAINFO = dict(classes=('cat', 'dog'))

    def __init__(self, order=tuple(range(10)), **kwargs):
        self.order = list(order)
        super().__init__(**kwargs)

    def load_data_list(self):
        rng = np.random.default_rng(0)
        imgs = [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
                for _ in range(10)]
        return [dict(img=imgs[k], img_path=f'img_{k}.png', gt_label=k % 2)
                for k in self.order]


def test_resume_on_the_training_set_reordered_stops(tmp_path):
    """RC5: the same training set with its rows reordered: the gate memory
    (rows keyed by sample_idx) would be applied to other samples. The
    checkpoint records the training set's sample digest; a resume on other
    samples of the same size stops, or on request re-initialises."""
    from occam_plugin.engine.hooks import TrainingStateHook
    from occam_plugin.models.utils.training_state import (
        TrainingStateMismatch)

    def runner_on(order, max_epochs, mode='error'):
        load_from = str(tmp_path / 'epoch_1.pth') if max_epochs > 1 else None
        return SafeRunner(
            model=make_model_cfg(2), work_dir=str(tmp_path),
            train_dataloader=dict(
                dataset=NamedSet(order=order, pipeline=[PackInputs()]),
                sampler=dict(type='DefaultSampler', shuffle=True),
                batch_size=4, num_workers=0),
            train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
            optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
            default_hooks=dict(
                checkpoint=dict(type='CheckpointHook', interval=1),
                training_state=dict(on_new_train_size=mode)),
            default_scope='mmpretrain', randomness=dict(seed=0),
            resume=max_epochs > 1, log_level='WARNING', load_from=load_from,
            # what tools/train.py's config holds (the work-dir guard reads it)
            cfg=dict(resume=max_epochs > 1, load_from=load_from))

    runner_on(range(10), 1).train()
    ckpt = torch.load(tmp_path / 'epoch_1.pth', weights_only=True)
    assert len(ckpt['meta'][TrainingStateHook.META_KEY]) == 64
    memory = ckpt['state_dict']['head.gate_loss.memory']
    reordered = [9 - k for k in range(10)]  # same samples, same size
    with pytest.raises(TrainingStateMismatch) as err:
        runner_on(reordered, 2).train()
    msg = str(err.value)
    assert 'head.gate_loss.memory' in msg and '10 samples' in msg
    assert 'reordered, replaced or relabelled' in msg
    assert 'on_new_train_size=reinit' in msg
    assert not (tmp_path / 'epoch_2.pth').exists()
    # on request the gate memory starts again
    runner = runner_on(reordered, 2, mode='reinit')
    runner.train()
    assert (tmp_path / 'epoch_2.pth').exists()
    # the same order resumes as before (its state kept)
    (tmp_path / 'epoch_2.pth').unlink()
    (tmp_path / 'last_checkpoint').unlink()
    runner = runner_on(range(10), 2)
    runner.train()
    assert runner.model.head.gate_loss.memory.shape == memory.shape

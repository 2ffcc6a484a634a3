"""A last training batch of one sample (N mod (batch x ranks) = 1) joins the
batch before it: BatchNorm (the trunk's on a 1 x 1 map, the Occam gate
MLP's BatchNorm1d) cannot train on one sample, and torch stopped the epoch
with "Expected more than 1 value per channel". Runs without a lone sample
are unchanged."""
import logging
import os.path as osp

import pytest
import torch
from torch.utils.data import BatchSampler, SequentialSampler

from tests.helpers import (REPO, TINY_BAR_OPTIONS, TINY_RESNET_OPTIONS,
                           bar_data_options, load_tool, read_logs,
                           write_bar_folder)
from occam_plugin.datasets.samplers import NoSingletonBatchSampler

CONFIGS = dict(
    plain=osp.join(REPO, 'configs', 'resnet', 'resnet18_1xb128_90e_bar.py'),
    occam=osp.join(REPO, 'configs', 'occam_resnet18_bar.py'),
    # width 16 (LfF's two models: no backbone key to narrow)
    lff=osp.join(REPO, 'configs', 'lff',
                 'lff_resnet18-w16_1xb64_60e_bar-small.py'))


def test_batches_are_torchs_except_a_lone_last_sample(monkeypatch):
    from occam_plugin.datasets import samplers
    logged = []
    monkeypatch.setattr(samplers, 'print_log',
                        lambda msg, logger=None, level=None:
                        logged.append((msg, level)))
    for n in range(0, 24):
        for b in range(1, 7):
            sampler = SequentialSampler(range(n))
            ref = list(BatchSampler(sampler, b, drop_last=False))
            batches = NoSingletonBatchSampler(sampler, b)
            got = list(batches)
            assert len(batches) == len(got)
            if b > 1 and n > b and n % b == 1:
                assert got == ref[:-2] + [ref[-2] + ref[-1]], (n, b)
            else:
                assert got == ref, (n, b)
    batches = NoSingletonBatchSampler(SequentialSampler(range(9)), 4)
    logged.clear()
    assert [len(x) for x in batches] == [4, 5]
    assert [len(x) for x in batches] == [4, 5]  # the next epoch
    assert len(logged) == 1 and logged[0][1] == logging.WARNING
    assert 'would hold 1 sample (9 samples on this rank, batch size 4)' in \
        logged[0][0]
    with pytest.raises(ValueError, match='batch_size must be an integer'):
        NoSingletonBatchSampler(SequentialSampler(range(3)), 0)


def _train(config, root, work_dir, *extra):
    narrow = () if config == CONFIGS['lff'] else TINY_RESNET_OPTIONS
    load_tool('train.py').main([
        config, '--work-dir', str(work_dir), '--cfg-options',
        *TINY_BAR_OPTIONS, *bar_data_options(root), *narrow,
        'train_cfg.max_epochs=2', 'train_cfg.val_interval=2', *extra])
    return torch.load(osp.join(work_dir, 'epoch_2.pth'), map_location='cpu',
                      weights_only=True)


@pytest.mark.slow
@pytest.mark.parametrize('model', ['plain', 'occam', 'lff'])
def test_a_lone_last_sample_trains_through_tools_train(tmp_path, model):
    # 2 images per class: train/ less the val split holds 6, batch 5:
    # the last batch of every epoch would hold one sample (32 px: the
    # trunk's last map is 1 x 1, so even the plain ResNet's BatchNorm2d
    # sees one value per channel)
    root = write_bar_folder(tmp_path / 'BAR', per_class=2)
    ckpt = _train(CONFIGS[model], root, tmp_path / 'run',
                  'train_dataloader.batch_size=5')
    assert ckpt['meta']['epoch'] == 2
    log = read_logs(tmp_path / 'run')
    assert 'NoSingletonBatchSampler: the last training batch of the epoch ' \
        'would hold 1 sample (6 samples on this rank, batch size 5)' in log
    state = ckpt['state_dict']
    if model == 'occam':  # every sample reached the gate memory
        assert state['head.gate_loss.written'].all()
    if model == 'lff':  # ... and LfF's loss EMAs
        assert state['ema_updated'].shape == (6, )
        assert state['ema_updated'].all()


@pytest.mark.slow
def test_runs_without_a_lone_sample_are_unchanged(tmp_path):
    """Batch 4 on 6 samples (last batch 2): the same weights as with
    torch's own batch sampler."""
    root = write_bar_folder(tmp_path / 'BAR', per_class=2)
    ours = _train(CONFIGS['plain'], root, tmp_path / 'ours')
    torchs = _train(CONFIGS['plain'], root, tmp_path / 'torch',
                    'train_dataloader.batch_sampler=None')
    assert ours['state_dict'].keys() == torchs['state_dict'].keys()
    for key, value in ours['state_dict'].items():
        assert torch.equal(value, torchs['state_dict'][key]), key


def test_a_runner_built_by_hand_drops_no_batch_of_one(tmp_path):
    """SafeRunner built without the tools (10 samples, batch 3: a last
    batch of one) stopped at the end of epoch 1 with BatchNorm's "Expected
    more than 1 value per channel"; it gets the tools' batch sampler."""
    from tests.test_engine.test_checkpoint_safety import tiny_runner
    runner = tiny_runner(tmp_path, max_epochs=1, batch_size=3)
    runner.train()
    assert [len(b) for b in runner.train_dataloader.batch_sampler] == \
        [3, 3, 4]
    assert osp.isfile(tmp_path / 'epoch_1.pth')
    # a config that chooses torch's batches keeps them
    from occam_plugin.engine.runner.safe_runner import no_singleton_batches
    mine = dict(batch_size=3, batch_sampler=None)
    assert no_singleton_batches(mine) is mine
    assert no_singleton_batches(dict(batch_size=3, drop_last=True)) == \
        dict(batch_size=3, drop_last=True)

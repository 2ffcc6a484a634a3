"""benchmarks/bar.py end to end on a tiny BAR folder: trains, tests the
val-chosen and the last checkpoint, reuses finished runs, writes its table."""
import json
import os.path as osp
import subprocess
import sys

import pytest

from tests.helpers import (REPO, TINY_BAR_OPTIONS, TINY_RESNET_OPTIONS,
                           write_bar_folder)

sys.path.insert(0, osp.join(REPO, 'benchmarks'))
import bar  # noqa: E402


def test_kendall_tau_by_hand():
    assert bar.kendall_tau([1, 2, 3], [10, 20, 30]) == 1
    assert bar.kendall_tau([1, 2, 3], [30, 20, 10]) == -1
    # pairs: (1,2) concordant, (1,3) discordant, (2,3) discordant
    assert abs(bar.kendall_tau([1, 2, 3], [1, 3, 2]) - 1 / 3) < 1e-9
    assert bar.kendall_tau([1], [1]) is None


def test_options_of_a_protocol():
    # width 32 is in the configs; 30 epochs move the lr steps with them
    opts = bar.options('w32-112px-30e', 'occam', 'lff', 1, '/d', 30)
    assert opts == ['randomness.seed=1'] + [
        f'{loader}_dataloader.dataset.data_root=/d'
        for loader in ('train', 'val', 'test')] + [
        'train_cfg.max_epochs=30', 'param_scheduler.milestones=[16,23]']
    assert bar.PROTOCOLS['w32-112px-30e'][0][('occam', 'lff')] == \
        'configs/lff/lff_occamnets-resnet18-w32_1xb64_60e_bar-small.py'
    assert bar.PROTOCOLS['w32-112px-60e'][0][('occam', 'no-cs')] == \
        'configs/occamnets/occamnets_resnet18-w32_1xb64_60e_bar-small.py'
    # the shipped CPU protocol needs no option beyond seed and data
    assert bar.options(bar.CPU_PROTOCOL, 'resnet', 'erm', 0, None, 60) == [
        'randomness.seed=0']
    assert bar.options(bar.CPU_PROTOCOL, 'resnet', 'sd', 0, None, 60)[-1] == \
        'model.head.method.type=SpectralDecoupling'
    assert bar.options(bar.CPU_PROTOCOL, 'occam', 'no-cs', 0, None, 60)[-1] \
        == 'model.head.cam_suppression=None'
    # 160 px: the train crop, and val/test resized to 8/7 of it, then cropped
    opts = bar.options('w16-160px-60e', 'resnet', 'erm', 0, None, 60)
    assert opts == ['randomness.seed=0',
                    'train_dataloader.dataset.pipeline.1.scale=160',
                    'val_dataloader.dataset.pipeline.1.scale=182',
                    'val_dataloader.dataset.pipeline.2.crop_size=160',
                    'test_dataloader.dataset.pipeline.1.scale=182',
                    'test_dataloader.dataset.pipeline.2.crop_size=160']


def test_paper_scale_loaders_share_the_cpus_among_the_jobs(monkeypatch):
    monkeypatch.setattr(bar.os, 'cpu_count', lambda: 16)
    for jobs, workers in ((1, 15), (2, 7), (4, 3), (32, 1)):
        opts = bar.options('paper', 'occam', 'erm', 0, None, 90, jobs=jobs)
        assert opts[:3] == [
            'randomness.seed=0',
            'data_preprocessor.type=ChannelsLastDataPreprocessor',
            'default_hooks.checkpoint.interval=10']
        for loader in ('train', 'val', 'test'):
            assert f'{loader}_dataloader.num_workers={workers}' in opts


@pytest.mark.parametrize('key', [('resnet', 'erm'), ('occam', 'erm'),
                                 ('resnet', 'lff'), ('occam', 'lff')])
def test_width_32_configs_are_the_width_16_ones_at_width_32(key):
    """What the w32 protocols trained before they had configs: the width-16
    config with the stem and every stage of each trunk at width 32 (the
    debiased model of an LfF ResNet is a copy of its biased one)."""
    from mmengine.config import Config

    def resolved(path):
        return Config.fromfile(osp.join(REPO, path),
                               import_custom_modules=False)

    w32 = resolved(bar.PROTOCOLS['w32-112px-60e'][0][key])
    w16 = resolved(bar.PROTOCOLS['w16-112px-60e'][0][key])
    trunks = {('resnet', 'lff'): ('model.biased_model', ),
              ('occam', 'lff'): ('model.biased_model',
                                 'model.debiased_model')}
    assert w16.model != w32.model
    w16.merge_from_dict({f'{t}.backbone.{k}': 32
                         for t in trunks.get(key, ('model', ))
                         for k in ('stem_channels', 'base_channels')})
    assert w32.to_dict() == w16.to_dict()


def test_each_set_of_select_candidates_has_its_own_section():
    assert bar.select_section(bar.SELECT_PROTOCOLS) == \
        'bar.py protocol selection'
    assert bar.select_section(['w32-112px-60e', 'w16-160px-60e']) == \
        'bar.py protocol selection w32-112px-60e w16-160px-60e'


def test_a_report_without_erm_has_its_own_section():
    assert bar.run_section('w32-112px-60e', ['erm', 'lff']) == \
        'bar.py w32-112px-60e'
    assert bar.run_section('w32-112px-60e', ['lff']) == \
        'bar.py w32-112px-60e lff'


def test_summarise_predictions_by_hand():
    import torch
    preds = [dict(gt_label=torch.tensor([g]), pred_label=torch.tensor([p]))
             for g, p in ((0, 0), (0, 1), (1, 1), (2, 2), (2, 2), (5, 0))]
    out = bar.summarise_predictions(preds, None)
    assert out['n'] == 6 and abs(out['acc'] - 400 / 6) < 1e-9
    assert out['per_class']['climbing'] == 50.0
    assert out['per_class']['diving'] == 100.0
    assert out['per_class']['throwing'] == 0.0
    assert out['per_class']['racing'] is None  # no test image of the class
    assert out['pred_share']['climbing'] == 100 * 2 / 6
    assert out['pred_share']['throwing'] == 0


def test_exit_columns_put_each_exit_under_its_stage():
    # the first exit's stage comes from the method's out_indices option
    assert bar.first_exit_stage('exits-234') == 1
    assert bar.first_exit_stage('erm') == bar.first_exit_stage('no-cs') == 0
    full = [dict(share_e1=30.0, acc_exited_e1=50.0, share_e2=20.0,
                 acc_exited_e2=40.0, share_e3=50.0, acc_exited_e3=20.0,
                 acc_e0=10.0, acc_e1=20.0, acc_e2=30.0, acc_e3=40.0,
                 expected_compute=0.8),
            dict(share_e1=10.0, acc_exited_e1=30.0, share_e2=40.0,
                 acc_exited_e2=20.0, share_e3=50.0, acc_exited_e3=40.0,
                 acc_e0=30.0, acc_e1=40.0, acc_e2=50.0, acc_e3=60.0,
                 expected_compute=0.7)]
    shares, accs, compute = bar.exit_columns('erm', full)
    assert shares == ['20.0 (40.0)', '30.0 (30.0)', '50.0 (30.0)']
    assert accs == '20.0 / 30.0 / 40.0 / 50.0' and compute == '0.750'
    # no exit after stage 1: its exits 0-2 are the columns of stages 2-4
    three = [dict(share_e0=25.0, acc_exited_e0=60.0, share_e1=25.0,
                  acc_exited_e1=50.0, share_e2=50.0, acc_exited_e2=30.0,
                  acc_e0=35.0, acc_e1=45.0, acc_e2=55.0,
                  expected_compute=0.9)]
    shares, accs, compute = bar.exit_columns('exits-234', three)
    assert shares == ['25.0 (60.0)', '25.0 (50.0)', '50.0 (30.0)']
    assert accs == '- / 35.0 / 45.0 / 55.0' and compute == '0.900'


@pytest.mark.slow
def test_bar_benchmark_end_to_end(tmp_path):
    root = write_bar_folder(tmp_path / 'BAR', per_class=3)
    work = tmp_path / 'runs'
    md = tmp_path / 'results.md'
    tiny = [o for o in TINY_BAR_OPTIONS if not o.startswith('train_cfg')]
    cmd = [sys.executable, osp.join(REPO, 'benchmarks', 'bar.py'),
           '--seeds', '0', '--jobs', '2', '--epochs', '2',
           '--data-root', root, '--work-root', str(work),
           '--results-md', str(md), '--extra-options', *tiny,
           *TINY_RESNET_OPTIONS]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    text = md.read_text()
    assert '<!-- bar.py w16-112px-60e begin -->' in text
    assert '| ResNet-18 | ERM | 0 |' in text
    assert '| OccamResNet-18 | ERM | 0 |' in text
    assert 'ahead in' in text and 'Exits of the OccamResNet-18' in text
    for model in ('resnet', 'occam'):
        wd = work / bar.CPU_PROTOCOL / f'{model}-erm_seed0'
        res = json.loads((wd / 'bar_result.json').read_text())
        # 3 test images per class, read from the predictions dumped
        assert res['test_last']['n'] == 18
        assert res['test_last']['checkpoint'] == 'epoch_2.pth'
        # the val-chosen weights on the 2 train (not val) images per class
        assert res['test_best_on_train']['n'] == 12
        assert abs(sum(res['test_best']['pred_share'].values()) - 100) < 1e-6
        assert res['test_best']['checkpoint'].startswith('best_accuracy_top1')
        assert set(res['val']) == {'1', '2'}
        assert res['train_seconds'] > 0
        assert 0 < res['fastest_epoch_seconds'] <= res['train_seconds']
        if model == 'occam':
            assert 'expected_compute' in res['test_best']['exits']
            # the re-test of the val-chosen weights at the last exit
            assert res['test_best_last_exit']['exits']['share_e3'] == 100
        else:
            assert 'test_best_last_exit' not in res
        # the val-chosen checkpoint is the epoch of the best val accuracy
        assert res['val'][str(res['best_epoch'])] == max(res['val'].values())
    # a second call reuses the finished runs: no training, same table
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0
    assert 'tools/train.py' not in again.stdout
    assert md.read_text() == text

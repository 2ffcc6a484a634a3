"""JTT: the error set of hand-made predictions, the upsampled training set
counted by hand, the errors of a mismatched error set, and tools/jtt.py end
to end on a tiny Waterbirds-format folder (a plain ResNet identifies, an
OccamNet trains on the upsampled set): killed during identification it
resumes, finished it writes nothing again, and the stage-2 config it wrote
trains through tools/train.py."""
import json
import os
import os.path as osp
import signal
import subprocess
import time

import numpy as np
import pytest
import occam_plugin  # noqa: F401  (registers)
from mmpretrain.registry import DATASETS

from tests.helpers import PYTHON, REPO, run_tool
from occam_plugin.datasets.error_set import error_set_record, read_error_set
from occam_plugin.datasets.training_set_info import training_set_info
from occam_plugin.fileio import write_json
from tests.helpers import (
    tiny_waterbirds_options,
    waterbirds_config,
    write_waterbirds,
)


def train_set(root):
    return DATASETS.build(dict(type='BiasAnnotatedDataset',
                               format='waterbirds', data_root=root,
                               split='train'))


@pytest.fixture
def error_set(tmp_path):
    """The 6 training birds (labels 0 0 0 1 1 1, groups 0 0 1 3 3 2) and
    predictions 0 1 0 0 1 1: samples 1 and 3 are wrong."""
    root = write_waterbirds(tmp_path / 'wb')
    ds = train_set(root)
    record = error_set_record(ds, [5, 4, 3, 2, 1, 0], [1, 1, 0, 0, 1, 0],
                              identification_epochs=2, checkpoint='x.pth')
    path = str(tmp_path / 'error_set.json')
    write_json(path, record)
    return root, ds, path, record


def test_error_set_by_hand(error_set):
    _, _, _, record = error_set
    assert record['indices'] == [1, 3]
    assert record['img_paths'] == ['002.Landbird/bird_001.jpg',
                                   '001.Waterbird/bird_003.jpg']
    assert record['num_errors'] == 2 and record['error_rate'] == 2 / 6
    assert record['errors_per_group'] == {'landbird/land': 1,
                                          'waterbird/water': 1}
    assert record['identification_epochs'] == 2
    assert record['dataset']['num_samples'] == 6


def test_upsampled_counts_by_hand(error_set):
    root, ds, path, _ = error_set
    up = DATASETS.build(dict(
        type='UpsampledDataset', error_set=path, lambda_up=3,
        dataset=dict(type='BiasAnnotatedDataset', format='waterbirds',
                     data_root=root, split='train')))
    # the whole set, then the error set 3 times over (the reference's
    # ConcatDataset([train, Subset(train, errors * 3)]))
    assert up.source_indices() == [0, 1, 2, 3, 4, 5, 1, 3, 1, 3, 1, 3]
    assert len(up) == 12
    infos = [up.get_data_info(i) for i in range(12)]
    assert [d['sample_idx'] for d in infos] == list(range(12))
    assert [d['source_idx'] for d in infos] == up.source_indices()
    assert np.bincount([d['source_idx'] for d in infos]).tolist() == \
        [1, 4, 1, 4, 1, 1]
    for d in infos:
        orig = ds.get_data_info(d['source_idx'])
        assert (d['gt_label'], d['group_idx'], d['img_path']) == (
            orig['gt_label'], orig['group_idx'], orig['img_path'])
    assert up.metainfo['group_names'] == ds.metainfo['group_names']
    # what the samplers and GroupDRO / UpWt count: groups 0 0 1 3 3 2 plus
    # 3 x (group 0, group 3)
    info = training_set_info(up)
    assert np.bincount(info['group_idx']).tolist() == [5, 1, 1, 5]
    # images are read through the wrapped dataset's pipeline
    assert up.pipeline is up.dataset.pipeline


def test_mismatched_error_set(error_set, tmp_path):
    root, ds, path, record = error_set
    cfg = dict(type='BiasAnnotatedDataset', format='waterbirds',
               data_root=root, split='train')
    with pytest.raises(ValueError, match='lambda_up=0; expected an integer'):
        DATASETS.build(dict(type='UpsampledDataset', dataset=cfg,
                            error_set=path, lambda_up=0))
    other = dict(record, img_paths=['a.jpg', '001.Waterbird/bird_003.jpg'])
    write_json(str(tmp_path / 'moved.json'), other)
    with pytest.raises(ValueError, match=r"moved\.json: sample 1 was "
                       r"'a\.jpg' when the error set was made, but is "
                       r"'002\.Landbird/bird_001\.jpg'"):
        read_error_set(str(tmp_path / 'moved.json'), ds)
    bigger = dict(record, dataset=dict(record['dataset'], num_samples=7))
    write_json(str(tmp_path / 'bigger.json'), bigger)
    with pytest.raises(ValueError, match='made on a training set of 7 '
                       'samples, but the dataset given has 6'):
        read_error_set(str(tmp_path / 'bigger.json'), ds)
    write_json(str(tmp_path / 'other.json'), dict(indices=[1]))
    with pytest.raises(ValueError, match='not a JTT error set'):
        read_error_set(str(tmp_path / 'other.json'), ds)


def _jtt_cmd(final_cfg, id_cfg, work, opts, T=4):
    return [PYTHON, osp.join(REPO, 'tools', 'jtt.py'), final_cfg,
            '--id-config', id_cfg, '--work-dir', str(work), '--epochs-id',
            str(T), '--lambda-up', '2', '--cfg-options', *opts]


@pytest.mark.slow
def test_jtt_tool_resumes_and_never_rewrites(tmp_path):
    root = write_waterbirds(tmp_path / 'waterbird_complete95_forest2water2')
    final_cfg = waterbirds_config(tmp_path, 'occam_resnet18')
    id_cfg = waterbirds_config(tmp_path, 'resnet18')
    opts = tiny_waterbirds_options(root)
    work = tmp_path / 'jtt'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    # killed (SIGKILL, no cleanup) once the identification run has saved
    # its first epoch of 4
    proc = subprocess.Popen(_jtt_cmd(final_cfg, id_cfg, work, opts),
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, start_new_session=True)
    first = work / 'identification' / 'epoch_1.pth'
    deadline = time.time() + 300
    while not first.exists() and proc.poll() is None and \
            time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first.exists()
    assert not (work / 'error_set.json').exists()  # stage 1 unfinished

    out = run_tool('jtt.py', *_jtt_cmd(final_cfg, id_cfg, work, opts)[2:],
                   env=dict(OMP_NUM_THREADS='1')).stdout
    assert 'resuming' in out and 'identification' in out, out[-3000:]
    record = json.loads((work / 'error_set.json').read_text())
    assert record['checkpoint'].endswith(osp.join('identification',
                                                  'epoch_4.pth'))
    assert record['identification_epochs'] == 4
    assert record['config'] == osp.abspath(id_cfg)
    n = record['dataset']['num_samples']
    result = json.loads((work / 'jtt_result.json').read_text())
    assert result['num_errors'] == record['num_errors']
    assert osp.isfile(result['final_checkpoint'])
    # the upsampled run trained an OccamNet on n + 2 * errors samples
    log = open(sorted(
        (work / 'upsampled').glob('*/*.log'))[-1]).read()
    assert "type='UpsampledDataset'" in log and 'OccamClassifier' in log
    assert (f'from {n + 2 * record["num_errors"]} training samples'
            in log), log[-3000:]  # TrainingStateHook: the Occam gate memory

    # finished: nothing runs, no file changes
    files = {p: p.stat().st_mtime_ns for p in work.rglob('*') if p.is_file()}
    out = run_tool('jtt.py', *_jtt_cmd(final_cfg, id_cfg, work, opts)[2:],
                   env=dict(OMP_NUM_THREADS='1')).stdout
    assert 'nothing to do' in out
    assert {p: p.stat().st_mtime_ns for p in work.rglob('*')
            if p.is_file()} == files
    # other settings into the same folder: refused, nothing written
    proc = run_tool('jtt.py', *_jtt_cmd(final_cfg, id_cfg, work, opts,
                                        T=3)[2:], check=False)
    assert proc.returncode != 0
    assert 'holds a JTT run with other settings' in proc.stdout
    assert 'identification_epochs' in proc.stdout

    # the stage-2 config is a config tools/train.py trains as it is
    run_tool('train.py', str(work / 'upsampled.py'), '--work-dir',
             str(tmp_path / 'again'), env=dict(OMP_NUM_THREADS='1'))
    assert (tmp_path / 'again' / 'epoch_1.pth').exists()


def test_error_set_of_another_data_root_is_refused(error_set, tmp_path):
    """An error set made on one data_root, reused on another whose
    training set has the same size and image names but other groups (one
    bird's place flipped): refused, naming both data roots; the same data
    copied elsewhere is still accepted."""
    import shutil
    root, ds, path, record = error_set
    assert record['dataset']['data_root'] == osp.abspath(root)
    assert record['dataset']['ann_file'] == osp.join(osp.abspath(root),
                                                     'metadata.csv')
    assert len(record['dataset']['digest']) == 64
    from tests.helpers import WATERBIRDS_ROWS
    rows = list(WATERBIRDS_ROWS)
    rows[4] = (1, 0, 0)  # sample 4: waterbird on land now (group 2, not 3)
    other_root = write_waterbirds(tmp_path / 'other', rows)
    other = train_set(other_root)
    assert len(other) == len(ds)
    with pytest.raises(ValueError) as err:
        read_error_set(path, other)
    msg = str(err.value)
    assert f'made on the training set of data_root {osp.abspath(root)!r}' \
        in msg
    assert f'this training set is data_root {other_root!r}' in msg
    assert 'Identify the errors on this training set' in msg
    # the same folder copied: the same samples, accepted
    copy_root = str(tmp_path / 'copy')
    shutil.copytree(root, copy_root)
    assert read_error_set(path, train_set(copy_root))['indices'] == [1, 3]


def test_config_edited_between_stages_names_the_keys(tmp_path):
    """upsampled.py written by an earlier command, the config's lr
    edited since: refused before anything trains, naming the changed key
    (was -> now) and what to do; upsampled.py is left as it was."""
    from tests.helpers import load_tool
    from occam_plugin.apis.jtt import upsampled_config
    from occam_plugin.apis.offline import load_config
    root = write_waterbirds(tmp_path / 'wb')
    base = waterbirds_config(tmp_path, 'resnet18')
    mine = tmp_path / 'mine.py'

    def write(lr):
        mine.write_text(f'_base_ = [{base!r}]\n'
                        f'optim_wrapper = dict(optimizer=dict(lr={lr}))\n')
    write(0.5)
    tool = load_tool('jtt.py')
    work = tmp_path / 'jtt'
    argv = [str(mine), '--work-dir', str(work), '--epochs-id', '1',
            '--lambda-up', '2', '--cfg-options',
            *tiny_waterbirds_options(root)]
    args = tool.parse_args(argv)
    # what the first command left: its error set and its stage-2 config
    os.makedirs(work)
    record = error_set_record(train_set(root), range(6), [0] * 6,
                              identification_epochs=1, checkpoint='x.pth')
    write_json(str(work / 'error_set.json'), record)
    earlier = upsampled_config(load_config(str(mine), args.cfg_options),
                               str(work / 'error_set.json'), 2,
                               str(work / 'upsampled')).pretty_text
    (work / 'upsampled.py').write_text(earlier)
    write(0.05)  # edited between the stages
    with pytest.raises(SystemExit) as err:
        tool.main(argv)
    msg = str(err.value)
    assert 'changed since' in msg
    assert 'optim_wrapper.optimizer.lr: 0.5 -> 0.05' in msg
    assert 'Restore the config to finish this run, or start over in a new '\
        '--work-dir' in msg
    assert (work / 'upsampled.py').read_text() == earlier
    assert not (work / 'upsampled').exists()  # nothing trained


def test_final_checkpoint_is_the_one_model_selection_chose(tmp_path):
    """With ModelSelectionCheckpointHook the JTT result names
    the checkpoint its rule chose (epoch 2 here), not the last (epoch 3),
    and says which rule; without one, the last epoch."""
    from mmengine.config import Config
    from occam_plugin.apis.jtt import final_checkpoint
    work = tmp_path / 'upsampled'
    work.mkdir()
    for name in ('epoch_1.pth', 'epoch_2.pth', 'epoch_3.pth',
                 'best_bias_worst_group_acc_epoch_2.pth'):
        (work / name).write_bytes(b'')
    (work / 'last_checkpoint').write_text(str(work / 'epoch_3.pth'))
    best = dict(checkpoint='best_bias_worst_group_acc_epoch_2.pth',
                epoch=2, iter=4, value=50.0)
    write_json(str(work / 'model_selection.json'),
               dict(rule='worst_group', metric='bias/worst_group_acc',
                    best=best, history=[]))
    plain = Config(dict(default_hooks=dict(checkpoint=dict(
        type='CheckpointHook'))))
    got = final_checkpoint(plain, str(work))
    assert got['final_checkpoint'] == str(work / 'epoch_3.pth')
    assert got['chosen_by'] == 'the last epoch'
    ruled = Config(dict(default_hooks=dict(checkpoint=dict(
        type='ModelSelectionCheckpointHook', selection='worst_group'))))
    got = final_checkpoint(ruled, str(work))
    assert got['final_checkpoint'] == str(
        work / 'best_bias_worst_group_acc_epoch_2.pth')
    assert got['chosen_by'] == ("model selection rule 'worst_group' (the "
                                'best bias/worst_group_acc)')
    assert got['last_checkpoint'] == str(work / 'epoch_3.pth')
    assert got['model_selection'] == best
    os.remove(work / 'best_bias_worst_group_acc_epoch_2.pth')
    with pytest.raises(SystemExit, match='names no checkpoint that exists'):
        final_checkpoint(ruled, str(work))

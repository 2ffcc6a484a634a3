"""No checkpoint is lost, no number comes from the wrong weights.

Every case runs tools/train.py / tools/test.py on a tiny BAR folder (32 px,
width 8): in the test process (``main(argv)``) where determinism does not
matter, in subprocesses where it does (resume equality, SIGKILL).
"""
import hashlib
import os
import os.path as osp
import random
import shutil
import signal
import subprocess
import textwrap

import pytest
import torch

import occam_plugin  # noqa: F401  (checkpoint allow-list for torch.load)
from tests.helpers import (PYTHON, REPO, TINY_BAR_OPTIONS, TINY_RESNET_OPTIONS,
                           bar_data_options, load_tool, write_bar_folder)
from occam_plugin.engine.runner import CheckpointError, latest_checkpoint

OCCAM_CFG = osp.join(REPO, 'configs', 'occam_resnet18_bar.py')
PLAIN_CFG = osp.join(REPO, 'configs', 'resnet',
                     'resnet18_1xb128_90e_bar.py')
#: the plain head's input width follows the tiny backbone (8 x 8)
PLAIN_WIDTH = ('model.head.in_channels=64', )
GATE_STATE = ('head.gate_loss.memory', 'head.gate_loss.valid',
              'head.gate_loss.written')


def digest(folder):
    """sha256 of every file directly in ``folder`` (name -> hash)."""
    out = {}
    for name in sorted(os.listdir(folder)):
        path = osp.join(folder, name)
        if osp.isfile(path):
            with open(path, 'rb') as f:
                out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


def unchanged(before, folder):
    """Every file of ``before`` is still in ``folder``, byte for byte (a
    refused run may add its own log folder and config copy)."""
    after = digest(folder)
    changed = {k for k in before if after.get(k) != before[k]}
    assert not changed, f'changed or removed: {sorted(changed)}'
    return True


def options(root, *extra, deterministic=False):
    return ['--cfg-options', *TINY_BAR_OPTIONS, *bar_data_options(root),
            *TINY_RESNET_OPTIONS,
            f'randomness.deterministic={deterministic}',
            'default_hooks.logger.interval=50', *extra]


def train(work_dir, root, *extra, config=OCCAM_CFG, flags=()):
    """tools/train.py in this process."""
    load_tool('train.py').main(
        [config, '--work-dir', str(work_dir), *flags, *options(root, *extra)])


def run_test(config, ckpt, work_dir, root, *flags):
    return load_tool('test.py').main(
        [config, str(ckpt), '--work-dir', str(work_dir), *flags,
         *options(root)])


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    return write_bar_folder(tmp_path_factory.mktemp('data') / 'BAR')


@pytest.fixture(scope='module')
def occam_dir(tmp_path_factory, root):
    """An OccamResNet-18 work dir, 2 epochs, validated each epoch."""
    work_dir = tmp_path_factory.mktemp('occam')
    train(work_dir, root, 'train_cfg.val_interval=1')
    return work_dir


@pytest.fixture(scope='module')
def plain_dir(tmp_path_factory, root):
    """A plain ResNet-18 work dir, 1 epoch."""
    work_dir = tmp_path_factory.mktemp('plain')
    train(work_dir, root, 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
          *PLAIN_WIDTH, config=PLAIN_CFG)
    return work_dir


def set_best_score(ckpt_path, score):
    """Make the resumed run believe the best score so far is ``score``, so
    that its next validation surely saves a new best (and removes the
    previous one)."""
    ckpt = torch.load(ckpt_path, map_location='cpu', weights_only=True)
    ckpt['message_hub']['runtime_info']['best_score'] = score
    torch.save(ckpt, ckpt_path)


# --- 1. a copied or moved work dir resumes, the original keeps its files ---

@pytest.mark.slow
def test_resuming_a_copy_keeps_the_original_intact(occam_dir, root, tmp_path):
    best = [f for f in os.listdir(occam_dir) if f.startswith('best_')]
    assert best, os.listdir(occam_dir)
    before = digest(occam_dir)
    copy = tmp_path / 'copy'
    shutil.copytree(occam_dir, copy)
    set_best_score(copy / 'epoch_2.pth', -1.0)
    train(copy, root, 'train_cfg.max_epochs=3', 'train_cfg.val_interval=1',
          flags=['--resume', str(copy / 'epoch_2.pth')])
    assert digest(occam_dir) == before  # nothing of the original touched
    names = os.listdir(copy)
    assert 'epoch_3.pth' in names
    # the copy's own previous best was replaced by its new one
    assert [f for f in names if f.startswith('best_')] == [
        'best_accuracy_top1_epoch_3.pth']


@pytest.mark.slow
def test_a_moved_work_dir_resumes(occam_dir, root, tmp_path):
    first = tmp_path / 'first'
    shutil.copytree(occam_dir, first)
    moved = tmp_path / 'moved'
    shutil.move(first, moved)  # the paths the checkpoints name are gone
    set_best_score(moved / 'epoch_2.pth', -1.0)
    train(moved, root, 'train_cfg.max_epochs=3', 'train_cfg.val_interval=1',
          flags=['--resume'])
    assert osp.isfile(moved / 'epoch_3.pth')
    assert not osp.exists(first)


# --- 2. a new run never overwrites a used work dir --------------------------

@pytest.mark.slow
def test_new_run_into_a_used_work_dir_is_refused(occam_dir, root):
    before = digest(occam_dir)
    with pytest.raises(SystemExit) as err:
        train(occam_dir, root)
    assert 'already holds checkpoints' in str(err.value)
    assert 'epoch_1.pth' in str(err.value) and '--resume' in str(err.value)
    assert unchanged(before, occam_dir)


@pytest.mark.slow
def test_resume_from_an_earlier_checkpoint_does_not_overwrite_later_ones(
        occam_dir, root):
    before = digest(occam_dir)
    with pytest.raises(SystemExit) as err:
        train(occam_dir, root, flags=['--resume',
                                      str(occam_dir / 'epoch_1.pth')])
    assert 'later checkpoints' in str(err.value)
    assert 'epoch_2.pth' in str(err.value)
    assert unchanged(before, occam_dir)


@pytest.mark.slow
def test_testing_into_the_training_work_dir_keeps_its_config(
        occam_dir, root):
    before = digest(occam_dir)
    run_test(OCCAM_CFG, occam_dir / 'epoch_2.pth', occam_dir, root)
    after = digest(occam_dir)
    assert unchanged(before, occam_dir)
    # the test run's config went beside it, under its own name
    assert any(k.startswith('occam_resnet18_bar_') for k in after)


# --- 3. strict loading -----------------------------------------------------

@pytest.mark.slow
def test_checkpoint_of_another_model_is_refused_by_test(plain_dir, root,
                                                        tmp_path):
    with pytest.raises(SystemExit) as err:
        run_test(OCCAM_CFG, plain_dir / 'epoch_1.pth', tmp_path, root)
    message = str(err.value)
    assert 'epoch_1.pth' in message
    assert 'does not fit OccamClassifier' in message
    assert 'head.exits' in message or 'missing keys' in message
    assert '--non-strict' in message
    # the explicit flag loads what fits
    metrics = run_test(OCCAM_CFG, plain_dir / 'epoch_1.pth', tmp_path / 'ns',
                       root, '--non-strict')
    assert 'accuracy/top1' in metrics


@pytest.mark.slow
def test_checkpoint_of_another_width_is_refused(occam_dir, root, tmp_path):
    with pytest.raises(SystemExit) as err:
        load_tool('test.py').main(
            [OCCAM_CFG, str(occam_dir / 'epoch_2.pth'), '--work-dir',
             str(tmp_path), *options(root, 'model.backbone.base_channels=16',
                                     'model.backbone.stem_channels=16')])
    assert 'epoch_2.pth' in str(err.value)
    assert 'size mismatch' in str(err.value)


@pytest.mark.slow
def test_resume_with_a_checkpoint_of_another_width_names_it(occam_dir, root,
                                                            tmp_path):
    ckpt = tmp_path / 'other.pth'
    shutil.copy(occam_dir / 'epoch_2.pth', ckpt)
    with pytest.raises(SystemExit) as err:
        train(tmp_path / 'run', root, 'model.backbone.base_channels=16',
              'model.backbone.stem_channels=16', 'train_cfg.max_epochs=3',
              flags=['--resume', str(ckpt)])
    assert 'other.pth' in str(err.value) and 'size mismatch' in str(err.value)


# --- 4. the plain baselines have the guards too -----------------------------

@pytest.mark.slow
def test_plain_baseline_stops_on_a_non_finite_loss(root, tmp_path):
    with pytest.raises(FloatingPointError) as err:
        train(tmp_path, root, 'optim_wrapper.optimizer.lr=1e30',
              'train_cfg.max_epochs=2', *PLAIN_WIDTH, config=PLAIN_CFG)
    assert 'non-finite loss' in str(err.value)
    assert 'PlainClassifier' in str(err.value)
    assert not [f for f in os.listdir(tmp_path) if f.endswith('.pth')]


@pytest.mark.slow
def test_plain_baseline_checks_num_classes(root, tmp_path):
    with pytest.raises(ValueError) as err:
        train(tmp_path, root, 'model.head.num_classes=5', *PLAIN_WIDTH,
              config=PLAIN_CFG)
    assert 'model.head.num_classes is 5' in str(err.value)
    assert '6 classes' in str(err.value)


# --- 5. --resume with nothing to resume -------------------------------------

def test_resume_without_a_checkpoint_fails(root, tmp_path):
    (tmp_path / 'typo').mkdir()
    with pytest.raises(SystemExit) as err:
        train(tmp_path / 'typo', root, flags=['--resume'])
    assert 'holds no checkpoint' in str(err.value)
    assert str(tmp_path / 'typo') in str(err.value)
    assert not [f for f in os.listdir(tmp_path / 'typo')
                if f.endswith('.pth')]


# --- 6. truncated checkpoints and atomic saves ------------------------------

@pytest.mark.slow
def test_truncated_checkpoint_is_named(occam_dir, root, tmp_path):
    ckpt = tmp_path / 'epoch_2.pth'
    data = (occam_dir / 'epoch_2.pth').read_bytes()
    ckpt.write_bytes(data[:len(data) // 2])
    with pytest.raises(SystemExit) as err:
        run_test(OCCAM_CFG, ckpt, tmp_path / 'test', root)
    assert str(ckpt) in str(err.value) and 'truncated' in str(err.value)
    with pytest.raises(SystemExit) as err:
        train(tmp_path, root, 'train_cfg.max_epochs=3', flags=['--resume'])
    assert str(ckpt) in str(err.value) and 'truncated' in str(err.value)


@pytest.mark.slow
def test_a_failed_save_leaves_no_checkpoint_file(root, tmp_path, monkeypatch):
    """A full disk during the save of epoch 2: epoch_1.pth stays, no
    epoch_2.pth (not even a truncated one), no temporary file."""
    from mmengine.fileio.backends import LocalBackend
    put = LocalBackend.put

    def full_disk(self, obj, filepath):
        if 'epoch_2' in str(filepath):
            with open(filepath, 'wb') as f:
                f.write(obj[:100])
            raise OSError(28, 'No space left on device')
        return put(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', full_disk)
    with pytest.raises(SystemExit) as err:
        train(tmp_path, root)
    assert 'epoch_2.pth' in str(err.value)
    assert 'No space left' in str(err.value)
    assert sorted(os.listdir(tmp_path)) == sorted(
        n for n in os.listdir(tmp_path) if not n.startswith('.'))
    assert 'epoch_1.pth' in os.listdir(tmp_path)
    assert 'epoch_2.pth' not in os.listdir(tmp_path)
    assert latest_checkpoint(str(tmp_path)).endswith('epoch_1.pth')


def test_checkpoint_error_is_a_runtime_error():
    assert issubclass(CheckpointError, RuntimeError)


# --- fault injection: SIGKILL anywhere, resume, same weights -----------------

#: run tools/train.py, SIGKILL-ing this process before the global iteration
#: KILL_ITER, halfway through writing the checkpoint file whose name starts
#: with KILL_SAVE, or in the validation of epoch KILL_VAL_EPOCH; each kill
#: point fires once (a marker file says so)
KILLER = '''
import os, runpy, signal, sys
from mmengine.fileio.backends import LocalBackend
from mmengine.runner import EpochBasedTrainLoop, ValLoop

marker = os.environ['KILL_MARKER']
kill_iter = int(os.environ.get('KILL_ITER', -1))
kill_save = os.environ.get('KILL_SAVE')
kill_val_epoch = int(os.environ.get('KILL_VAL_EPOCH', -1))


def die():
    open(marker, 'w').close()
    os.kill(os.getpid(), signal.SIGKILL)


run_iter = EpochBasedTrainLoop.run_iter


def killing_run_iter(self, idx, data_batch):
    if self._iter == kill_iter and not os.path.exists(marker):
        die()
    return run_iter(self, idx, data_batch)


put = LocalBackend.put


def killing_put(self, obj, filepath):
    name = os.path.basename(str(filepath))
    if kill_save and name.startswith(kill_save) and \\
            not os.path.exists(marker):
        with open(filepath, 'wb') as f:
            f.write(obj[:len(obj) // 2])
            f.flush()
        die()
    return put(self, obj, filepath)


val_iter = ValLoop.run_iter


def killing_val_iter(self, idx, data_batch):
    if self.runner.epoch == kill_val_epoch and not os.path.exists(marker):
        die()
    return val_iter(self, idx, data_batch)


EpochBasedTrainLoop.run_iter = killing_run_iter
ValLoop.run_iter = killing_val_iter
LocalBackend.put = killing_put
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def save_points(per_epoch):
    """When each checkpoint save happens in a 2-epoch run of ``per_epoch``
    iterations an epoch (iterations are counted from 0; epoch ends save
    epoch_N, then the last validation saves the best and epoch_2 once
    more)."""
    return {'.epoch_1.pth': per_epoch + 0.5,
            '.epoch_2.pth': 2 * per_epoch + 0.5,
            '.best_': 2 * per_epoch + 0.7}


def kill_points(seed, per_epoch):
    """Two iterations and one checkpoint save, in the order they happen."""
    rng = random.Random(seed)
    points = [(i + (0.9 if i % per_epoch == 0 else 0), dict(KILL_ITER=str(i)))
              for i in rng.sample(range(1, 2 * per_epoch), 2)]
    saves = save_points(per_epoch)
    save = rng.choice(sorted(saves))
    points.append((saves[save], dict(KILL_SAVE=save)))
    return [kill for _, kill in sorted(points, key=lambda p: p[0])]


def killer_runner(tmp_path, cfg_options):
    """``run(work_dir, *flags, env=None)``: tools/train.py on the Occam
    config under the KILLER wrapper (which SIGKILLs it where ``env`` says),
    with ``cfg_options``; returns the finished process."""
    tool = osp.join(REPO, 'tools', 'train.py')
    killer = tmp_path / 'killer.py'
    killer.write_text(textwrap.dedent(KILLER))

    def run(work_dir, *flags, env=None):
        cmd = [PYTHON, str(killer), tool, OCCAM_CFG, '--work-dir',
               str(work_dir), *flags, *cfg_options]
        return subprocess.run(cmd, cwd=REPO, env={**os.environ, **(env or {})},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=600)
    return run


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_equals_uninterrupted(
        root, tmp_path):
    run = killer_runner(tmp_path, options(root, deterministic=True))

    reference = tmp_path / 'reference'
    proc = run(reference, env=dict(KILL_MARKER=str(tmp_path / 'none')))
    assert proc.returncode == 0, proc.stdout[-3000:]

    # the iterations of an epoch follow the tiny training set's size
    per_epoch = torch.load(reference / 'epoch_1.pth', map_location='cpu',
                           weights_only=True)['meta']['iter']
    kills = kill_points(seed=3, per_epoch=per_epoch)
    work_dir = tmp_path / 'killed'
    outcomes = []
    for n, kill in enumerate(kills + [{}]):
        kill['KILL_MARKER'] = str(tmp_path / f'killed_{n}')
        resume = ['--resume'] if latest_checkpoint(str(work_dir)) else []
        proc = run(work_dir, *resume, env=kill)
        outcomes.append(proc.returncode)
        if kill.keys() - {'KILL_MARKER'}:
            assert proc.returncode == -signal.SIGKILL, proc.stdout[-3000:]
            assert osp.exists(kill['KILL_MARKER'])
        else:
            assert proc.returncode == 0, proc.stdout[-3000:]
        # whatever happened, no truncated checkpoint is ever left under a
        # checkpoint name: every one of them loads
        for name in os.listdir(work_dir):
            if name.endswith('.pth'):
                torch.load(work_dir / name, map_location='cpu',
                           weights_only=True)
    full = torch.load(reference / 'epoch_2.pth', map_location='cpu',
                      weights_only=True)['state_dict']
    resumed = torch.load(work_dir / 'epoch_2.pth', map_location='cpu',
                         weights_only=True)['state_dict']
    assert full.keys() == resumed.keys()
    for key in GATE_STATE:
        assert key in full
    assert [k for k in full if not torch.equal(full[k], resumed[k])] == []


# === no run destroys another's files, no silent loss of state ====

from tests.helpers import read_logs  # noqa: E402

#: holds the work-dir lock as a training run does (fcntl.flock on
#: <work_dir>/.occam_lock with the holder's pid, host and start time)
LOCK_HOLDER = '''
import fcntl, json, os, socket, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, json.dumps(dict(pid=os.getpid(), host=socket.gethostname(),
                             since='2026-01-01T00:00:00')).encode())
print('held', flush=True)
time.sleep(600)
'''


def hold_lock(work_dir):
    """A process holding ``work_dir``'s lock (the caller kills it)."""
    os.makedirs(work_dir, exist_ok=True)
    proc = subprocess.Popen([PYTHON, '-c', LOCK_HOLDER,
                             str(work_dir / '.occam_lock')],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == 'held'
    return proc


@pytest.mark.slow
def test_a_second_run_into_a_busy_work_dir_stops_naming_the_holder(
        root, tmp_path):
    import socket
    work_dir = tmp_path / 'busy'
    holder = hold_lock(work_dir)
    try:
        with pytest.raises(SystemExit) as err:
            train(work_dir, root, 'train_cfg.max_epochs=1')
        message = str(err.value)
        assert f'pid {holder.pid}' in message
        assert socket.gethostname() in message
        assert 'since 2026-01-01T00:00:00' in message
        # stopped at once: no log folder, no config copy, no checkpoint
        assert os.listdir(work_dir) == ['.occam_lock']
    finally:
        holder.kill()
        holder.wait()
    # the holder died holding it (SIGKILL): the next run takes it over
    train(work_dir, root, 'train_cfg.max_epochs=1')
    assert osp.isfile(work_dir / 'epoch_1.pth')
    log = read_logs(work_dir)
    assert 'took it over' in log and f'pid {holder.pid}' in log
    assert not osp.exists(work_dir / '.occam_lock')  # released at the end


@pytest.mark.slow
def test_unfinished_saves_are_removed_only_when_their_writer_is_dead(
        root, tmp_path):
    work_dir = tmp_path / 'run'
    work_dir.mkdir()
    live = subprocess.Popen([PYTHON, '-c', 'import time; time.sleep(600)'])
    dead = subprocess.Popen([PYTHON, '-c', 'pass'])
    dead.wait()
    saving = f'.epoch_1.pth.partial-{live.pid}'
    abandoned = f'.epoch_1.pth.partial-{dead.pid}'
    (work_dir / saving).write_bytes(b'a save in progress')
    (work_dir / abandoned).write_bytes(b'an interrupted save')
    try:
        train(work_dir, root, 'train_cfg.max_epochs=1')
    finally:
        live.kill()
        live.wait()
    names = os.listdir(work_dir)
    assert saving in names and abandoned not in names
    assert 'epoch_1.pth' in names


@pytest.mark.slow
def test_resume_from_a_best_checkpoint_is_refused(occam_dir, root,
                                                  tmp_path):
    """A best_*.pth holds no optimizer state: resuming it would restart
    Adam without a word."""
    best = next(f for f in os.listdir(occam_dir) if f.startswith('best_'))
    new = tmp_path / 'new'
    new.mkdir()
    shutil.copy(occam_dir / best, new / best)
    before = digest(new)
    with pytest.raises(SystemExit) as err:
        train(new, root, 'train_cfg.max_epochs=3',
              flags=['--resume', str(new / best)])
    message = str(err.value)
    assert best in message and 'no optimizer' in message
    assert 'resume_without_optimizer=True' in message
    assert unchanged(before, new)


@pytest.mark.slow
def test_resume_without_optimizer_never_deletes_the_file_it_resumed(
        occam_dir, root, tmp_path, capfd):
    best = next(f for f in os.listdir(occam_dir) if f.startswith('best_'))
    new = tmp_path / 'new'
    new.mkdir()
    shutil.copy(occam_dir / best, new / best)
    set_best_score(new / best, -1.0)  # epoch 3 surely saves a new best
    source = digest(new)[best]
    train(new, root, 'train_cfg.max_epochs=3', 'train_cfg.val_interval=1',
          'default_hooks.work_dir_guard.resume_without_optimizer=True',
          flags=['--resume', str(new / best)])
    names = os.listdir(new)
    assert 'best_accuracy_top1_epoch_3.pth' in names
    assert digest(new)[best] == source  # kept, byte for byte
    assert 'optimizer restarts' in capfd.readouterr().out


@pytest.mark.slow
def test_resume_on_a_training_set_of_another_size_stops(occam_dir, root,
                                                        tmp_path, capfd):
    import re
    other = write_bar_folder(tmp_path / 'BAR', per_class=3)
    copy = tmp_path / 'copy'
    shutil.copytree(occam_dir, copy)
    rows = torch.load(copy / 'epoch_2.pth', weights_only=True)[
        'state_dict']['head.gate_loss.memory'].shape[0]
    before = digest(copy)
    with pytest.raises(SystemExit) as err:
        train(copy, other, 'train_cfg.max_epochs=3', flags=['--resume'])
    message = str(err.value)
    found = re.search(r'training set has (\d+) samples', message)
    assert found and int(found.group(1)) != rows, message
    assert f'{rows} samples' in message and 'head.gate_loss.memory' in message
    assert 'on_new_train_size=reinit' in message
    assert unchanged(before, copy)
    # on request: re-initialised, and said on the console
    capfd.readouterr()
    train(copy, other, 'train_cfg.max_epochs=3',
          'default_hooks.training_state.on_new_train_size=reinit',
          flags=['--resume'])
    assert 're-initialised' in capfd.readouterr().out
    memory = torch.load(copy / 'epoch_3.pth', weights_only=True)[
        'state_dict']['head.gate_loss.memory']
    assert memory.shape[0] == int(found.group(1))


def test_unknown_top_level_cfg_option_is_an_error(root, tmp_path):
    with pytest.raises(SystemExit) as err:
        train(tmp_path / 'run', root, 'randomnes.seed=5')
    assert "'randomnes'" in str(err.value)
    assert "did you mean 'randomness'" in str(err.value).lower()
    assert not osp.exists(tmp_path / 'run')


@pytest.mark.parametrize('option,meant', [
    ('default_hooks.checkpoint.max_keep_ckpt=1', 'max_keep_ckpts'),
    ('default_hooks.visualization.draw_scor=False', 'draw_score')])
def test_a_typo_in_hook_options_fails_before_training(option, meant, root,
                                                      tmp_path):
    """CheckpointHook and VisualizationHook take **kwargs that they pass on
    only at their first save / validation."""
    with pytest.raises(ValueError) as err:
        train(tmp_path / 'run', root, option)
    typo = option.split('.')[-1].split('=')[0]
    assert f"'{typo}'" in str(err.value) and f"'{meant}'" in str(err.value)
    assert not [f for f in os.listdir(tmp_path / 'run') if
                f.endswith('.pth')]


def test_only_rank_0_dumps_the_config(tmp_path, monkeypatch):
    """Under DDP every rank calls dump_config; only rank 0 may write."""
    from types import SimpleNamespace

    import mmengine.dist.utils as dist_utils
    from mmengine.config import Config

    from occam_plugin.engine.runner import SafeRunner
    cfg_file = tmp_path / 'tiny_cfg.py'
    cfg_file.write_text('a = 1\n')
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    (work_dir / 'tiny_cfg.py').write_text('a = 0\n')  # another run's
    runner = SimpleNamespace(cfg=Config.fromfile(str(cfg_file)),
                             work_dir=str(work_dir),
                             timestamp='20260101_000000')
    monkeypatch.setattr(dist_utils, 'get_rank', lambda group=None: 1)
    SafeRunner.dump_config(runner)
    assert os.listdir(work_dir) == ['tiny_cfg.py']
    monkeypatch.setattr(dist_utils, 'get_rank', lambda group=None: 0)
    SafeRunner.dump_config(runner)
    assert sorted(os.listdir(work_dir)) == ['tiny_cfg.py',
                                            'tiny_cfg_20260101_000000.py']


# --- SIGKILL during validation: that epoch is validated on resume ---------

@pytest.mark.slow
def test_sigkill_during_validation_then_resume_validates_that_epoch(
        root, tmp_path):
    run = killer_runner(tmp_path, options(root, 'train_cfg.val_interval=1',
                                          deterministic=True))

    reference = tmp_path / 'reference'
    proc = run(reference, env=dict(KILL_MARKER=str(tmp_path / 'none')))
    assert proc.returncode == 0, proc.stdout[-3000:]
    work_dir = tmp_path / 'killed'
    proc = run(work_dir, env=dict(KILL_MARKER=str(tmp_path / 'k'),
                                  KILL_VAL_EPOCH='1'))
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-3000:]
    assert osp.isfile(work_dir / 'epoch_1.pth')
    assert not [f for f in os.listdir(work_dir) if f.startswith('best_')]
    proc = run(work_dir, '--resume',
               env=dict(KILL_MARKER=str(tmp_path / 'k')))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert 'validating epoch 1 now' in proc.stdout  # on the console
    resumed_log = read_logs(work_dir).split('resumed epoch: 1')[-1]
    assert 'Epoch(val) [1]' in resumed_log
    # the best checkpoint and the weights are those of the run that was
    # never interrupted
    best = sorted(f for f in os.listdir(reference) if f.startswith('best_'))
    assert sorted(f for f in os.listdir(work_dir)
                  if f.startswith('best_')) == best
    full = torch.load(reference / 'epoch_2.pth', map_location='cpu',
                      weights_only=True)['state_dict']
    resumed = torch.load(work_dir / 'epoch_2.pth', map_location='cpu',
                         weights_only=True)['state_dict']
    assert [k for k in full if not torch.equal(full[k], resumed[k])] == []


# --- a crafted pickle global: refused by every loader ----------------------

class _Call:
    """Pickles as ``func(*args)``: what a crafted checkpoint makes an unsafe
    ``torch.load`` run."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


LOADERS = ('test', 'resume', 'load_from', 'init_occam_model',
           'OccamInferencer', 'vis_cam', 'publish_model')


@pytest.fixture(scope='module')
def crafted(occam_dir, tmp_path_factory):
    """A real checkpoint of occam_dir plus an object whose unpickling would
    create the file ``marker``."""
    folder = tmp_path_factory.mktemp('crafted')
    marker = folder / 'pwned'
    ckpt = torch.load(occam_dir / 'epoch_2.pth', map_location='cpu',
                      weights_only=True)
    ckpt['meta']['payload'] = _Call(open, str(marker), 'w')
    path = folder / 'epoch_2.pth'
    torch.save(ckpt, path)
    return path, marker


@pytest.mark.parametrize('loader', LOADERS)
def test_a_crafted_checkpoint_is_refused_by_every_loader(loader, crafted,
                                                         root, tmp_path):
    from mmengine.config import Config
    ckpt, marker = crafted
    tiny = {'model.backbone.stem_channels': 8,
            'model.backbone.base_channels': 8}
    with pytest.raises((SystemExit, CheckpointError)) as err:
        if loader == 'test':
            run_test(OCCAM_CFG, ckpt, tmp_path, root)
        elif loader == 'resume':
            train(tmp_path / 'run', root, 'train_cfg.max_epochs=3',
                  flags=['--resume', str(ckpt)])
        elif loader == 'load_from':
            train(tmp_path / 'run', root, f'load_from={ckpt}')
        elif loader in ('init_occam_model', 'OccamInferencer'):
            from occam_plugin.apis import OccamInferencer, init_occam_model
            cfg = Config.fromfile(OCCAM_CFG)
            cfg.merge_from_dict(tiny)
            if loader == 'init_occam_model':
                init_occam_model(cfg, str(ckpt))
            else:
                OccamInferencer(cfg, pretrained=str(ckpt))
        elif loader == 'vis_cam':
            image = osp.join(root, 'test', sorted(
                os.listdir(osp.join(root, 'test')))[0])
            load_tool('analysis/vis_cam.py').main([
                OCCAM_CFG, str(ckpt), '--images', image, '--out-dir',
                str(tmp_path / 'cams'), '--cfg-options',
                *[f'{k}={v}' for k, v in tiny.items()]])
        else:
            load_tool('publish_model.py').main(
                [OCCAM_CFG, str(ckpt), str(tmp_path / 'published')])
    message = str(err.value)
    assert str(ckpt) in message and 'weights-only allow-list' in message
    assert not marker.exists()  # nothing ran


# --- a runner built directly, resume past the end, log folders --

def tiny_runner(work_dir, max_epochs=1, **kwargs):
    """A SafeRunner built directly (no config file): the Occam model of
    test_occam_hook on its 10 in-memory 16 px images, batch 4."""
    from mmpretrain.datasets.transforms import PackInputs
    from occam_plugin.engine.runner import SafeRunner
    from tests.test_engine.test_occam_hook import TinySet, make_model_cfg
    return SafeRunner(
        model=make_model_cfg(2), work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=TinySet(pipeline=[PackInputs()]),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=kwargs.pop('batch_size', 4), num_workers=0),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=1)),
        default_scope='mmpretrain', randomness=dict(seed=0),
        log_level='WARNING', **kwargs)


def test_a_runner_built_with_resume_true_resumes(tmp_path):
    """SafeRunner(..., resume=True) resumes the latest epoch_N.pth, found by
    name, as --resume does (it was refused: "Resume it (--resume)")."""
    tiny_runner(tmp_path, max_epochs=1).train()
    first = digest(tmp_path)['epoch_1.pth']
    runner = tiny_runner(tmp_path, max_epochs=2, resume=True)
    runner.train()
    assert runner.resumed_from == str(tmp_path / 'epoch_1.pth')
    assert runner.epoch == 2 and osp.isfile(tmp_path / 'epoch_2.pth')
    assert digest(tmp_path)['epoch_1.pth'] == first
    with pytest.raises(CheckpointError, match='holds no checkpoint'):
        tiny_runner(tmp_path / 'empty', resume=True)


def test_resume_past_max_epochs_names_both_numbers(tmp_path):
    """--resume of an epoch-2 checkpoint with max_epochs=1 trained nothing
    and exited 0 without a word."""
    tiny_runner(tmp_path, max_epochs=2).train()
    before = digest(tmp_path)
    runner = tiny_runner(tmp_path, max_epochs=1, resume=True)
    with pytest.raises(CheckpointError) as err:
        runner.train()
    msg = str(err.value)
    assert 'epoch 2' in msg and 'train_cfg.max_epochs=1' in msg, msg
    assert 'train_cfg.max_epochs above 2' in msg
    unchanged(before, tmp_path)


def test_two_runs_started_in_one_second_get_their_own_log_folder(tmp_path):
    """Two tools/test.py into one --work-dir in the same second shared
    <timestamp>/ (one's metrics lost, the logs mixed): a run never takes a
    log folder that exists."""
    import time
    now = time.time()
    taken = {time.strftime('%Y%m%d_%H%M%S', time.localtime(now + d))
             for d in (-1, 0, 1)}
    for name in taken:
        os.makedirs(tmp_path / name)
    runner = tiny_runner(tmp_path)
    assert osp.basename(runner.log_dir) not in taken
    assert all(os.listdir(tmp_path / name) == [] for name in taken)
    assert osp.isdir(runner.log_dir)


def test_a_best_saved_after_the_resumed_checkpoint_stays_the_best(tmp_path):
    """Killed during the validation of epoch 2, resumed (the catch-up
    validation saved best_acc_epoch_2.pth, removing best_acc_epoch_1.pth,
    but may not rewrite epoch_2.pth), killed again in epoch 3: the next
    resume from epoch_2.pth read best_acc_epoch_1.pth / 0.5 from its hub, so
    a later 0.6 made a second best file and was chosen over epoch 2's 0.7."""
    from occam_plugin.engine.hooks.work_dir_guard_hook import WorkDirGuardHook
    run_id = 'r' * 32
    best2 = str(tmp_path / 'best_acc_epoch_2.pth')

    def ckpt(epoch, info, **extra):
        return dict(meta=dict(epoch=epoch, iter=3 * epoch,
                              occam_run_id=run_id),
                    state_dict={}, message_hub=dict(runtime_info=info),
                    **extra)

    torch.save(ckpt(2, dict(best_ckpt=best2, best_score=0.7)), best2)
    # another run's later-looking best is not adopted
    torch.save(dict(ckpt(1, dict(best_ckpt=str(tmp_path / 'best_acc_epoch_1'
                                               '.pth'), best_score=0.9)),
                    meta=dict(epoch=1, iter=3, occam_run_id='other')),
               tmp_path / 'best_acc_epoch_1.pth')
    resumed = ckpt(2, dict(best_ckpt='/gone/best_acc_epoch_1.pth',
                           best_score=0.5, last_ckpt='/gone/epoch_2.pth'),
                   optimizer={}, param_schedulers=[])
    torch.save(resumed, tmp_path / 'epoch_2.pth')
    runner = tiny_runner(tmp_path, max_epochs=3)
    runner.resumed_from = str(tmp_path / 'epoch_2.pth')
    hook = WorkDirGuardHook()
    hook.after_load_checkpoint(runner, resumed)
    info = resumed['message_hub']['runtime_info']
    assert info['best_ckpt'] == best2 and info['best_score'] == 0.7

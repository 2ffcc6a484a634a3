import os.path as osp
import uuid
from typing import Optional

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from mmpretrain.registry import HOOKS
from ..runner.checkpoint import CheckpointError
from ..runner.work_dir import (RESUMABLE, checkpoint_files, step_of,
                               sweep_partial_saves)

__all__ = ['WorkDirGuardHook']

#: message-hub keys of CheckpointHook that hold checkpoint paths
_PATH_KEYS = ('last_ckpt', 'best_ckpt')


def _is_path_key(key: str) -> bool:
    return key in _PATH_KEYS or key.startswith('best_ckpt_')


def _same_file(a: str, b: str) -> bool:
    try:
        return osp.samefile(a, b)
    except OSError:
        return False


def _read_light(path: str) -> dict:
    """A checkpoint without reading its tensors (mmap); {} if unreadable."""
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True,
                          mmap=True)
    except Exception:  # unreadable: not ours to use or remove
        return {}
    return ckpt if isinstance(ckpt, dict) else {}


def _run_id_of(path: str) -> Optional[str]:
    """The run id in a checkpoint's meta (tensors are not read: mmap)."""
    ckpt = _read_light(path)
    if not ckpt:
        return '<unreadable>'
    return (ckpt.get('meta') or {}).get(WorkDirGuardHook.META_KEY)


def _resuming_from(runner) -> Optional[str]:
    """The checkpoint the runner resumes from (absolute), or None: what
    ``SafeRunner.resume`` records however the runner was built (config or
    ``SafeRunner(..., resume=True)``), else the config's ``resume`` and
    ``load_from``."""
    source = getattr(runner, 'resumed_from', None)
    if source is None and runner.cfg.get('resume') and \
            runner.cfg.get('load_from'):
        source = str(runner.cfg.load_from)
    return None if source is None else osp.abspath(source)


@HOOKS.register_module()
class WorkDirGuardHook(Hook):
    """The work-dir and checkpoint-path rules of a training run.

    ``SafeRunner`` adds it to every run (``default_hooks.work_dir_guard``).

    - ``after_load_checkpoint``, when resuming (``cfg.resume``): refuses a
      checkpoint without optimizer state (a ``best_*.pth``, a published
      file: Adam's moments and the lr schedule would restart without a
      word) unless ``resume_without_optimizer=True``, which says so on the
      console; refuses a work dir holding checkpoints later than the one
      resumed from (the run would overwrite them); points the checkpoint
      paths of the message hub (``best_ckpt``, ``last_ckpt``) at this work
      dir (a copied or moved work dir), and drops those that name the file
      resumed from, a missing file, or a checkpoint of another run (its
      ``meta.occam_run_id`` differs), so that CheckpointHook only ever
      removes files this run wrote; the step resumed from is taken out of
      CheckpointHook's ``keep_ckpt_ids`` (``max_keep_ckpts`` never removes
      the resumed file).
    - ``before_train``: removes unfinished saves of dead writers
      (``.epoch_N.pth.partial-<pid>``; a live writer's is kept); a run that
      did not resume refuses a work dir that holds checkpoints.
    - ``before_save_checkpoint``: every checkpoint carries the run's id
      (``meta.occam_run_id``; a resumed run keeps the id it resumed).

    Args:
        resume_without_optimizer (bool): Resume from a checkpoint that holds
            no optimizer (or lr scheduler) state; the optimizer and the
            schedulers restart. Defaults to False (an error).
    """

    priority = 'VERY_HIGH'  # before CheckpointHook reads the message hub
    META_KEY = 'occam_run_id'

    def __init__(self, resume_without_optimizer: bool = False):
        self.resume_without_optimizer = resume_without_optimizer
        self.run_id: Optional[str] = None
        self._resumed_from: Optional[str] = None

    # -- resume ------------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        source = _resuming_from(runner)
        if source is None:
            return  # loading weights (test, load_from): no rules apply
        folder = runner.work_dir
        self._resumed_from = source
        meta = checkpoint.get('meta') or {}
        self._check_optimizer_state(runner, checkpoint, source)
        self._refuse_later_checkpoints(meta, source, folder)
        self.run_id = meta.get(self.META_KEY)
        hub = checkpoint.get('message_hub') or {}
        info = hub.get('runtime_info')
        if isinstance(info, dict):
            self._fix_hub_paths(runner, info, source, folder)
            self._adopt_later_best(runner, info, folder)
            self._keep_resumed_step(info, source, folder)

    def _check_optimizer_state(self, runner, checkpoint, source) -> None:
        lacking = [k for k in ('optimizer', 'param_schedulers')
                   if k not in checkpoint]
        if 'optimizer' not in lacking:
            return
        what = ' and '.join(lacking)
        if not self.resume_without_optimizer:
            raise CheckpointError(
                f'resume from {source!r}: the checkpoint holds no {what} '
                'state (a best_*.pth or a published checkpoint keeps the '
                'weights only), so the optimizer (Adam\'s moments) and the '
                'lr schedule would restart without a word. Resume from an '
                'epoch_N.pth; or start a new run from these weights '
                '(--cfg-options load_from=PATH, without --resume); or accept '
                'the restart with --cfg-options '
                'default_hooks.work_dir_guard.resume_without_optimizer=True.')
        runner.logger.warning(
            f'resume from {source!r}: the checkpoint holds no {what} state; '
            'the optimizer restarts from zero state (Adam\'s moments) and '
            'the lr schedulers from their start '
            '(resume_without_optimizer=True).')

    @staticmethod
    def _refuse_later_checkpoints(meta, source, folder) -> None:
        reached = dict(epoch=int(meta.get('epoch', 0)),
                       iter=int(meta.get('iter', 0)))
        later = [name for name in checkpoint_files(folder)
                 if step_of(name) is not None
                 and step_of(name)[1] > reached[step_of(name)[0]]]
        if later:
            raise CheckpointError(
                f'resume from {source!r} (epoch {reached["epoch"]}, '
                f'iter {reached["iter"]}): the work dir {folder!r} holds '
                f'later checkpoints ({", ".join(later)}) that this run would '
                'overwrite. Resume from the latest (--resume without a '
                'path), or copy the checkpoint into a new --work-dir and '
                'resume there.')

    def _fix_hub_paths(self, runner, info: dict, source, folder) -> None:
        for key in [k for k in info if _is_path_key(k)]:
            path = info[key]
            if not isinstance(path, str):
                continue
            here = osp.join(folder, osp.basename(path))
            reason = None
            if not osp.isfile(here):
                reason = 'it is not in this work dir'
            elif _same_file(here, source):
                reason = 'it is the checkpoint this run resumed from'
            elif self.run_id is not None and \
                    _run_id_of(here) != self.run_id:
                reason = 'another run wrote it'
            if reason is None:
                if here != path:
                    runner.logger.info(
                        f'{key}: {path} is outside this work dir; using '
                        f'{here} instead.')
                info[key] = here
            else:
                info[key] = None
                runner.logger.info(
                    f'{key}: {here} is not this run\'s to replace ({reason});'
                    ' it is kept.')

    def _adopt_later_best(self, runner, info: dict, folder: str) -> None:
        """A best checkpoint saved after the checkpoint resumed from (by the
        validation of its own epoch, which comes after its save: the
        catch-up validation of a resumed run, which may not rewrite the file
        it resumed from) is the best so far, though that checkpoint's
        message hub names an older one: its path and score replace the
        hub's. Else a second resume from the same file would keep two
        best_*.pth and choose by the stale score."""
        if self.run_id is None:
            return
        for name in checkpoint_files(folder):
            step = step_of(name)
            if not name.startswith('best_') or step is None:
                continue
            here = osp.join(folder, name)
            if _same_file(here, self._resumed_from or ''):
                continue  # the file resumed from is never replaced
            ckpt = _read_light(here)
            if (ckpt.get('meta') or {}).get(self.META_KEY) != self.run_id:
                continue
            own = (ckpt.get('message_hub') or {}).get('runtime_info') or {}
            for key, path in own.items():
                if not (_is_path_key(key) and isinstance(path, str)
                        and osp.basename(path) == name):
                    continue  # the hub key that names this best file
                score = key.replace('best_ckpt', 'best_score', 1)
                current = info.get(key)
                now = step_of(osp.basename(current)) if isinstance(
                    current, str) else None
                if score not in own or (now is not None and now[0] == step[0]
                                        and now[1] >= step[1]):
                    continue
                runner.logger.info(
                    f'{key}: {name} ({score} {own[score]}) was saved after '
                    'the checkpoint resumed from; it is the best so far.')
                info[key], info[score] = here, own[score]

    @staticmethod
    def _keep_resumed_step(info: dict, source, folder) -> None:
        ids = info.get('keep_ckpt_ids')
        match = RESUMABLE.match(osp.basename(source))
        if not ids or not match or osp.dirname(source) != folder:
            return
        info['keep_ckpt_ids'] = [i for i in ids if i != int(match.group(2))]

    # -- training ----------------------------------------------------------
    def before_train(self, runner) -> None:
        folder = runner.work_dir
        if is_main_process():
            removed, kept = sweep_partial_saves(folder)
            for name in removed:
                runner.logger.info(
                    f'removed {name}: an interrupted save (its writer '
                    'is no longer running).')
            for name in kept:
                runner.logger.warning(
                    f'kept {name}: its writer (pid {name.rsplit("-", 1)[1]})'
                    ' still runs on this host, so it may be a save in '
                    'progress.')
        if self._resumed_from is None:
            used = checkpoint_files(folder)
            if used:
                raise CheckpointError(
                    f'the work dir {folder!r} already holds checkpoints of '
                    f'another run ({", ".join(used[:6])}'
                    f'{", ..." if len(used) > 6 else ""}); a new run would '
                    'overwrite them. Resume it (--resume; resume=True for a '
                    'SafeRunner built in Python), or train into a '
                    'new --work-dir.')
        if self.run_id is None:
            self.run_id = uuid.uuid4().hex

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.run_id is None:
            self.run_id = uuid.uuid4().hex
        checkpoint.setdefault('meta', {})[self.META_KEY] = self.run_id

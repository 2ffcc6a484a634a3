"""An mmengine ``Runner`` that never loses a checkpoint or loads the wrong one.

mmengine's Runner (0.10) keeps absolute paths of the last and best
checkpoints in the message hub, so resuming a *copied* work dir deletes the
original's best checkpoint and a *moved* one fails; a new run into a used
work dir overwrites its ``epoch_N.pth``; ``--resume`` without a checkpoint
starts from scratch; weights load non-strictly (a checkpoint of another
model gives metrics of random weights); and a kill during a save leaves a
truncated ``epoch_N.pth``. :class:`SafeRunner` closes each of these.
"""
import logging
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import List, Optional, Tuple

from mmengine.dist import master_only
from mmengine.hooks import CheckpointHook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import (_load_checkpoint,
                                        _load_checkpoint_to_model)

from mmpretrain.registry import RUNNERS
from ...fileio import atomic_path
from ...models.utils.training_state import rank_local_buffers

#: ``epoch_3.pth`` / ``iter_100.pth``: checkpoints a run can resume from
_RESUMABLE = re.compile(r'^(epoch|iter)_(\d+)\.pth$')
#: any checkpoint name that carries its step (``best_acc_epoch_3.pth`` too)
_STEPPED = re.compile(r'(?:^|_)(epoch|iter)_(\d+)\.pth$')
#: the temporary name a checkpoint is written under before its rename
_PARTIAL = re.compile(r'^\..+\.pth\.partial-\d+$')
#: message-hub keys of CheckpointHook that hold checkpoint paths
_PATH_KEYS = re.compile(r'^(last_ckpt|best_ckpt(_.+)?)$')


def _not_mmengine_deprecation(record: logging.LogRecord) -> bool:
    """False for mmengine's own deprecation notices (its CheckpointHook
    builds a ``FileClient`` in every run), which a user cannot act on."""
    return 'will be deprecated in future' not in record.getMessage()


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded, or a work dir that would lose one.

    The message names the file or folder and says what to do.
    """


def checkpoint_files(folder: str) -> List[str]:
    """Names of the checkpoint files in ``folder`` (sorted).

    Checkpoints are ``*.pth`` files and mmengine's ``last_checkpoint`` note;
    temporary files of an interrupted save are not.
    """
    if not osp.isdir(folder):
        return []
    return sorted(
        name for name in os.listdir(folder)
        if osp.isfile(osp.join(folder, name))
        and (name.endswith('.pth') or name == 'last_checkpoint'))


def latest_checkpoint(folder: str) -> Optional[str]:
    """The resumable checkpoint of ``folder`` with the highest step.

    Found by name (``epoch_N.pth``, else ``iter_N.pth``), not from the
    ``last_checkpoint`` note, which mmengine writes with an absolute path
    (wrong in a copied or moved work dir) and after the checkpoint itself
    (stale if the run was killed in between). Returns None if there is none.
    """
    found = {}
    for name in checkpoint_files(folder):
        match = _RESUMABLE.match(name)
        if match:
            found[(match.group(1) == 'epoch', int(match.group(2)))] = name
    if not found:
        return None
    return osp.join(folder, found[max(found)])


def _step_of(name: str) -> Optional[Tuple[str, int]]:
    match = _STEPPED.search(name)
    return (match.group(1), int(match.group(2))) if match else None


@RUNNERS.register_module()
class SafeRunner(Runner):
    """mmengine's ``Runner`` with the checkpoint guarantees of occam-plugin.

    - **A used work dir is never overwritten.** ``train()`` without
      ``resume`` refuses a work dir that already holds checkpoints; with
      ``resume`` it refuses when the dir holds checkpoints *later* than the
      one resumed from (they would be overwritten as the run reaches them).
    - **A work dir can be copied or moved, then resumed.** Checkpoint paths
      that the message hub carries from the original folder are re-pointed
      to this run's folder (or dropped when the file is not there), so the
      checkpoint hook only ever removes files of its own folder.
    - **Auto-resume finds the latest checkpoint by its name** and fails
      when the work dir has none (a typo in ``--work-dir`` must not start a
      new run silently).
    - **Checkpoints are written atomically**: to a hidden temporary file,
      flushed to disk, then renamed; a kill or a full disk during a save
      leaves the previous checkpoints and no truncated ``epoch_N.pth``.
    - **Weights load strictly** (test, resume, ``load_from``): missing,
      unexpected or mis-shaped keys raise :class:`CheckpointError` listing
      them; ``strict_load=False`` in the config (``--non-strict`` in our
      tools) loads the matching keys only. A truncated or corrupt
      checkpoint is named in the error.
    - Every run gets :data:`PLUGIN_DEFAULT_HOOKS`, unless the config sets
      ``default_hooks.<name>=None``: ``guard`` (stops on non-finite losses
      and class-count mismatches, for every model) and ``training_state``
      (drives every module that declares ``TrainingState``: Occam gate
      memory, LfF EMAs, GroupDRO weights, ...).
    - **A quiet console** (config key ``console``, ``'quiet'`` by default,
      ``'verbose'`` for mmengine's full console; ``--verbose`` in our
      tools): the logger's console handler shows warnings and errors only,
      and ``ConsoleProgressHook`` (``default_hooks.console``) prints a
      progress line per epoch and the key metrics. The log file in
      ``<work_dir>/<timestamp>/`` keeps everything either way.
    - Under DDP, the buffers that modules declare rank-local are left out
      of DDP's buffer broadcast (``_ddp_params_and_buffers_to_ignore``).

    Use it with ``runner_type = 'SafeRunner'`` (``configs/_base_/
    default_runtime.py`` does; ``tools/train.py`` and ``tools/test.py`` use
    it for any config that names no runner). The config key
    ``strict_load`` (bool, default True) is read by :meth:`from_cfg`.
    """

    #: hooks added to every run; a config drops one with ``name=None``
    PLUGIN_DEFAULT_HOOKS = dict(
        guard=dict(type='TrainGuardHook'),
        training_state=dict(type='TrainingStateHook'),
        metrics_file=dict(type='MetricsFileHook'))

    #: the hook a quiet console adds (``default_hooks.console``)
    QUIET_CONSOLE_HOOKS = dict(console=dict(type='ConsoleProgressHook'))
    #: values of the config key ``console``
    CONSOLE_MODES = ('quiet', 'verbose')

    strict_load = True

    @property
    def console(self) -> str:
        """``'quiet'`` or ``'verbose'``: the config's ``console`` key."""
        mode = self.cfg.get('console', 'quiet')
        if mode not in self.CONSOLE_MODES:
            raise ValueError(f'console={mode!r}: expected one of '
                             f'{self.CONSOLE_MODES}.')
        return mode

    def build_logger(self, log_level='INFO', log_file=None, **kwargs):
        logger = super().build_logger(log_level, log_file, **kwargs)
        if self.console == 'quiet':
            # the console handler only (a FileHandler is a StreamHandler
            # too): the log file keeps every message
            for handler in logger.handlers:
                if type(handler) is logging.StreamHandler:
                    handler.setLevel(max(handler.level, logging.WARNING))
                    handler.addFilter(_not_mmengine_deprecation)
        return logger

    @classmethod
    def from_cfg(cls, cfg) -> 'SafeRunner':
        runner = super().from_cfg(cfg)
        runner.strict_load = bool(cfg.get('strict_load', True))
        return runner

    def register_default_hooks(self, hooks=None) -> None:
        merged = dict(self.PLUGIN_DEFAULT_HOOKS)
        if self.console == 'quiet':
            merged.update(self.QUIET_CONSOLE_HOOKS)
        merged.update(hooks or {})
        super().register_default_hooks(merged)

    def dump_config(self) -> None:
        """Dump the config to the work dir without replacing another run's:
        a different ``<config>.py`` already there (an earlier training run,
        or the training config when testing into the same folder) is kept,
        and this run's goes to ``<config>_<timestamp>.py``."""
        name = osp.basename(self.cfg.filename) if self.cfg.filename \
            else f'{self.timestamp}.py'
        path = osp.join(self.work_dir, name)
        text = self.cfg.pretty_text
        if osp.isfile(path):
            with open(path, encoding='utf-8') as f:
                if f.read() == text:
                    return
            stem, ext = osp.splitext(name)
            path = osp.join(self.work_dir, f'{stem}_{self.timestamp}{ext}')
            n = 1
            while osp.exists(path):  # two runs started in the same second
                n += 1
                path = osp.join(self.work_dir,
                                f'{stem}_{self.timestamp}_{n}{ext}')
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text)

    def wrap_model(self, model_wrapper_cfg, model):
        # DDP reads this attribute when it wraps the model: the declared
        # rank-local buffers (per-sample memories) must not be overwritten by
        # rank 0's copy each step; TrainingStateHook merges them instead
        ignore = set(getattr(model, '_ddp_params_and_buffers_to_ignore', ()))
        ignore.update(rank_local_buffers(model))
        if ignore:
            model._ddp_params_and_buffers_to_ignore = sorted(ignore)
        return super().wrap_model(model_wrapper_cfg, model)

    # -- where checkpoints go -------------------------------------------
    def checkpoint_dir(self) -> str:
        """The folder the checkpoint hook writes to (as CheckpointHook
        computes it: ``out_dir/<work dir name>`` when ``out_dir`` is set)."""
        for hook in self.hooks:
            if isinstance(hook, CheckpointHook) and hook.out_dir is not None:
                if osp.abspath(hook.out_dir) == self.work_dir:
                    return self.work_dir
                return osp.join(
                    osp.abspath(hook.out_dir),
                    osp.basename(self.work_dir.rstrip(osp.sep)))
        return self.work_dir

    # -- training ----------------------------------------------------------
    def train(self):
        folder = self.checkpoint_dir()
        self._remove_partial_saves(folder)
        if self._resume and self._load_from is None:
            latest = latest_checkpoint(folder)
            if latest is None:
                raise CheckpointError(
                    f'resume: the work dir {folder!r} holds no checkpoint '
                    '(epoch_N.pth / iter_N.pth) to resume from. Check '
                    '--work-dir, give the checkpoint path (--resume '
                    'PATH), or start a new run without --resume.')
            self._load_from = latest
        elif not self._resume:
            used = checkpoint_files(folder)
            if used:
                raise CheckpointError(
                    f'the work dir {folder!r} already holds checkpoints of '
                    f'another run ({", ".join(used[:6])}'
                    f'{", ..." if len(used) > 6 else ""}); a new run would '
                    'overwrite them. Resume it (--resume), or train into a '
                    'new --work-dir.')
        return super().train()

    def load_or_resume(self) -> None:
        resuming = self._resume and not self._has_loaded
        super().load_or_resume()
        if resuming and self._load_from is not None:
            folder = self.checkpoint_dir()
            self._refuse_later_checkpoints(folder)
            self._repoint_checkpoint_paths(folder)

    def _refuse_later_checkpoints(self, folder: str) -> None:
        reached = dict(epoch=self.train_loop.epoch, iter=self.train_loop.iter)
        later = [name for name in checkpoint_files(folder)
                 if _step_of(name) is not None
                 and _step_of(name)[1] > reached[_step_of(name)[0]]]
        if later:
            raise CheckpointError(
                f'resume from {self._load_from!r} (epoch {reached["epoch"]}, '
                f'iter {reached["iter"]}): the work dir {folder!r} holds later '
                f'checkpoints ({", ".join(later)}) that this run would '
                'overwrite. Resume from the latest (--resume without a '
                'path), or copy the checkpoint into a new --work-dir and '
                'resume there.')

    def _repoint_checkpoint_paths(self, folder: str) -> None:
        """Message-hub checkpoint paths of another folder (the work dir was
        copied or moved) name the same file in ``folder``, or nothing."""
        info = self.message_hub.runtime_info
        for key in [k for k in info if _PATH_KEYS.match(k)]:
            path = info[key]
            if not isinstance(path, str) or \
                    osp.dirname(osp.abspath(path)) == folder:
                continue
            here = osp.join(folder, osp.basename(path))
            self.message_hub.update_info(
                key, here if osp.isfile(here) else None)
            self.logger.info(
                f'{key}: {path} is outside this work dir; using '
                f'{here if osp.isfile(here) else None} instead.')

    def _remove_partial_saves(self, folder: str) -> None:
        # an interrupted save (kill, full disk) was never a checkpoint
        for name in os.listdir(folder) if osp.isdir(folder) else []:
            if _PARTIAL.match(name):
                os.remove(osp.join(folder, name))
                self.logger.info(f'removed {name}: an interrupted save.')

    # -- saving ------------------------------------------------------------
    @master_only
    def save_checkpoint(self, out_dir: str, filename: str, *args,
                        **kwargs) -> None:
        if '://' in out_dir:  # remote backends: as mmengine does
            return super().save_checkpoint(out_dir, filename, *args,
                                           **kwargs)
        # hidden, so _PARTIAL finds it and no checkpoint listing shows it
        partial = f'.{filename}.partial-{os.getpid()}'
        path = osp.join(out_dir, filename)
        try:
            with atomic_path(path, osp.join(out_dir, partial), fsync=True):
                super().save_checkpoint(out_dir, partial, *args, **kwargs)
        except OSError as err:
            raise CheckpointError(
                f'could not write checkpoint {path!r}: {err}. Earlier '
                'checkpoints are intact.') from err

    # -- loading -----------------------------------------------------------
    def load_checkpoint(self,
                        filename: str,
                        map_location='cpu',
                        strict: Optional[bool] = None,
                        revise_keys: list = [(r'^module\.', '')]):
        """Load ``filename`` into the model; strict unless ``strict=False``
        or the config's ``strict_load=False``."""
        strict = self.strict_load if strict is None else strict
        checkpoint = read_checkpoint(filename, map_location)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) \
            else self.model
        if strict:
            load_state_strictly(model, checkpoint, filename, revise_keys)
        else:
            _load_checkpoint_to_model(model, checkpoint, False,
                                      revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename} '
                         f'({"strict" if strict else "non-strict"})')
        return checkpoint

    def resume(self, filename: str, *args, **kwargs) -> None:
        try:
            super().resume(filename, *args, **kwargs)
        except CheckpointError:
            raise
        except (KeyError, ValueError, RuntimeError, IndexError) as err:
            raise CheckpointError(
                f'cannot resume from {filename!r}: its optimizer, scheduler '
                f'or meta state does not fit this run ({type(err).__name__}:'
                f' {err}). Was it written by another config?') from err


def build_runner(cfg) -> Runner:
    """The runner a config names (``runner_type``), else :class:`SafeRunner`
    (our tools give every config the checkpoint guarantees)."""
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return SafeRunner.from_cfg(cfg)


def read_checkpoint(filename: str, map_location='cpu') -> dict:
    """``torch.load(weights_only=True)`` of a checkpoint, with errors that
    name the file (missing, truncated, corrupt, not a dict)."""
    try:
        checkpoint = _load_checkpoint(filename, map_location=map_location)
    except FileNotFoundError as err:
        raise CheckpointError(
            f'checkpoint {filename!r} does not exist.') from err
    except Exception as err:
        first = str(err).splitlines()[0] if str(err) else ''
        raise CheckpointError(
            f'checkpoint {filename!r} cannot be read: it is truncated, '
            f'corrupt or not a checkpoint ({type(err).__name__}: {first}). '
            'Use another checkpoint.') from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f'checkpoint {filename!r} holds a {type(checkpoint).__name__}, '
            'expected a dict with a state_dict.')
    return checkpoint


#: how a user of the tools loads a checkpoint partially, on purpose
TOOLS_PARTIAL_HINT = ('pass --non-strict (or set strict_load=False) to load '
                      'the matching keys only.')


def load_state_strictly(model, checkpoint: dict, filename: str,
                        revise_keys: list = [(r'^module\.', '')],
                        partial_hint: str = TOOLS_PARTIAL_HINT) -> None:
    """``model.load_state_dict`` that lists every key that does not fit.

    Raises :class:`CheckpointError` naming ``filename`` and the missing,
    unexpected or mis-shaped keys; the message ends with ``partial_hint``
    (how the caller's user loads partially on purpose).
    """
    state_dict = checkpoint.get('state_dict', checkpoint)
    metadata = getattr(state_dict, '_metadata', OrderedDict())
    for pattern, repl in revise_keys:
        state_dict = OrderedDict(
            (re.sub(pattern, repl, k), v) for k, v in state_dict.items())
    state_dict._metadata = metadata
    hint = f' It was written for another model or config; {partial_hint}'
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as err:  # torch raises on mis-shaped tensors
        raise CheckpointError(
            f'checkpoint {filename!r} does not fit '
            f'{type(model).__name__}: {err}.{hint}') from err
    # checkpoints of old torch versions lack BN's num_batches_tracked
    missing = [k for k in result.missing_keys
               if not k.endswith('num_batches_tracked')]
    unexpected = list(result.unexpected_keys)
    if missing or unexpected:
        def listed(keys):
            return (f'{len(keys)} ({", ".join(keys[:8])}'
                    f'{", ..." if len(keys) > 8 else ""})')
        raise CheckpointError(
            f'checkpoint {filename!r} does not fit {type(model).__name__}: '
            f'missing keys {listed(missing)}; unexpected keys '
            f'{listed(unexpected)}.{hint}')

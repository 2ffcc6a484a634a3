"""An mmengine ``Runner`` that never loses a checkpoint or loads the wrong one.

mmengine's Runner (0.10) keeps absolute paths of the last and best
checkpoints in the message hub, so resuming a *copied* work dir deletes the
original's best checkpoint and a *moved* one fails; a new run into a used
work dir overwrites its ``epoch_N.pth``; ``--resume`` without a checkpoint
starts from scratch; weights load non-strictly (a checkpoint of another
model gives metrics of random weights); and a kill during a save leaves a
truncated ``epoch_N.pth``. :class:`SafeRunner` closes each of these.
"""
import copy
import inspect
import logging
import os
import os.path as osp
import time
from typing import FrozenSet, Optional

from mmengine.dist import broadcast_object_list, is_main_process, master_only
from mmengine.hooks import CheckpointHook
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.runner import Runner

from mmpretrain.engine.hooks import VisualizationHook
from mmpretrain.registry import RUNNERS
from mmpretrain.utils import get_ori_model
from ...fileio import atomic_path, drop_symlink, write_text
from ...models.utils.ddp_ignore import ignore_rank_local_buffers
from .checkpoint import (CheckpointError, load_state_partially,
                         load_state_strictly, read_checkpoint)
from .work_dir import latest_checkpoint
from .work_dir_lock import hold_work_dir

__all__ = [
    'SafeRunner', 'ddp_wrapper_cfg', 'no_singleton_batches', 'build_runner'
]


def _not_mmengine_deprecation(record: logging.LogRecord) -> bool:
    """False for mmengine's own deprecation notices (its CheckpointHook
    builds a ``FileClient`` in every run), which a user cannot act on."""
    return 'will be deprecated in future' not in record.getMessage()


#: config keys mmengine's Runner reads besides its constructor's arguments
_RUNNER_READS = ('model_wrapper_cfg', 'find_unused_parameters', 'sync_bn',
                 'activation_checkpointing', 'efficient_conv_bn_eval',
                 'compile', 'runner_type', 'custom_imports', 'gpu_ids',
                 '_base_')
#: what CheckpointHook passes to ``Runner.save_checkpoint`` itself (its
#: ``**kwargs`` may name the other arguments only)
_HOOK_PASSES = ('out_dir', 'filename', 'file_client_args', 'save_optimizer',
                'save_param_scheduler', 'meta', 'by_epoch', 'backend_args')


def _named_params(func) -> FrozenSet[str]:
    return frozenset(
        name for name, p in inspect.signature(func).parameters.items()
        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        and name != 'self')


def _accepts_any_keyword(func) -> bool:
    return any(p.kind is p.VAR_KEYWORD
               for p in inspect.signature(func).parameters.values())


@RUNNERS.register_module()
class SafeRunner(Runner):
    """mmengine's ``Runner`` with the checkpoint guarantees of occam-plugin.

    What mmengine offers an extension point for lives in the hooks of
    :data:`PLUGIN_DEFAULT_HOOKS`, added to every run (a config drops one
    with ``default_hooks.<name>=None``); this class keeps only what has
    none: one training run per work dir (an advisory lock on
    ``<work_dir>/.occam_lock``), auto-resume from the latest checkpoint by
    name, a log folder per run, no write through a symlink in the work
    dir, atomic checkpoint saves, checkpoints read with
    ``weights_only=True`` and loaded strictly, hook options checked when
    the runner is built, the quiet console, and DDP's buffer broadcast
    without the buffers that modules declare rank-local. The guarantees
    one by one: README, "Resume, and what happens to your checkpoints".

    Use it with ``runner_type = 'SafeRunner'`` (``configs/_base_/
    default_runtime.py`` does; ``tools/train.py`` and ``tools/test.py`` use
    it for any config that names no runner).

    Args:
        *args: The arguments of :class:`mmengine.runner.Runner`.
        **kwargs: Its keyword arguments.

    Note:
        Two config keys beyond mmengine's, read by :meth:`from_cfg`:
        ``strict_load`` (default True: missing, unexpected or mis-shaped
        keys raise :class:`CheckpointError`; False loads the matching keys
        only, ``--non-strict`` in our tools) and ``console`` (``'quiet'``,
        the default: warnings, errors and ``ConsoleProgressHook``'s line
        per epoch, the log file keeping everything; ``'verbose'``:
        mmengine's console).
    """

    #: hooks added to every run; a config drops one with ``name=None``
    PLUGIN_DEFAULT_HOOKS = dict(
        guard=dict(type='TrainGuardHook'),
        training_state=dict(type='TrainingStateHook'),
        metrics_file=dict(type='MetricsFileHook'),
        work_dir_guard=dict(type='WorkDirGuardHook'),
        pending_validation=dict(type='PendingValidationHook'))

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

    def __init__(self, *args, **kwargs):
        """As mmengine's ``Runner``. Built directly (not by :meth:`from_cfg`)
        it keeps the same guarantees: ``resume=True`` without ``load_from``
        resumes from the latest ``epoch_N.pth`` of the work dir, found by
        name (not from mmengine's ``last_checkpoint`` note), the train
        dataloader gets :func:`no_singleton_batches`, and a dataloader
        without worker processes no ``persistent_workers``, as in
        ``tools/train.py`` (mmpretrain's tools build it so)."""
        params = inspect.signature(Runner.__init__).bind(
            self, *args, **kwargs).arguments
        params.pop('self')
        if params.get('resume') and params.get('load_from') is None:
            params['load_from'] = _latest_or_fail(params['work_dir'])
        for name in ('train_dataloader', 'val_dataloader',
                     'test_dataloader'):
            loader = params.get(name)
            if isinstance(loader, dict) and \
                    not loader.get('num_workers', 0) and \
                    loader.get('persistent_workers'):
                # torch refuses persistent workers without workers
                params[name] = loader = copy.copy(loader)
                loader['persistent_workers'] = False
        if isinstance(params.get('train_dataloader'), dict):
            params['train_dataloader'] = no_singleton_batches(
                params['train_dataloader'])
        #: the checkpoint this run resumed from (absolute), set by
        #: :meth:`resume`; None when it did not resume
        self.resumed_from: Optional[str] = None
        super().__init__(**params)

    @classmethod
    def from_cfg(cls, cfg) -> 'SafeRunner':
        """As mmengine's, plus: ``resume=True`` without ``load_from`` resumes
        from the latest ``epoch_N.pth`` of the work dir, found by name (a
        :class:`CheckpointError` when there is none), and ``strict_load``."""
        cfg = copy.deepcopy(cfg)
        if cfg.get('resume') and cfg.get('load_from') is None:
            cfg.load_from = _latest_or_fail(cfg['work_dir'])
        runner = super().from_cfg(cfg)
        runner.strict_load = bool(cfg.get('strict_load', True))
        return runner

    def setup_env(self, env_cfg) -> None:
        """As mmengine's, and this run's log folder ``<work_dir>/
        <timestamp>/`` is its own: two runs started in the same second
        (two ``tools/test.py`` into one work dir) would share it, mixing
        their logs and one's metrics files replacing the other's. Rank 0
        creates the folder; if another run has, the timestamp is taken
        again in the next second."""
        while True:
            super().setup_env(env_cfg)
            claimed = [None]
            if is_main_process():
                try:
                    os.makedirs(self.work_dir, exist_ok=True)
                    os.mkdir(osp.join(self.work_dir, self.timestamp))
                    claimed = [True]
                except FileExistsError:
                    claimed = [False]
            if self.world_size > 1:
                broadcast_object_list(claimed)
            if claimed[0]:
                return
            time.sleep(1.05 - time.time() % 1)  # into the next second

    @classmethod
    def known_config_keys(cls) -> FrozenSet[str]:
        """Top-level config keys a run reads: the Runner's constructor
        arguments, what mmengine's Runner reads from its config, and
        SafeRunner's own (``strict_load``, ``console``)."""
        return (_named_params(Runner.__init__) | frozenset(_RUNNER_READS)
                | frozenset(cls.CONFIG_KEYS)) - {'cfg'}

    #: SafeRunner's own config keys
    CONFIG_KEYS = ('strict_load', 'console')

    def register_default_hooks(self, hooks=None) -> None:
        merged = dict(self.PLUGIN_DEFAULT_HOOKS)
        if self.console == 'quiet':
            merged.update(self.QUIET_CONSOLE_HOOKS)
        for name, hook in (hooks or {}).items():
            # options of a plugin hook without its type
            # (default_hooks.training_state.on_new_train_size=reinit)
            # complete the plugin's default
            if isinstance(hook, dict) and 'type' not in hook and \
                    isinstance(merged.get(name), dict):
                hook = {**merged[name], **hook}
            merged[name] = hook
        super().register_default_hooks(merged)

    def register_hooks(self, default_hooks=None, custom_hooks=None) -> None:
        """As mmengine's, then check the hooks' options: a hook that takes
        ``**kwargs`` (CheckpointHook passes them to ``save_checkpoint``)
        must not fail on a typo only at its first save."""
        super().register_hooks(default_hooks, custom_hooks)
        for hook in self.hooks:
            if isinstance(hook, CheckpointHook):
                self._check_checkpoint_hook(hook)
            elif isinstance(hook, VisualizationHook):
                self._check_visualization_hook(hook)

    def _check_visualization_hook(self, hook) -> None:
        # mmpretrain's VisualizationHook passes its **kwargs to the
        # visualizer's visualize_cls at the first validation
        draw = getattr(type(self.visualizer), 'visualize_cls', None)
        if draw is None or _accepts_any_keyword(draw):
            return
        extra = _named_params(draw) - {'image', 'data_sample', 'step', 'name'}
        unknown = sorted(set(hook.draw_args) - extra)
        if unknown:
            import difflib
            known = sorted(_named_params(type(hook).__init__) | extra)
            hint = '; '.join(
                f'did you mean {h[0]!r} for {k!r}?' for k in unknown
                for h in [difflib.get_close_matches(k, known, n=1)] if h)
            raise ValueError(
                f'{type(hook).__name__} (default_hooks.visualization or '
                f'custom_hooks): unknown option(s) {unknown}. It takes '
                f'{", ".join(known)}. {hint}'.rstrip())

    def _check_checkpoint_hook(self, hook: CheckpointHook) -> None:
        save = Runner.save_checkpoint
        for klass in type(self).__mro__:  # the first without **kwargs
            func = klass.__dict__.get('save_checkpoint')
            if func is not None and not _accepts_any_keyword(
                    getattr(func, '__wrapped__', func)):
                save = getattr(func, '__wrapped__', func)
                break
        extra = _named_params(save) - set(_HOOK_PASSES)
        unknown = sorted(set(hook.args) - extra)
        if unknown:
            import difflib
            known = sorted(_named_params(type(hook).__init__) | extra)
            hints = {k: difflib.get_close_matches(k, known, n=1)
                     for k in unknown}
            hint = '; '.join(f'did you mean {h[0]!r} for {k!r}?'
                             for k, h in hints.items() if h)
            raise ValueError(
                f'{type(hook).__name__} (default_hooks.checkpoint or '
                f'custom_hooks): unknown option(s) {unknown}. It takes '
                f'{", ".join(known)}. {hint}'.rstrip())
        if hook.out_dir is not None and \
                osp.abspath(str(hook.out_dir)) != self.work_dir:
            raise CheckpointError(
                f'{type(hook).__name__}: out_dir={str(hook.out_dir)!r} is '
                'not supported by SafeRunner, which keeps checkpoints in the '
                f'work dir ({self.work_dir}), where its lock and its '
                'no-overwrite rules apply. Set --work-dir (work_dir) to the '
                'folder instead.')

    @master_only
    def dump_config(self) -> None:
        """Dump the config to the work dir without replacing another run's:
        a different ``<config>.py`` already there (an earlier training run,
        or the training config when testing into the same folder) is kept,
        and this run's goes to ``<config>_<timestamp>.py``. Rank 0 only."""
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
            while osp.lexists(path):  # two runs started in the same second
                n += 1
                path = osp.join(self.work_dir,
                                f'{stem}_{self.timestamp}_{n}{ext}')
        write_text(path, text)  # never through a link planted at the name

    def wrap_model(self, model_wrapper_cfg, model):
        # DDP must not overwrite the declared rank-local buffers (per-sample
        # memories) with rank 0's copy; TrainingStateHook merges them instead
        ignore_rank_local_buffers(model)
        if self.distributed and not is_model_wrapper(model):
            model_wrapper_cfg = ddp_wrapper_cfg(
                model_wrapper_cfg,
                self.cfg.get('find_unused_parameters', False))
        return super().wrap_model(model_wrapper_cfg, model)

    # -- training ----------------------------------------------------------
    def train(self):
        """mmengine's ``train`` holding the work dir's lock (rank 0): a
        second run into this work dir stops at once, naming this one."""
        if not is_main_process():
            return super().train()
        with hold_work_dir(self.work_dir) as lock:
            note = lock.note()
            if note and not getattr(lock, 'noted', False):
                lock.noted = True
                self.logger.warning(note)
            return super().train()

    # -- saving ------------------------------------------------------------
    @master_only
    def save_checkpoint(self, out_dir: str, filename: str, *args,
                        **kwargs) -> None:
        if '://' in out_dir:  # remote backends: as mmengine does
            return super().save_checkpoint(out_dir, filename, *args,
                                           **kwargs)
        # hidden, so work_dir.PARTIAL finds it and no listing shows it
        partial = f'.{filename}.partial-{os.getpid()}'
        path = osp.join(out_dir, filename)
        source = self.resumed_from
        if source and osp.isfile(path) and osp.isfile(source) and \
                osp.samefile(path, source):
            raise CheckpointError(
                f'this run would overwrite {path!r}, the checkpoint it '
                'resumed from; it is kept. Resume from a copy of it under '
                'another name (or in another --work-dir).')
        try:
            with atomic_path(path, osp.join(out_dir, partial), fsync=True):
                super().save_checkpoint(out_dir, partial, *args, **kwargs)
        except OSError as err:
            raise CheckpointError(
                f'could not write checkpoint {path!r}: {err} Earlier '
                'checkpoints are intact.') from err
        # mmengine's CheckpointHook writes <work_dir>/last_checkpoint next,
        # with open(..., 'w'): a symlink planted there would have its target
        # overwritten, so the link goes and the note is a file of its own
        note = osp.join(self.work_dir, 'last_checkpoint')
        if drop_symlink(note):
            self.logger.warning(
                f'{note} was a symbolic link; it is replaced by a file (the '
                'file it pointed to is left as it was).')

    # -- loading -----------------------------------------------------------
    def load_checkpoint(self,
                        filename: str,
                        map_location='cpu',
                        strict: Optional[bool] = None,
                        revise_keys: list = [(r'^module\.', '')]):
        """Load ``filename`` into the model: read with
        ``torch.load(weights_only=True)`` (:func:`read_checkpoint`), loaded
        strictly unless ``strict=False`` or the config's
        ``strict_load=False``. mmengine's ``resume`` and ``load_or_resume``
        call it."""
        strict = self.strict_load if strict is None else strict
        checkpoint = read_checkpoint(filename, map_location)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = get_ori_model(self.model)
        if strict:
            load_state_strictly(model, checkpoint, filename, revise_keys)
        else:
            load_state_partially(model, checkpoint, revise_keys, self.logger)
        self.logger.info(f'Load checkpoint from {filename} '
                         f'({"strict" if strict else "non-strict"})')
        return checkpoint

    def resume(self, filename: str, *args, **kwargs) -> None:
        """mmengine's ``resume``, recording the file (:attr:`resumed_from`,
        which the work-dir rules read however the runner was built), and
        refusing a checkpoint past the end of this run's training (it would
        end at once, training nothing, without a word)."""
        self.resumed_from = osp.abspath(str(filename))
        try:
            super().resume(filename, *args, **kwargs)
        except CheckpointError:
            raise
        except (KeyError, ValueError, RuntimeError, IndexError) as err:
            raise CheckpointError(
                f'cannot resume from {filename!r}: its optimizer, scheduler '
                f'or meta state does not fit this run ({type(err).__name__}:'
                f' {err}). Was it written by another config?') from err
        self._check_left_to_train(filename)

    def _check_left_to_train(self, filename: str) -> None:
        loop = self.train_loop
        for step, key in (('epoch', 'max_epochs'), ('iter', 'max_iters')):
            end = getattr(loop, key, None)
            if not isinstance(end, int):
                continue
            reached = getattr(self, step)
            if reached > end:
                raise CheckpointError(
                    f'resume from {filename!r}: the checkpoint is at {step} '
                    f'{reached}, past train_cfg.{key}={end}: there is '
                    f'nothing left to train. To train on, set train_cfg.'
                    f'{key} above {reached} (--cfg-options train_cfg.{key}='
                    '<n>); to evaluate it, use tools/test.py.')
            if reached == end:
                self.logger.warning(
                    f'resume from {filename!r}: the checkpoint is at {step} '
                    f'{reached} = train_cfg.{key}: training has ended; only '
                    'a validation that was cut off is run.')
            return


# mmpretrain's own tools/train.py and tools/test.py build `runner_type` with
# mmengine's root RUNNERS and no default scope set: it must be found there
# too (mmpretrain's RUNNERS, a child of the root, holds it already)
if MMENGINE_RUNNERS.get('SafeRunner') is None:
    MMENGINE_RUNNERS.register_module(module=SafeRunner)


def ddp_wrapper_cfg(model_wrapper_cfg: Optional[dict],
                    find_unused_parameters: bool = False) -> dict:
    """``model_wrapper_cfg`` in the words of the installed torch's DDP.

    mmengine 0.10 passes DDP ``broadcast_buffers=False`` (its default wrapper
    when the config has no ``model_wrapper_cfg``, and ours on CPU), which
    torch >= 2.14 deprecates with a ``FutureWarning`` on every rank. Where
    DDP takes ``forward_sync_buffers``, it replaces ``broadcast_buffers``
    (same value): buffers are then synced from rank 0 once when DDP wraps
    the model (all ranks built it alike) and, as before, not at each
    forward when False. The rank-local buffers stay out of both syncs (DDP's
    ignore list, :func:`ignore_rank_local_buffers`).

    Args:
        model_wrapper_cfg (dict, optional): The config's
            ``model_wrapper_cfg``; None: mmengine's default wrapper
            (``MMDistributedDataParallel``, ``broadcast_buffers=False``).
        find_unused_parameters (bool): The config's key of that name, which
            mmengine's default wrapper reads. Defaults to False.

    Returns:
        dict: A new config for ``Runner.wrap_model`` (not the one given).
    """
    from mmengine.registry import MODEL_WRAPPERS
    from torch.nn.parallel import DistributedDataParallel as DDP
    if model_wrapper_cfg is None:
        cfg = dict(type='MMDistributedDataParallel', broadcast_buffers=False,
                   find_unused_parameters=find_unused_parameters)
    else:
        cfg = copy.deepcopy(dict(model_wrapper_cfg))
    wrapper = cfg.get('type', 'MMDistributedDataParallel')
    if isinstance(wrapper, str):
        wrapper = MODEL_WRAPPERS.get(wrapper)
    if (isinstance(wrapper, type) and issubclass(wrapper, DDP)
            and 'broadcast_buffers' in cfg
            and 'forward_sync_buffers' not in cfg
            and 'forward_sync_buffers' in _named_params(DDP.__init__)):
        cfg['forward_sync_buffers'] = cfg.pop('broadcast_buffers')
    return cfg


def _latest_or_fail(work_dir: str) -> str:
    folder = osp.abspath(work_dir)
    latest = latest_checkpoint(folder)
    if latest is None:
        raise CheckpointError(
            f'resume: the work dir {folder!r} holds no checkpoint '
            '(epoch_N.pth / iter_N.pth) to resume from. Check --work-dir, '
            'give the checkpoint path (--resume PATH, or load_from), or '
            'start a new run without resuming.')
    return latest


def no_singleton_batches(loader: dict) -> dict:
    """A train dataloader config whose batches never end in one of a single
    sample (:class:`~occam_plugin.datasets.NoSingletonBatchSampler`, which a
    BatchNorm can train on; the same batches otherwise), unless it sets a
    ``batch_sampler`` (``None``: torch's) or ``drop_last=True``. What
    ``tools/train.py`` and :class:`SafeRunner` do to every train dataloader.

    Args:
        loader (dict): The dataloader's config (not changed).

    Returns:
        dict: ``loader`` itself when nothing changes, else a copy.
    """
    if 'batch_sampler' in loader or 'batch_size' not in loader or \
            loader.get('drop_last', False):
        return loader
    loader = copy.copy(loader)
    loader.pop('drop_last', None)  # torch: exclusive with batch_sampler
    loader['batch_sampler'] = dict(type='NoSingletonBatchSampler')
    return loader


def build_runner(cfg) -> Runner:
    """The runner a config names (``runner_type``), else :class:`SafeRunner`
    (our tools give every config the checkpoint guarantees)."""
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return SafeRunner.from_cfg(cfg)

"""What the tools share: the common command-line arguments of
tools/train.py and tools/test.py, how they apply to a config, how a run is
launched, and how every tool ends on a user's error (:func:`run_tool`)."""
import argparse
import contextlib
import linecache
import os
import os.path as osp
from typing import Callable, Optional, Sequence

from mmengine.config import Config, DictAction

from ..dist import setup_cpu_distributed
from ..engine.runner import (CheckpointError, ConfigError, WorkDirError,
                             build_runner, hold_work_dir, merge_cfg_options)
from ..engine.runner.safe_runner import no_singleton_batches
from ..models.utils.training_state import TrainingStateMismatch

__all__ = [
    'add_common_args', 'parse', 'load_config', 'apply_common_args',
    'merge_options', 'fix_dataloaders', 'check_train_cfg', 'launch',
    'is_user_error', 'run_tool'
]

DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')

#: set to 1 to see the traceback of a user error too
DEBUG_ENV = 'OCCAM_PLUGIN_DEBUG'
#: the error classes of occam_plugin: always about the user's config,
#: checkpoint or data
USER_ERRORS = (ConfigError, CheckpointError, TrainingStateMismatch,
               WorkDirError)
#: the builtin types our checks raise with a message naming the file, key or
#: value and what was expected
CHECK_ERRORS = (ValueError, TypeError, LookupError, OSError, ImportError)
_PKG = osp.dirname(osp.dirname(osp.realpath(__file__)))  # occam_plugin/


def is_user_error(err: BaseException, tool_dir: Optional[str] = None) -> bool:
    """Whether ``err`` is for the user, not a bug: one of
    :data:`USER_ERRORS`, or one of :data:`CHECK_ERRORS` raised by a
    ``raise`` statement of occam_plugin or of the tool (in ``tool_dir``),
    i.e. by one of their checks. Anything else (an error inside torch or
    mmengine, a failing expression of ours) is a bug and keeps its
    traceback."""
    if isinstance(err, USER_ERRORS):
        return True
    if not isinstance(err, CHECK_ERRORS) or err.__traceback__ is None:
        return False
    tb = err.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    filename = tb.tb_frame.f_code.co_filename
    path = osp.realpath(filename)
    roots = [_PKG] + ([osp.realpath(tool_dir)] if tool_dir else [])
    if not any(path.startswith(root + os.sep) for root in roots):
        return False
    return linecache.getline(filename, tb.tb_lineno).lstrip().startswith(
        'raise ')


def run_tool(main: Callable, argv: Optional[Sequence[str]] = None):
    """Run a tool's ``main``: a user error (:func:`is_user_error`) ends the
    process with one line, ``error: <message>``, and exit code 1, as the
    tools' own checks do; every other exception keeps its traceback, and
    so does a user error when the environment sets ``OCCAM_PLUGIN_DEBUG=1``.

    Args:
        main (Callable): The tool's ``main(argv=None)``.
        argv (Sequence[str], optional): Its arguments (default: the command
            line).
    """
    try:
        return main(argv)
    except Exception as err:
        tool_dir = osp.dirname(main.__code__.co_filename)
        if os.environ.get(DEBUG_ENV, '') not in ('', '0') or \
                not is_user_error(err, tool_dir):
            raise
        # KeyError's str() is the repr of its message
        message = err.args[0] if isinstance(err, KeyError) and err.args \
            else err
        raise SystemExit(f'error: {message}') from None


def add_common_args(parser: argparse.ArgumentParser,
                    work_dir_help: str) -> None:
    """``--work-dir``, ``--non-strict``, ``--verbose``, ``--cfg-options``,
    ``--launcher`` and ``--local-rank``."""
    parser.add_argument(
        '--work-dir', help=f'{work_dir_help} (default: '
        'work_dirs/<config name>)')
    parser.add_argument(
        '--non-strict', action='store_true',
        help='load checkpoint weights partially: keys that are missing, '
        'unexpected or of another shape are skipped with a warning '
        '(default: they are an error that lists them)')
    parser.add_argument(
        '--verbose', action='store_true',
        help='print mmengine\'s full log on the console (config, hook '
        'table, every logged iteration); by default the console shows a '
        'line per epoch, the key metrics, warnings and errors, and the full '
        'log goes to <work_dir>/<timestamp>/<timestamp>.log only')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config keys, key=value (e.g. '
        'model.backbone.type=TIMMBackbone train_dataloader.batch_size=32); '
        'lists as key="[a,b]"')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (torchrun sets LOCAL_RANK)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse(parser: argparse.ArgumentParser,
          argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def load_config(args: argparse.Namespace,
                files: Sequence[tuple] = ()) -> Config:
    """The config of ``args.config`` (a file, or a shipped config's name:
    ``occam_plugin.resolve_config``, which then replaces ``args.config``);
    ``files`` are more ``(path, what)`` that must exist (a clear exit
    otherwise)."""
    from occam_plugin.config_path import resolve_config
    try:
        args.config = resolve_config(args.config)
    except FileNotFoundError as err:
        raise SystemExit(str(err)) from None
    for path, what in files:
        if not osp.isfile(path):
            raise SystemExit(f'{what} file {path!r} does not exist.')
    return Config.fromfile(args.config)


def apply_common_args(cfg: Config, args: argparse.Namespace,
                      before_options: Callable = None) -> Config:
    """Launcher, work dir, strictness; then the tool's own settings
    (``before_options(cfg)``), then ``--cfg-options`` (CLI > config)."""
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join(
            './work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.non_strict:
        cfg.strict_load = False
    if args.verbose:  # else the config's console (SafeRunner: quiet)
        cfg.console = 'verbose'
    if before_options is not None:
        before_options(cfg)
    merge_options(cfg, args.cfg_options)
    fix_dataloaders(cfg)
    return cfg


def merge_options(cfg: Config, options) -> Config:
    """:func:`~occam_plugin.engine.runner.merge_cfg_options` (the one check
    of keys and values every entry point shares), its :class:`ConfigError`
    as a SystemExit: one line, no traceback.

    Args:
        cfg (Config): The loaded config.
        options (dict, optional): ``--cfg-options``.
    """
    try:
        return merge_cfg_options(cfg, options)
    except ConfigError as err:
        raise SystemExit(f'error: {err}') from None


def fix_dataloaders(cfg: Config) -> None:
    """``persistent_workers`` is only valid with worker processes; the train
    dataloader gets :class:`~occam_plugin.datasets.NoSingletonBatchSampler`
    (no last batch of a single sample, which a BatchNorm cannot train on;
    the same batches otherwise) unless the config sets a ``batch_sampler``
    (``None``: torch's) or ``drop_last=True``."""
    for name in DATALOADERS:
        loader = cfg.get(name)
        if loader is not None and not loader.get('num_workers', 0):
            loader['persistent_workers'] = False
    train = cfg.get('train_dataloader')
    if train is not None:
        cfg.train_dataloader = no_singleton_batches(train)


def amp_available() -> bool:
    """Whether mixed precision pays here: a CUDA device, or a CPU that
    computes in bf16 natively (:func:`~occam_plugin.engine.optimizers.
    cpu_bf16_flags`); elsewhere bf16 is emulated, slower than fp32."""
    import torch

    from ..engine.optimizers import cpu_bf16_flags
    return torch.cuda.is_available() or bool(cpu_bf16_flags())


def use_amp(cfg: Config) -> None:
    """``--amp``: mmengine's AmpOptimWrapper on CUDA; on the CPU, bf16
    autocast (CPUAmpOptimWrapper) where the CPU computes in bf16 natively,
    else a SystemExit saying why."""
    import torch
    if torch.cuda.is_available():
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
        return
    if not amp_available():
        raise SystemExit(
            '--amp: no CUDA device, and this CPU has no native bf16 '
            '(neither avx512_bf16 nor amx_bf16 in /proc/cpuinfo): bf16 '
            'would be emulated, slower than fp32. Train without --amp, or '
            'set optim_wrapper.type=CPUAmpOptimWrapper to force it.')
    cfg.optim_wrapper.type = 'CPUAmpOptimWrapper'
    cfg.optim_wrapper.pop('loss_scale', None)


def check_train_cfg(cfg: Config) -> None:
    """``train_cfg``'s lengths are integers >= 1, else a SystemExit naming
    the key and the value (not the scheduler's "end should be larger than
    begin" or a modulo by zero after the model and the data are built).

    Args:
        cfg (Config): The merged config (after ``--cfg-options``).
    """
    train_cfg = cfg.get('train_cfg') or {}
    what = dict(max_epochs='the number of training epochs',
                max_iters='the number of training iterations',
                val_interval='validate every val_interval epochs (or '
                'iterations)')
    for key, meaning in what.items():
        if key not in train_cfg:
            continue
        value = train_cfg[key]
        if isinstance(value, bool) or not isinstance(value, int) or \
                value < 1:
            raise SystemExit(
                f'error: train_cfg.{key} must be an integer >= 1 '
                f'({meaning}), got {value!r}; fix it in the config or with '
                f'--cfg-options train_cfg.{key}=<n>.')


def launch(cfg: Config, what: str):
    """Build the runner (``SafeRunner`` unless the config names another) and
    call ``runner.<what>()``; checkpoint, training-state and work-dir
    errors end with their message."""
    if what == 'train':
        check_train_cfg(cfg)  # before anything is built
    # CPU-only multi-process: open the gloo group ourselves (mmengine's
    # pytorch launcher would call torch.cuda.set_device)
    setup_cpu_distributed(cfg)
    try:
        # one training run per work dir, held before the Runner writes its
        # log folder and config copy (SafeRunner.train holds it too)
        with (hold_work_dir(cfg.work_dir) if what == 'train' and
              _launch_rank(cfg) == 0 else contextlib.nullcontext()):
            return getattr(build_runner(cfg), what)()
    # their messages name the file or folder and the fix
    except (CheckpointError, TrainingStateMismatch, WorkDirError) as err:
        raise SystemExit(f'error: {err}') from err


def _launch_rank(cfg: Config) -> int:
    """This process's global rank, before the Runner opens the group."""
    from mmengine.dist import get_rank, is_distributed
    if is_distributed():
        return get_rank()
    if cfg.get('launcher', 'none') == 'none':
        return 0
    for var in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'):
        if var in os.environ:
            return int(os.environ[var])
    return 0

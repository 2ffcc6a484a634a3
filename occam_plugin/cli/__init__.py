"""What the command-line tools (``tools/``) and the benchmarks share: the
common arguments and config handling, the launch of a run, how a tool ends
on a user's error (:mod:`.common`), and runs of tools as processes with the
readers of what they wrote (:mod:`.runs`).

A layer above ``engine``: ``apis`` and the scripts import it; ``models``,
``datasets``, ``evaluation`` and ``engine`` never do, and ``import
occam_plugin`` does not.
"""
from .common import (add_common_args, amp_available, apply_common_args,
                     check_train_cfg, fix_dataloaders, is_user_error, launch,
                     load_config, merge_options, parse, run_tool, use_amp)
from .runs import (newest, read_metrics, read_records, run_commands,
                   warn_gpu_sharing)

__all__ = [
    'add_common_args', 'parse', 'load_config', 'apply_common_args',
    'merge_options', 'fix_dataloaders', 'check_train_cfg', 'launch',
    'is_user_error', 'run_tool', 'amp_available', 'use_amp', 'newest',
    'read_metrics', 'read_records', 'warn_gpu_sharing', 'run_commands'
]

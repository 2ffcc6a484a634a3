from .checkpoint import (CheckpointError, load_state_partially,
                         load_state_strictly, read_checkpoint)
from .config_check import ConfigError, merge_cfg_options
from .safe_runner import SafeRunner, build_runner
from .work_dir import checkpoint_files, latest_checkpoint
from .work_dir_lock import (WorkDirBusyError, WorkDirError, WorkDirLock,
                            hold_work_dir)

__all__ = ['ConfigError', 'merge_cfg_options',
           'CheckpointError', 'SafeRunner', 'build_runner', 'checkpoint_files',
           'latest_checkpoint', 'load_state_partially', 'load_state_strictly',
           'read_checkpoint', 'WorkDirBusyError', 'WorkDirError',
           'WorkDirLock', 'hold_work_dir']

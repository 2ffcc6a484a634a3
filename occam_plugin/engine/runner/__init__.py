from ...safe_globals import register_safe_globals
from .config_check import ConfigError, merge_cfg_options
from .dist import CPU_MODEL_WRAPPER_CFG, setup_cpu_distributed
from .safe_runner import (SafeRunner, build_runner, load_state_partially,
                          load_state_strictly, read_checkpoint)
from .work_dir import CheckpointError, checkpoint_files, latest_checkpoint
from .work_dir_lock import (WorkDirBusyError, WorkDirError, WorkDirLock,
                            hold_work_dir)

# `import occam_plugin` makes mmengine checkpoints loadable with
# torch.load(weights_only=True), so `--resume` works on torch >= 2.6.
register_safe_globals()

__all__ = ['ConfigError', 'merge_cfg_options', 'CPU_MODEL_WRAPPER_CFG',
           'setup_cpu_distributed',
           'CheckpointError', 'SafeRunner', 'build_runner', 'checkpoint_files',
           'latest_checkpoint', 'load_state_partially', 'load_state_strictly',
           'read_checkpoint', 'WorkDirBusyError', 'WorkDirError',
           'WorkDirLock', 'hold_work_dir']

from .cam_vis_hook import CAMVisualizationHook
from .console_progress_hook import ConsoleProgressHook
from .metrics_file_hook import MetricsFileHook
from .model_selection_checkpoint_hook import ModelSelectionCheckpointHook
from .pending_validation_hook import PendingValidationHook
from .random_state_hook import RandomStateHook
from .train_guard_hook import TrainGuardHook
from .training_state_hook import TrainingStateHook
from .work_dir_guard_hook import WorkDirGuardHook

__all__ = [
    'CAMVisualizationHook', 'ConsoleProgressHook', 'MetricsFileHook',
    'ModelSelectionCheckpointHook', 'PendingValidationHook',
    'RandomStateHook', 'TrainGuardHook', 'TrainingStateHook',
    'WorkDirGuardHook'
]

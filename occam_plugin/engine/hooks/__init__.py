from .cam_vis_hook import CAMVisualizationHook  # noqa: F401
from .console_progress_hook import ConsoleProgressHook  # noqa: F401
from .metrics_file_hook import MetricsFileHook  # noqa: F401
from .model_selection_checkpoint_hook import \
    ModelSelectionCheckpointHook  # noqa: F401
from .pending_validation_hook import PendingValidationHook  # noqa: F401
from .random_state_hook import RandomStateHook  # noqa: F401
from .train_guard_hook import TrainGuardHook  # noqa: F401
from .training_state_hook import TrainingStateHook  # noqa: F401
from .work_dir_guard_hook import WorkDirGuardHook  # noqa: F401

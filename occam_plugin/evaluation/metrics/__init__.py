from .bias_metric import BiasMetric  # noqa: F401
from .exit_metric import ExitMetric  # noqa: F401
from .fairness_metric import FairnessMetric  # noqa: F401
from .results_file import ResultsFileMetric  # noqa: F401

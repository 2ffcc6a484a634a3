from .bias_metric import BiasMetric
from .exit_metric import ExitMetric
from .fairness_metric import FairnessMetric
from .results_file import ResultsFileMetric

__all__ = ['BiasMetric', 'ExitMetric', 'FairnessMetric', 'ResultsFileMetric']

"""The protocol of a metric whose full result is written to a JSON file.

A metric logs a few scalars, but its full result (every group, per-exit
FLOPs, sample counts) is worth keeping beside the logs: ``tools/demo.py`` and
``benchmarks/`` read it there. A metric declares that by subclassing
:class:`ResultsFileMetric`; ``MetricsFileHook`` (a default hook of
``SafeRunner``) finds every such metric of the val / test evaluator and
writes its :attr:`~ResultsFileMetric.last_result` after each evaluation. The
metric knows nothing of the Runner or of files.
"""
from typing import Optional

__all__ = ['ResultsFileMetric']


class ResultsFileMetric:
    """Mixin for metrics (``mmengine.evaluator.BaseMetric``) whose full
    result ``MetricsFileHook`` writes as JSON.

    - :attr:`result_file`: the file name (a class attribute, e.g.
      ``'bias_metrics.json'``); None: the metric writes no file.
    - :attr:`out_dir`: the folder to write to; None: the Runner's log
      folder (``runner.log_dir``).
    - :attr:`last_result`: the dict the last ``compute_metrics`` kept (with
      :meth:`keep_result`); None before the first evaluation (and on the
      ranks other than 0, where ``compute_metrics`` does not run).

    The file holds ``json.dump(last_result, indent=2, sort_keys=True)`` of
    the latest evaluation.
    """

    result_file: Optional[str] = None
    out_dir: Optional[str] = None
    last_result: Optional[dict] = None

    def prefixed(self, key: str) -> str:
        """``key`` as ``BaseMetric.evaluate`` logs it: ``'<prefix>/<key>'``,
        or ``key`` when the metric has no prefix."""
        return f'{self.prefix}/{key}' if self.prefix else key

    def keep_result(self, result: dict) -> None:
        """Keep ``result`` as :attr:`last_result`, the keys of its
        ``metrics`` dict prefixed (:meth:`prefixed`) as they are logged."""
        self.last_result = dict(
            result,
            metrics={self.prefixed(k): v
                     for k, v in result['metrics'].items()})

import os
import os.path as osp
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmpretrain.registry import HOOKS
from ...evaluation.metrics.results_file import ResultsFileMetric
from ...fileio import write_json

__all__ = ['dump_metrics_json', 'MetricsFileHook']


def dump_metrics_json(folder: str, file_name: str, payload: dict) -> str:
    """Write ``payload`` as ``<folder>/<file_name>``; return the path.

    Atomic (a temporary file, then renamed), so a reader never sees half a
    file; an earlier file of that name is replaced.
    """
    os.makedirs(folder, exist_ok=True)
    path = osp.join(folder, file_name)
    write_json(path, payload, indent=2, sort_keys=True)
    return path


@HOOKS.register_module()
class MetricsFileHook(Hook):
    """Write each metric's full result as JSON into the run's log folder.

    After every validation and test epoch, every metric of that loop's
    evaluator that declares the :class:`ResultsFileMetric` protocol (e.g.
    ``BiasMetric``, ``ExitMetric``), names a ``result_file`` and holds a
    ``last_result`` (the dict its last ``compute_metrics`` kept) has that
    result written to ``<runner.log_dir>/<result_file>``, or to the metric's
    ``out_dir`` when it sets one. The files hold the latest
    evaluation (``tools/demo.py`` and ``benchmarks/`` read them there).

    The metrics know nothing of the Runner: they keep their result on
    themselves and this hook, which knows the log folder, writes it. Only
    the main process writes (``compute_metrics`` runs there only).

    ``SafeRunner`` adds this hook to every run (``default_hooks.
    metrics_file``; ``default_hooks.metrics_file=None`` turns it off).
    """

    priority = 'ABOVE_NORMAL'

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        self._write(runner, runner.val_evaluator)

    def after_test_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        self._write(runner, runner.test_evaluator)

    @staticmethod
    def _write(runner, evaluator) -> None:
        if not is_main_process():
            return
        for metric in evaluator.metrics:
            if not isinstance(metric, ResultsFileMetric) or \
                    not metric.result_file or metric.last_result is None:
                continue
            path = dump_metrics_json(metric.out_dir or runner.log_dir,
                                     metric.result_file, metric.last_result)
            print_log(f'{type(metric).__name__}: results written to {path}',
                      logger='current')

from typing import Dict, List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmpretrain.registry import METRICS

from ...errors import MissingKeyError
from .results_file import ResultsFileMetric

__all__ = ['ExitMetric']


@METRICS.register_module()
class ExitMetric(BaseMetric, ResultsFileMetric):
    """Per-exit accuracy, exit shares and expected compute of an OccamNet.

    Reads from each predicted DataSample what ``OccamClassifier.predict``
    sets: ``exit_idx`` (exit the sample left at), ``exit_scores`` (E x C
    scores of every exit), ``gt_label`` and, as metainfo, ``flops``,
    ``exit_flops`` and ``full_flops``. Percentages for accuracies and shares.

    Returned keys (default prefix ``exit``), for every exit ``k``:

    - ``exit/acc_e{k}``: accuracy of exit k on all samples (argmax of its
      scores), whether or not samples left there.
    - ``exit/share_e{k}``: share of samples that left at exit k (Exit %).
    - ``exit/acc_exited_e{k}``: accuracy of the samples that left at exit k
      (only for exits some sample left at).
    - ``exit/expected_compute``: expected FLOPs per sample relative to the
      full network, ``sum_k share_k * F_k / F_full``, where ``F_k`` are the
      FLOPs to reach and compute exit k (backbone stages <= k + the exit
      blocks, CAMs and gates evaluated up to k, ``models/utils/flops.py``)
      and ``F_full`` the whole
      OccamNet (backbone + every exit; the last ``F_k`` when only a list is
      given). ``exit/expected_gflops`` and ``exit/full_gflops`` give the
      absolutes.
    - ``exit/mean_gflops_spent``: mean of the ``flops`` each DataSample
      carries (what ``OccamClassifier.predict`` really spent: the whole
      network in ``compute_all`` mode), when present.

    Args:
        exit_flops (Sequence[float], optional): Cumulative FLOPs per exit.
            Defaults to None (taken from the predictions).
        out_dir (str, optional): Where ``exit_metrics.json`` goes (see
            :class:`ResultsFileMetric`). Defaults to None: the log folder.
        collect_device (str): Device for collecting results across ranks.
            Defaults to 'cpu'.
        prefix (str, optional): Key prefix. Defaults to 'exit'.

    Note:
        Without ``exit_flops`` (argument or metainfo; none when the
        backbone cannot be run stage by stage) the compute keys are left
        out with a warning, never reported as 1.0. Exits a sample never
        reached in dynamic inference have NaN scores and are not counted in
        ``exit/acc_e{k}``. :meth:`calculate` does no I/O; the full result
        (:attr:`last_result`) goes to ``exit_metrics.json`` through
        ``MetricsFileHook`` inside a Runner (docs/tasks/results_files.md).
    """
    default_prefix: Optional[str] = 'exit'
    result_file = 'exit_metrics.json'

    def __init__(self,
                 exit_flops: Optional[Sequence[float]] = None,
                 out_dir: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if exit_flops is not None:
            exit_flops = _check_flops(exit_flops, 'exit_flops argument')
        self.exit_flops = exit_flops
        self.out_dir = out_dir

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep, per sample, its exit, label and every exit's prediction."""
        for sample in data_samples:
            missing = [k for k in ('exit_idx', 'exit_scores', 'gt_label')
                       if sample.get(k) is None]
            if missing:
                raise MissingKeyError(
                    f'ExitMetric: data sample lacks {missing} (set by '
                    'OccamHead.predict; ExitMetric is for OccamNets only). '
                    f'It has keys {sorted(sample.keys())}')
            scores = torch.as_tensor(sample['exit_scores'])
            if scores.dim() != 2:
                raise ValueError('ExitMetric: `exit_scores` must be '
                                 '(num_exits, num_classes), got shape '
                                 f'{tuple(scores.shape)}')
            preds = scores.argmax(dim=1)
            # -1: exit not computed for this sample (dynamic inference)
            preds[~torch.isfinite(scores).all(dim=1)] = -1
            flops, per_exit = sample.get('flops'), sample.get('exit_flops')
            self.results.append(
                dict(
                    exit_idx=int(torch.as_tensor(sample['exit_idx'])),
                    exit_preds=preds.cpu().tolist(),
                    gt_label=int(torch.as_tensor(sample['gt_label']).item()),
                    flops=None if flops is None else float(flops),
                    exit_flops=None if per_exit is None else tuple(
                        float(f) for f in per_exit),
                    full_flops=sample.get('full_flops'),
                ))

    def _resolve_flops(self, results: List[dict]):
        """``(F_k list, F_full)`` or ``(None, None)``."""
        if self.exit_flops is not None:
            return self.exit_flops, self.exit_flops[-1]
        found = {(r['exit_flops'], r['full_flops']) for r in results
                 if r.get('exit_flops') is not None}
        if not found:
            return None, None
        if len(found) > 1:
            # inputs of several shapes: the mean cost of each exit
            rows = [(r['exit_flops'], r['full_flops']) for r in results
                    if r.get('exit_flops') is not None]
            flops = [sum(f[k] for f, _ in rows) / len(rows)
                     for k in range(len(rows[0][0]))]
            full = sum(float(u or f[-1]) for f, u in rows) / len(rows)
        else:
            (flops, full), = found
        flops = _check_flops(flops, 'the exit_flops of the predictions')
        return flops, float(full or flops[-1])

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """:meth:`calculate` on the collected results; the full result is
        kept in :attr:`last_result` (prefixed keys)."""
        flops, full = self._resolve_flops(results)
        if flops is None:
            print_log(
                'ExitMetric: the predictions carry no `exit_flops` (set by '
                'OccamClassifier.predict when its backbone can be run stage '
                'by stage) and no `exit_flops` argument is given; expected '
                'compute is not reported', logger='current',
                level=30)
        result = self.calculate(
            exit_idx=[r['exit_idx'] for r in results],
            exit_preds=[r['exit_preds'] for r in results],
            gt_label=[r['gt_label'] for r in results],
            flops_spent=[r['flops'] for r in results
                         if r.get('flops') is not None],
            exit_flops=flops,
            full_flops=full)
        self.keep_result(result)
        return result['metrics']

    @staticmethod
    def calculate(exit_idx: Sequence[int],
                  exit_preds: Sequence[Sequence[int]],
                  gt_label: Sequence[int],
                  flops_spent: Optional[Sequence[float]] = None,
                  exit_flops: Optional[Sequence[float]] = None,
                  full_flops: Optional[float] = None) -> dict:
        """The statistics of the class docstring, from plain arrays.

        Args:
            exit_idx (Sequence[int]): Exit each sample left at, ``[N]``.
            exit_preds (Sequence[Sequence[int]]): Class predicted by every
                exit, ``[N, E]``; -1 where the exit was not computed.
            gt_label (Sequence[int]): True class, ``[N]``.
            flops_spent (Sequence[float], optional): FLOPs spent on the
                samples that report it (their mean is reported).
            exit_flops (Sequence[float], optional): Cumulative FLOPs per
                exit ``F_k``, ``[E]``. Without it no compute keys.
            full_flops (float, optional): FLOPs of the whole network.
                Defaults to the last ``F_k``.

        Returns:
            dict: ``metrics`` (unprefixed keys), ``exit_flops``,
            ``full_flops``, ``num_exits``, ``num_samples``.
        """
        n = len(exit_idx)
        if not n:
            raise ValueError('ExitMetric: no predictions to evaluate')
        num_exits = len(exit_preds[0])
        rows = list(zip(exit_idx, exit_preds, gt_label))
        metrics: Dict[str, float] = {}
        shares = []
        for k in range(num_exits):
            computed = [(p, gt) for _, p, gt in rows if p[k] >= 0]
            if computed:
                metrics[f'acc_e{k}'] = 100.0 * sum(
                    p[k] == gt for p, gt in computed) / len(computed)
            exited = [(p, gt) for e, p, gt in rows if e == k]
            shares.append(len(exited) / n)
            metrics[f'share_e{k}'] = 100.0 * len(exited) / n
            if exited:
                metrics[f'acc_exited_e{k}'] = 100.0 * sum(
                    p[k] == gt for p, gt in exited) / len(exited)
        bad = sorted(set(exit_idx) - set(range(num_exits)))
        if bad:
            raise ValueError(f'ExitMetric: exit_idx {bad} outside '
                             f'[0, {num_exits}) (num_exits from exit_scores)')

        if flops_spent:
            metrics['mean_gflops_spent'] = sum(flops_spent) / len(
                flops_spent) / 1e9
        full = None
        if exit_flops is not None:
            if len(exit_flops) != num_exits:
                raise ValueError(
                    f'ExitMetric: {len(exit_flops)} per-exit FLOPs for '
                    f'{num_exits} exits: {list(exit_flops)}')
            full = exit_flops[-1] if full_flops is None else full_flops
            expected = sum(s * f for s, f in zip(shares, exit_flops))
            metrics['expected_compute'] = expected / full
            metrics['expected_gflops'] = expected / 1e9
            metrics['full_gflops'] = full / 1e9
            exit_flops = list(exit_flops)
        return dict(metrics=metrics, exit_flops=exit_flops, full_flops=full,
                    num_exits=num_exits, num_samples=n)


def _check_flops(flops, source: str) -> List[float]:
    """Positive FLOPs per exit as floats, else an error naming ``source``."""
    flops = [float(f) for f in flops]
    if not flops or any(f <= 0 for f in flops):
        raise ValueError(f'ExitMetric: {source} must be positive FLOPs '
                         f'per exit, got {flops}')
    return flops

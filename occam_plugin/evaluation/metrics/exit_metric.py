from typing import Dict, List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MessageHub, print_log

from mmpretrain.registry import METRICS

from .json_dump import dump_metrics_json

#: MessageHub runtime-info key under which ``ExitFlopsHook`` publishes the
#: cumulative FLOPs to reach and compute each exit.
EXIT_FLOPS_INFO_KEY = 'occam_exit_flops'


@METRICS.register_module()
class ExitMetric(BaseMetric):
    """Per-exit accuracy, exit shares and expected compute of an OccamNet.

    Reads from each predicted DataSample what ``OccamHead.predict`` sets:
    ``exit_idx`` (exit the sample left at), ``exit_scores`` (E x C scores of
    every exit) and ``gt_label``. Percentages for accuracies and shares.

    Returned keys (default prefix ``exit``), for every exit ``k``:

    - ``exit/acc_e{k}``: accuracy of exit k on all samples (argmax of its
      scores), whether or not samples left there.
    - ``exit/share_e{k}``: share of samples that left at exit k (Exit %).
    - ``exit/acc_exited_e{k}``: accuracy of the samples that left at exit k
      (only for exits some sample left at).
    - ``exit/expected_compute``: expected FLOPs per sample relative to the
      full network, ``sum_k share_k * F_k / F_full``, where ``F_k`` are the
      FLOPs to reach and compute exit k (backbone stages <= k + the exit
      blocks, CAMs and gates evaluated up to k, see
      ``occam_plugin/models/utils/flops.py``) and ``F_full`` the whole
      OccamNet (backbone + every exit; the last ``F_k`` when only a list is
      given). ``exit/expected_gflops`` and ``exit/full_gflops`` give the
      absolutes.
    - ``exit/mean_gflops_spent``: mean of the ``flops`` each DataSample
      carries (what ``OccamClassifier.predict`` really spent: the whole
      network in ``compute_all`` mode), when present.

    Where ``F_k`` comes from: the ``exit_flops`` argument when given, else
    the MessageHub runtime info ``'occam_exit_flops'``
    (``dict(exit=[F_k...], full=F_full)``) that ``ExitFlopsHook`` (HOOKS)
    fills once per run by measuring the built model with mmengine's
    ``FlopAnalyzer``. Without either the compute keys are left out (with a
    warning).

    Exits a sample never reached in dynamic inference have NaN scores; the
    per-exit accuracy counts only samples with finite scores at that exit
    (``exit/acc_e{k}`` is left out when there are none).

    The full results are also written to ``<out_dir>/exit_metrics.json``
    (default: the Runner's log folder, see ``json_dump.py``).

    Args:
        exit_flops (Sequence[float], optional): Cumulative FLOPs per exit.
            Defaults to None (taken from the hook).
        out_dir (str, optional): Folder for ``exit_metrics.json``. Defaults to
            None (the Runner's log folder).
        collect_device (str): Device for collecting results across ranks.
            Defaults to 'cpu'.
        prefix (str, optional): Key prefix. Defaults to 'exit'.
    """
    default_prefix: Optional[str] = 'exit'

    def __init__(self,
                 exit_flops: Optional[Sequence[float]] = None,
                 out_dir: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if exit_flops is not None:
            exit_flops = self._check_flops(exit_flops, 'exit_flops argument')
        self.exit_flops = exit_flops
        self.out_dir = out_dir
        self.last_json_path: Optional[str] = None

    @staticmethod
    def _check_flops(flops, source: str) -> List[float]:
        flops = [float(f) for f in flops]
        if not flops or any(f <= 0 for f in flops):
            raise ValueError(f'ExitMetric: {source} must be positive FLOPs '
                             f'per exit, got {flops}')
        return flops

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep, per sample, its exit, label and every exit's prediction."""
        for sample in data_samples:
            missing = [k for k in ('exit_idx', 'exit_scores', 'gt_label')
                       if sample.get(k) is None]
            if missing:
                raise KeyError(
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
            flops = sample.get('flops')
            self.results.append(
                dict(
                    exit_idx=int(torch.as_tensor(sample['exit_idx'])),
                    exit_preds=preds.cpu().tolist(),
                    gt_label=int(torch.as_tensor(sample['gt_label']).item()),
                    flops=None if flops is None else float(flops),
                ))

    def _resolve_flops(self):
        """``(F_k list, F_full)`` or ``(None, None)``."""
        if self.exit_flops is not None:
            return self.exit_flops, self.exit_flops[-1]
        try:
            info = MessageHub.get_current_instance().get_info(
                EXIT_FLOPS_INFO_KEY)
        except Exception:
            info = None
        if info is None:
            return None, None
        source = f'MessageHub "{EXIT_FLOPS_INFO_KEY}"'
        if isinstance(info, dict):
            flops = self._check_flops(info['exit'], source)
            return flops, float(info.get('full') or flops[-1])
        flops = self._check_flops(info, source)
        return flops, flops[-1]

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Compute the keys listed in the class docstring."""
        if not results:
            raise ValueError('ExitMetric: no predictions to evaluate')
        num_exits = len(results[0]['exit_preds'])
        n = len(results)
        metrics: Dict[str, float] = {}
        shares = []
        for k in range(num_exits):
            computed = [r for r in results if r['exit_preds'][k] >= 0]
            if computed:
                metrics[f'acc_e{k}'] = 100.0 * sum(
                    r['exit_preds'][k] == r['gt_label']
                    for r in computed) / len(computed)
            exited = [r for r in results if r['exit_idx'] == k]
            shares.append(len(exited) / n)
            metrics[f'share_e{k}'] = 100.0 * len(exited) / n
            if exited:
                metrics[f'acc_exited_e{k}'] = 100.0 * sum(
                    r['exit_preds'][k] == r['gt_label']
                    for r in exited) / len(exited)
        bad = sorted({r['exit_idx'] for r in results} - set(range(num_exits)))
        if bad:
            raise ValueError(f'ExitMetric: exit_idx {bad} outside '
                             f'[0, {num_exits}) (num_exits from exit_scores)')

        spent = [r['flops'] for r in results if r.get('flops') is not None]
        if spent:
            metrics['mean_gflops_spent'] = sum(spent) / len(spent) / 1e9
        flops, full = self._resolve_flops()
        if flops is None:
            print_log(
                'ExitMetric: no per-exit FLOPs (give `exit_flops` or add '
                "dict(type='ExitFlopsHook') to custom_hooks); expected "
                'compute is not reported', logger='current', level=30)
        elif len(flops) != num_exits:
            raise ValueError(f'ExitMetric: {len(flops)} per-exit FLOPs for '
                             f'{num_exits} exits: {flops}')
        else:
            expected = sum(s * f for s, f in zip(shares, flops))
            metrics['expected_compute'] = expected / full
            metrics['expected_gflops'] = expected / 1e9
            metrics['full_gflops'] = full / 1e9

        key = (lambda k: f'{self.prefix}/{k}') if self.prefix else str
        self.last_json_path = dump_metrics_json(
            'exit_metrics.json',
            dict(metrics={key(k): v for k, v in metrics.items()},
                 exit_flops=flops, full_flops=full, num_exits=num_exits,
                 num_samples=n),
            self.out_dir)
        return metrics

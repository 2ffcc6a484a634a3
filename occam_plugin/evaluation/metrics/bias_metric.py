from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmpretrain.registry import METRICS

from .json_dump import dump_metrics_json


def _to_int(value, key: str) -> int:
    """A label stored as int / 0-d or 1-element tensor -> int."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f'BiasMetric: `{key}` must hold one value per '
                             f'sample, got a tensor of shape '
                             f'{tuple(value.shape)}')
        return int(value.item())
    return int(value)


def _pct(correct: int, total: int) -> float:
    return 100.0 * correct / total


@METRICS.register_module()
class BiasMetric(BaseMetric):
    """Bias-aware accuracy of any single-label classifier.

    Reads from each predicted DataSample ``gt_label`` and ``pred_label`` (or
    ``pred_score``), and the bias annotations when present (see
    docs/architecture.md): ``group_idx``, ``bias_aligned``,
    ``bias_factors_aligned``. What a dataset does not annotate is not
    reported. All accuracies are in percent (like mmpretrain ``Accuracy``).

    Returned keys (shown with the default prefix ``bias``):

    - ``bias/acc``: overall accuracy.
    - ``bias/unbiased_acc``: mean of the per-group accuracies over the
      non-empty groups (the number the OccamNets/Biased MNIST papers report).
    - ``bias/worst_group_acc``, ``bias/worst_group``: lowest group accuracy
      and its group id.
    - ``bias/num_groups``, ``bias/num_empty_groups``: groups expected
      (``dataset_meta['num_groups']``, else ``num_groups``, else the largest
      id seen + 1) and how many of them had no sample (they are skipped).
    - ``bias/acc_group_{g}``: accuracy of group ``g`` (non-empty groups only;
      logged when there are at most ``max_logged_groups`` groups, always in
      the JSON file).
    - ``bias/aligned_acc``, ``bias/conflicting_acc`` (+ ``num_aligned``,
      ``num_conflicting``): accuracy where the primary bias attribute agrees /
      disagrees with the class.
    - ``bias/{factor}_aligned_acc``, ``bias/{factor}_conflicting_acc``: the
      same for every factor of multi-factor data (``bias_factors_aligned``).

    A subset without samples gets no key (never NaN). The full results
    (every key, per-group accuracy and counts) are also written as JSON to
    ``<out_dir>/bias_metrics.json``; ``out_dir`` defaults to the Runner's log
    folder ``<work_dir>/<timestamp>/`` (found through the current MMLogger,
    see ``json_dump.py``). The file holds the latest evaluation.

    Args:
        num_groups (int, optional): Number of groups when the dataset meta
            does not say. Defaults to None.
        max_logged_groups (int): Log per-group keys only up to this many
            groups (the JSON always has them). Defaults to 20.
        out_dir (str, optional): Folder for ``bias_metrics.json``. Defaults to
            None (the Runner's log folder; nothing written outside a Runner).
        collect_device (str): Device for collecting results across ranks.
            Defaults to 'cpu'.
        prefix (str, optional): Key prefix. Defaults to 'bias'.
    """
    default_prefix: Optional[str] = 'bias'

    def __init__(self,
                 num_groups: Optional[int] = None,
                 max_logged_groups: int = 20,
                 out_dir: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if num_groups is not None and int(num_groups) < 1:
            raise ValueError(f'BiasMetric: num_groups must be >= 1, got '
                             f'{num_groups}')
        self.num_groups = num_groups
        self.max_logged_groups = max_logged_groups
        self.out_dir = out_dir
        self.last_json_path: Optional[str] = None

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep, per sample, correctness and its bias annotations."""
        for sample in data_samples:
            if 'gt_label' not in sample:
                raise KeyError('BiasMetric: a data sample has no `gt_label`; '
                               f'it has keys {sorted(sample.keys())}')
            gt = _to_int(sample['gt_label'], 'gt_label')
            if 'pred_label' in sample:
                pred = _to_int(sample['pred_label'], 'pred_label')
            elif 'pred_score' in sample:
                pred = int(torch.as_tensor(sample['pred_score']).argmax())
            else:
                raise KeyError('BiasMetric: a data sample has neither '
                               '`pred_label` nor `pred_score`; it has keys '
                               f'{sorted(sample.keys())}')
            result = dict(correct=pred == gt)
            if sample.get('group_idx') is not None:
                result['group_idx'] = _to_int(sample['group_idx'],
                                              'group_idx')
            if sample.get('bias_aligned') is not None:
                result['bias_aligned'] = bool(
                    _to_int(sample['bias_aligned'], 'bias_aligned'))
            factors = sample.get('bias_factors_aligned')
            if factors:
                if not isinstance(factors, dict):
                    raise TypeError(
                        'BiasMetric: `bias_factors_aligned` must be a dict '
                        f'{{factor: bool}}, got {type(factors).__name__}')
                result['factors_aligned'] = {
                    str(k): bool(_to_int(v, f'bias_factors_aligned.{k}'))
                    for k, v in factors.items()
                }
            self.results.append(result)

    def _expected_groups(self, seen: Sequence[int]) -> int:
        meta = self.dataset_meta or {}
        if meta.get('num_groups') is not None:
            return int(meta['num_groups'])
        if self.num_groups is not None:
            return int(self.num_groups)
        return max(seen) + 1

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Compute the keys listed in the class docstring."""
        if not results:
            raise ValueError('BiasMetric: no predictions to evaluate')
        metrics: Dict[str, float] = {}
        n_correct = sum(r['correct'] for r in results)
        metrics['acc'] = _pct(n_correct, len(results))
        groups_json = {}

        # --- groups: unbiased = mean over non-empty groups -------------
        grouped = [r for r in results if 'group_idx' in r]
        if grouped:
            if len(grouped) != len(results):
                raise ValueError(
                    f'BiasMetric: {len(results) - len(grouped)} of '
                    f'{len(results)} samples have no `group_idx`; either all '
                    'or none must carry it')
            num_groups = self._expected_groups([r['group_idx']
                                                for r in grouped])
            stats = defaultdict(lambda: [0, 0])  # group -> [correct, total]
            for r in grouped:
                g = r['group_idx']
                if not 0 <= g < num_groups:
                    raise ValueError(
                        f'BiasMetric: group_idx {g} outside [0, {num_groups})'
                        " (num_groups from dataset_meta['num_groups'] or the "
                        '`num_groups` argument)')
                stats[g][0] += int(r['correct'])
                stats[g][1] += 1
            group_acc = {g: _pct(c, t) for g, (c, t) in stats.items()}
            worst = min(sorted(group_acc), key=lambda g: group_acc[g])
            metrics['unbiased_acc'] = sum(group_acc.values()) / len(group_acc)
            metrics['worst_group_acc'] = group_acc[worst]
            metrics['worst_group'] = worst
            metrics['num_groups'] = num_groups
            metrics['num_empty_groups'] = num_groups - len(group_acc)
            log_groups = num_groups <= self.max_logged_groups
            for g in sorted(group_acc):
                groups_json[str(g)] = dict(acc=group_acc[g],
                                           num=stats[g][1])
                if log_groups:
                    metrics[f'acc_group_{g}'] = group_acc[g]

        # --- primary bias attribute: aligned vs conflicting -------------
        self._split_acc(results, lambda r: r.get('bias_aligned'), '',
                        metrics)

        # --- every factor of multi-factor data -----------------------------
        factor_names = sorted({
            f
            for r in results for f in r.get('factors_aligned', {})
        })
        for name in factor_names:
            self._split_acc(results,
                            lambda r, n=name: r.get('factors_aligned',
                                                    {}).get(n), f'{name}_',
                            metrics)

        prefixed = {self._key(k): v for k, v in metrics.items()}
        all_keys = dict(prefixed)
        for g, v in groups_json.items():
            all_keys[self._key(f'acc_group_{g}')] = v['acc']
        self.last_json_path = dump_metrics_json(
            'bias_metrics.json',
            dict(metrics=all_keys, groups=groups_json,
                 num_samples=len(results)), self.out_dir)
        if self.last_json_path:
            print_log(f'BiasMetric: results written to '
                      f'{self.last_json_path}', logger='current')
        return metrics

    def _key(self, key: str) -> str:
        return f'{self.prefix}/{key}' if self.prefix else key

    @staticmethod
    def _split_acc(results, get, name: str, metrics: dict) -> None:
        """Accuracy on samples whose flag is True (aligned) / False."""
        for flag, tag in ((True, 'aligned'), (False, 'conflicting')):
            subset = [r['correct'] for r in results if get(r) is flag]
            if subset:
                metrics[f'{name}{tag}_acc'] = _pct(sum(subset), len(subset))
                if not name:
                    metrics[f'num_{tag}'] = len(subset)

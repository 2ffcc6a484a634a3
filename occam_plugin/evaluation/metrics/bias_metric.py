import logging
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmpretrain.registry import METRICS

from ...errors import MissingKeyError
from .results_file import ResultsFileMetric

__all__ = [
    'missing_annotations_note', 'sparse_groups_note', 'BiasMetric',
    'HOW_TO_ANNOTATE'
]


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


#: how to give samples their bias annotations (the end of every message
#: that finds them missing: this metric's, and the guard of the methods
#: that need groups)
HOW_TO_ANNOTATE = (
    "Give the samples bias annotations: type='BiasAnnotatedDataset' with "
    'an annotation file of one row per image (path, label, split and '
    'attribute columns; CSV, TSV or JSON), or a dataset '
    'whose data info holds `group_idx` (and `bias_aligned`, `bias_label`), '
    "with dict(type='PackBiasInputs') as the last step of the pipeline "
    "(mmpretrain's PackInputs drops these keys).")


def missing_annotations_note(missing: Sequence[str],
                             num_groups: Optional[int] = None) -> str:
    """What :class:`BiasMetric` writes as ``missing_annotations`` (and warns
    once): the annotations ``missing`` from the evaluated samples, what is
    not reported without them and how to provide them. ``num_groups``: the
    groups the dataset declares (``dataset_meta['num_groups']``), when it
    does; then the pipeline dropped the annotations."""
    keys = ' or '.join(f'`{k}`' for k in missing)
    note = (f'the evaluated samples carry no {keys}: no worst-group, '
            'unbiased or aligned/conflicting accuracy is reported, only '
            'overall and worst-class accuracy. ')
    if num_groups:
        note += (f"The dataset declares {num_groups} groups "
                 "(dataset_meta['num_groups']) but its samples reach the "
                 'metric without `group_idx`: the pipeline does not pack '
                 "them; end it with dict(type='PackBiasInputs'). ")
    return note + HOW_TO_ANNOTATE


def sparse_groups_note(metrics: dict) -> Optional[str]:
    """What is wrong with the group keys when more than half of the groups
    have no sample (their mean and minimum are then over a few groups),
    else None.

    Args:
        metrics (dict): Unprefixed keys of :meth:`BiasMetric.calculate`
            (``num_groups``, ``num_empty_groups``).
    """
    total = metrics.get('num_groups')
    empty = metrics.get('num_empty_groups')
    if not total or empty is None or 2 * empty <= total:
        return None
    return (f'{empty} of the {total} groups have no sample in this split: '
            f'unbiased_acc and worst_group_acc are over the '
            f'{total - empty} non-empty groups only, not over the groups '
            'their names promise. Evaluate on a split with samples in most '
            'groups (e.g. a larger num_test).')


@METRICS.register_module()
class BiasMetric(BaseMetric, ResultsFileMetric):
    """Bias-aware accuracy of any single-label classifier.

    Reads from each predicted DataSample ``gt_label`` and ``pred_label`` (or
    ``pred_score``), and the bias annotations when present (see
    docs/architecture.md): ``group_idx``, ``bias_aligned``,
    ``bias_factors_aligned``. What a dataset does not annotate is not
    reported. All accuracies are in percent (like mmpretrain ``Accuracy``).

    Returned keys (shown with the default prefix ``bias``):

    - ``bias/acc``: overall accuracy.
    - ``bias/worst_class_acc``, ``bias/worst_class``: lowest per-class
      accuracy (over the classes with samples) and its class id; needs no
      bias annotation (model selection without bias labels).
    - ``bias/unbiased_acc``: mean of the per-group accuracies over the
      non-empty groups (the number the OccamNets/Biased MNIST papers report).
    - ``bias/worst_group_acc``, ``bias/worst_group``: lowest group accuracy
      and its group id.
    - ``bias/num_groups``, ``bias/num_empty_groups``: groups expected
      (``dataset_meta['num_groups']``, else ``num_groups``, else the largest
      id seen + 1) and how many of them had no sample (they are skipped).
      When more than half are empty, each evaluation warns on the console
      and the JSON file gets a ``sparse_groups`` entry
      (:func:`sparse_groups_note`).
    - ``bias/acc_group_{g}``: accuracy of group ``g`` (non-empty groups only;
      logged when there are at most ``max_logged_groups`` groups, always in
      the JSON file).
    - ``bias/aligned_acc``, ``bias/conflicting_acc`` (+ ``num_aligned``,
      ``num_conflicting``): accuracy where the primary bias attribute agrees /
      disagrees with the class.
    - ``bias/{factor}_aligned_acc``, ``bias/{factor}_conflicting_acc``: the
      same for every factor of multi-factor data (``bias_factors_aligned``).

    A subset without samples gets no key (never NaN).

    Args:
        num_groups (int, optional): Number of groups when the dataset meta
            does not say. Defaults to None.
        max_logged_groups (int): Log per-group keys only up to this many
            groups (the JSON always has them). Defaults to 20.
        out_dir (str, optional): Where ``bias_metrics.json`` goes (see
            :class:`ResultsFileMetric`). Defaults to None: the log folder.
        collect_device (str): Device for collecting results across ranks.
            Defaults to 'cpu'.
        prefix (str, optional): Key prefix. Defaults to 'bias'.

    Note:
        Samples without ``group_idx`` give only ``acc`` and the worst-class
        keys (one console warning; ``missing_annotations`` in the JSON
        file). Groups keep their ids as keys; ``group_names`` of the dataset
        meta name them in the JSON file and the log. :meth:`calculate` does
        no I/O; the full result (:attr:`last_result`) goes to
        ``bias_metrics.json`` through ``MetricsFileHook`` inside a Runner
        (docs/tasks/results_files.md).
    """
    default_prefix: Optional[str] = 'bias'
    result_file = 'bias_metrics.json'

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

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep, per sample, correctness and its bias annotations."""
        for sample in data_samples:
            if 'gt_label' not in sample:
                raise MissingKeyError(
                    'BiasMetric: a data sample has no `gt_label`; it has '
                    f'keys {sorted(sample.keys())}')
            gt = _to_int(sample['gt_label'], 'gt_label')
            if 'pred_label' in sample:
                pred = _to_int(sample['pred_label'], 'pred_label')
            elif 'pred_score' in sample:
                pred = int(torch.as_tensor(sample['pred_score']).argmax())
            else:
                raise MissingKeyError(
                    'BiasMetric: a data sample has neither `pred_label` nor '
                    f'`pred_score`; it has keys {sorted(sample.keys())}')
            result = dict(correct=pred == gt, gt=gt)
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

    def _expected_groups(self) -> Optional[int]:
        meta = self.dataset_meta or {}
        if meta.get('num_groups') is not None:
            return int(meta['num_groups'])
        return None if self.num_groups is None else int(self.num_groups)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """:meth:`calculate` on the collected results; returns the keys to
        log and keeps the full result (every group, prefixed keys, group
        names, ``missing_annotations``) in :attr:`last_result`."""
        meta = self.dataset_meta or {}
        result = self.calculate(
            correct=[r['correct'] for r in results],
            group_idx=_column(results, 'group_idx'),
            bias_aligned=[r.get('bias_aligned') for r in results],
            factors_aligned=[r.get('factors_aligned', {}) for r in results],
            num_groups=self._expected_groups(),
            gt_label=[r['gt'] for r in results],
            group_names=meta.get('group_names'))
        metrics = result['metrics']
        if 'worst_group' not in metrics:
            missing = ['group_idx'] + (
                [] if 'aligned_acc' in metrics or 'conflicting_acc' in metrics
                else ['bias_aligned'])
            result['missing_annotations'] = missing_annotations_note(
                missing, meta.get('num_groups'))
            if not self._warned_missing:
                self._warned_missing = True
                print_log(f'BiasMetric: {result["missing_annotations"]}',
                          logger='current', level=logging.WARNING)
        else:
            print_log(self._worst_line(result, meta), logger='current')
        sparse = sparse_groups_note(metrics)
        if sparse:
            # every evaluation: each one logs numbers that mislead
            result['sparse_groups'] = sparse
            print_log(f'BiasMetric: {sparse}', logger='current',
                      level=logging.WARNING)
        if metrics.get('num_groups', 0) > self.max_logged_groups:
            metrics = {k: v for k, v in metrics.items()
                       if not k.startswith('acc_group_')}
        self.keep_result(result)
        return metrics

    _warned_missing = False

    @staticmethod
    def _worst_line(result: dict, meta: dict) -> str:
        """``BiasMetric: worst group 3 (waterbird|land) 25.00%, worst class
        1 (waterbird) 50.00%`` (names when the dataset has them)."""
        m = result['metrics']
        group = result['groups'][str(m['worst_group'])]
        name = f" ({group['name']})" if 'name' in group else ''
        line = (f'BiasMetric: worst group {m["worst_group"]}{name} '
                f'{m["worst_group_acc"]:.2f}%')
        classes = meta.get('classes')
        c = m['worst_class']
        name = f' ({classes[c]})' if classes and 0 <= c < len(classes) \
            else ''
        return line + f', worst class {c}{name} {m["worst_class_acc"]:.2f}%'

    @staticmethod
    def calculate(correct: Sequence[bool],
                  group_idx: Optional[Sequence[int]] = None,
                  bias_aligned: Optional[Sequence[Optional[bool]]] = None,
                  factors_aligned: Optional[Sequence[dict]] = None,
                  num_groups: Optional[int] = None,
                  gt_label: Optional[Sequence[int]] = None,
                  group_names: Optional[Sequence[str]] = None) -> dict:
        """The statistics of the class docstring, from plain arrays.

        Args:
            correct (Sequence[bool]): Whether each prediction is right,
                ``[N]``.
            group_idx (Sequence[int], optional): Group of each sample,
                ``[N]``. Defaults to None (no group keys).
            bias_aligned (Sequence[bool | None], optional): Primary bias
                attribute agrees with the class; None = not annotated.
            factors_aligned (Sequence[dict], optional): Per sample
                ``{factor: bool}`` (may be empty).
            num_groups (int, optional): Groups expected; defaults to the
                largest ``group_idx`` + 1.
            gt_label (Sequence[int], optional): Class of each sample,
                ``[N]``. Defaults to None (no worst-class keys).
            group_names (Sequence[str], optional): Name of each group id
                (``dataset_meta['group_names']``). Defaults to None (the
                groups have no ``name``).

        Returns:
            dict: ``metrics`` (unprefixed keys, ``acc_group_{g}`` for every
            non-empty group), ``groups`` (``{str(g): dict(acc, num)}``, and
            ``name`` with ``group_names``), ``num_samples``.
        """
        correct = [bool(c) for c in correct]
        n = len(correct)
        if not n:
            raise ValueError('BiasMetric: no predictions to evaluate')
        metrics: Dict[str, float] = {}
        metrics['acc'] = _pct(sum(correct), n)
        groups = {}

        # --- classes: the worst one (no bias annotation needed) --------
        if gt_label is not None:
            class_acc = {c: acc for c, (acc, _) in _subset_acc(
                correct, [int(c) for c in gt_label]).items()}
            worst = _worst(class_acc)
            metrics['worst_class_acc'] = class_acc[worst]
            metrics['worst_class'] = worst

        # --- groups: unbiased = mean over non-empty groups -------------
        if group_idx is not None:
            group_idx = [int(g) for g in group_idx]
            if num_groups is None:
                num_groups = max(group_idx) + 1
            for g in group_idx:
                if not 0 <= g < num_groups:
                    raise ValueError(
                        f'BiasMetric: group_idx {g} outside [0, {num_groups})'
                        " (num_groups from dataset_meta['num_groups'] or the "
                        '`num_groups` argument)')
            stats = _subset_acc(correct, group_idx)
            group_acc = {g: acc for g, (acc, _) in stats.items()}
            worst = _worst(group_acc)
            metrics['unbiased_acc'] = sum(group_acc.values()) / len(group_acc)
            metrics['worst_group_acc'] = group_acc[worst]
            metrics['worst_group'] = worst
            metrics['num_groups'] = num_groups
            metrics['num_empty_groups'] = num_groups - len(group_acc)
            for g in sorted(group_acc):
                groups[str(g)] = dict(acc=group_acc[g], num=stats[g][1])
                if group_names is not None and g < len(group_names):
                    groups[str(g)]['name'] = str(group_names[g])
                metrics[f'acc_group_{g}'] = group_acc[g]

        # --- primary bias attribute: aligned vs conflicting -------------
        if bias_aligned is not None:
            _split_acc(correct, bias_aligned, '', metrics)

        # --- every factor of multi-factor data -----------------------------
        factors_aligned = factors_aligned or [{}] * n
        for name in sorted({f for fa in factors_aligned for f in fa}):
            _split_acc(correct, [fa.get(name) for fa in factors_aligned],
                       f'{name}_', metrics)
        return dict(metrics=metrics, groups=groups, num_samples=n)


def _subset_acc(correct: Sequence[bool],
                keys: Sequence[int]) -> Dict[int, tuple]:
    """Per key (group or class) present: ``(accuracy in %, count)``."""
    stats = defaultdict(lambda: [0, 0])  # key -> [correct, total]
    for k, ok in zip(keys, correct):
        stats[k][0] += int(ok)
        stats[k][1] += 1
    return {k: (_pct(c, t), t) for k, (c, t) in stats.items()}


def _worst(acc: Dict[int, float]) -> int:
    """The key of the lowest accuracy (the smallest key on ties)."""
    return min(sorted(acc), key=lambda k: acc[k])


def _column(results: List[dict], key: str) -> Optional[List[int]]:
    """``key`` of every result, None when none has it; all or none must."""
    have = [r[key] for r in results if key in r]
    if not have:
        return None
    if len(have) != len(results):
        raise ValueError(
            f'BiasMetric: {len(results) - len(have)} of {len(results)} '
            f'samples have no `{key}`; either all or none must carry it')
    return have


def _split_acc(correct, flags, name: str, metrics: dict) -> None:
    """Accuracy on samples whose flag is True (aligned) / False; None =
    not annotated."""
    for flag, tag in ((True, 'aligned'), (False, 'conflicting')):
        subset = [ok for ok, f in zip(correct, flags)
                  if f is not None and bool(f) is flag]
        if subset:
            metrics[f'{name}{tag}_acc'] = _pct(sum(subset), len(subset))
            if not name:
                metrics[f'num_{tag}'] = len(subset)

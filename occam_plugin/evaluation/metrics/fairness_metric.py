from itertools import combinations
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS

from ...errors import MissingKeyError
from ...extras import import_extra, require_extra
from .results_file import ResultsFileMetric

__all__ = [
    'difference_in_equal_opportunity', 'bias_amplification', 'score_kl',
    'check_protected_attribute', 'FairnessMetric'
]


def _scalar(value, key: str) -> int:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f'FairnessMetric: `{key}` must hold one value '
                             f'per sample, got shape {tuple(value.shape)}')
        return int(value.item())
    return int(value)


def difference_in_equal_opportunity(pred, gt, attr, classes) -> float:
    """Mean over ``classes`` of ``max_a TPR_a - min_a TPR_a``, with
    ``TPR_a = P(pred = t | gt = t, attr = a)`` over the groups ``a`` that
    have positives of class ``t`` (binary: ``|TPR_0 - TPR_1|``)."""
    gaps = []
    for t in classes:
        tprs = [np.mean(pred[(gt == t) & (attr == a)] == t)
                for a in np.unique(attr) if ((gt == t) & (attr == a)).any()]
        if len(tprs) >= 2:
            gaps.append(max(tprs) - min(tprs))
    return float(np.mean(gaps)) if gaps else float('nan')


def bias_amplification(pred, gt, attr, correlated=None) -> float:
    """Bias amplification of Wang & Russakovsky (2019) in the form used by
    Ramaswamy et al. (2021), direction attribute -> task::

        BA = 1/(|A||T|) sum_{a,t} y_at D_at + (1 - y_at)(-D_at)
        y_at = 1[P(T=t, A=a) > P(T=t) P(A=a)]
        D_at = P(That=t | A=a) - P(T=t | A=a)

    Positive when the predictions lean on the attribute more than the ground
    truth does. ``correlated``: the ``(t, a)`` cells with ``y_at = 1`` (as
    Wang & Russakovsky, the correlation of the *training* data); None: from
    ``gt`` and ``attr`` themselves (then a balanced test set has every
    ``y_at = 0`` and ``BA = 0`` whatever the predictions)."""
    attrs, tasks = np.unique(attr), np.unique(gt)
    terms = []
    for a in attrs:
        in_a = attr == a
        for t in tasks:
            if correlated is None:
                y = np.mean(
                    (gt == t) & in_a) > np.mean(gt == t) * np.mean(in_a)
            else:
                y = (int(t), int(a)) in correlated
            d = np.mean(pred[in_a] == t) - np.mean(gt[in_a] == t)
            terms.append(d if y else -d)
    return float(np.mean(terms))


def score_kl(scores, attr, num_bins: int = 10, eps: float = 1e-8) -> float:
    """Symmetrised KL divergence (``KL(P_a||P_b) + KL(P_b||P_a)``) between
    the histograms (``num_bins`` bins on [0, 1]) of ``scores`` of the
    protected groups, averaged over the group pairs."""
    hists = []
    for a in np.unique(attr):
        h, _ = np.histogram(scores[attr == a], bins=num_bins, range=(0, 1))
        h = h / max(h.sum(), 1) + eps
        hists.append(h / h.sum())
    kls = [float(np.sum(p * np.log(p / q)) + np.sum(q * np.log(q / p)))
           for p, q in combinations(hists, 2)]
    return float(np.mean(kls)) if kls else float('nan')


def check_protected_attribute(meta: dict, protected_key: Optional[str],
                              protected_attribute: Optional[str],
                              who: str) -> None:
    """Raise a ``ValueError`` when the dataset ``meta`` names a protected
    key or attribute other than the given ones (a None on either side is
    not checked)."""
    for what, mine in (('protected_key', protected_key),
                       ('protected_attribute', protected_attribute)):
        theirs = meta.get(what)
        if mine is not None and theirs is not None and mine != theirs:
            raise ValueError(
                f'{who}: {what}={mine!r}, but the dataset names its '
                f'protected attribute {what}={theirs!r}; set {what}='
                f'{theirs!r} (fairness must be measured w.r.t. the attribute '
                'the data and the de-biasing are about).')


@METRICS.register_module()
class FairnessMetric(BaseMetric, ResultsFileMetric):
    """Fairness of a classifier w.r.t. a protected attribute (Ramaswamy et
    al., CVPR 2021), beside accuracy and AP.

    Reads ``gt_label``, ``pred_score`` and the protected attribute
    (``protected_key``, default the dataset's ``bias_label``) of each sample.
    Keys (prefix ``fairness``): ``accuracy`` (%), ``AP`` (%, binary: of the
    positive class; multi-class: mean one-vs-rest), ``DEO`` (difference in
    equal opportunity: positive class when binary, mean over classes
    otherwise), ``BA`` (bias amplification) and ``KL`` (symmetrised KL of the
    positive-class score distributions between protected groups; mean over
    classes when multi-class).

    The statistics are :meth:`calculate` (arrays in, dict out, no I/O);
    this metric writes no file (its :class:`ResultsFileMetric`
    ``result_file`` is None: ``MetricsFileHook`` passes it over).

    When the evaluated dataset's metainfo names its protected attribute
    (``protected_key``, ``protected_attribute``, as ``BinaryColoredMNIST``
    does), the metric refuses a dataset whose protected key differs from
    ``protected_key``, or whose attribute differs from
    ``protected_attribute`` when that is set: fairness is then measured
    w.r.t. the attribute a config means (e.g. the one latent de-biasing
    flips, see :func:`check_protected_attribute`).

    Args:
        protected_key (str): Data-sample key of the protected attribute.
            Defaults to ``'bias_label'``.
        positive_class (int): Positive class of a binary task. Defaults to 1.
        num_bins (int): Histogram bins of the KL. Defaults to 10.
        collect_device (str): Defaults to ``'cpu'``.
        prefix (str, optional): Defaults to ``'fairness'``.
        protected_attribute (str, optional): Name of the protected attribute
            (e.g. ``'color'``), checked against the dataset's metainfo.
            Defaults to None (not checked).
        ba_correlated (Sequence[Sequence[int]], optional): The ``(class,
            attribute value)`` cells positively correlated in the training
            data, the ``y_at = 1`` of bias amplification (needed on a
            balanced test set). Defaults to None: read off the evaluated
            data.
    """

    default_prefix = 'fairness'

    def __init__(self, protected_key: str = 'bias_label',
                 positive_class: int = 1, num_bins: int = 10,
                 collect_device: str = 'cpu', prefix: Optional[str] = None,
                 protected_attribute: Optional[str] = None,
                 ba_correlated: Optional[Sequence[Sequence[int]]] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        # fail when the evaluator is built, not after the first epoch
        require_extra('fairness', 'FairnessMetric (average precision)')
        self.protected_key = protected_key
        self.protected_attribute = protected_attribute
        self.ba_correlated = None if ba_correlated is None else {
            (int(t), int(a)) for t, a in ba_correlated}
        self.positive_class = positive_class
        self.num_bins = num_bins

    @BaseMetric.dataset_meta.setter
    def dataset_meta(self, dataset_meta: Optional[dict]) -> None:
        check_protected_attribute(dataset_meta or {}, self.protected_key,
                                  self.protected_attribute, 'FairnessMetric')
        self._dataset_meta = dataset_meta

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for s in data_samples:
            for key in ('gt_label', 'pred_score', self.protected_key):
                if s.get(key) is None:
                    raise MissingKeyError(
                        f'FairnessMetric: a data sample has no `{key}` '
                        f'(keys: {sorted(s.keys())}); the protected attribute '
                        'comes from `protected_key` '
                        f'(={self.protected_key!r}).')
            self.results.append(
                dict(gt=_scalar(s['gt_label'], 'gt_label'),
                     attr=_scalar(s[self.protected_key], self.protected_key),
                     score=torch.as_tensor(s['pred_score']).float().cpu()
                     .numpy()))

    def compute_metrics(self, results: List[dict]) -> dict:
        """:meth:`calculate` on the collected results."""
        return self.calculate(
            gt=np.array([r['gt'] for r in results]),
            attr=np.array([r['attr'] for r in results]),
            scores=np.stack([r['score'] for r in results]),
            positive_class=self.positive_class,
            num_bins=self.num_bins, ba_correlated=self.ba_correlated)

    @staticmethod
    def calculate(gt: np.ndarray, attr: np.ndarray, scores: np.ndarray,
                  positive_class: int = 1, num_bins: int = 10,
                  ba_correlated=None) -> dict:
        """The keys of the class docstring, from plain arrays (no I/O).

        Args:
            gt (np.ndarray): True class per sample, ``[N]``.
            attr (np.ndarray): Protected attribute per sample, ``[N]``.
            scores (np.ndarray): Class scores, ``[N, C]``.
            positive_class (int): Positive class when ``C == 2``.
            num_bins (int): Histogram bins of the KL.
            ba_correlated (set, optional): ``(class, value)`` cells with
                ``y_at = 1`` in the bias amplification.

        Returns:
            dict: ``accuracy``, ``AP``, ``DEO``, ``BA``, ``KL`` (unprefixed).
        """
        average_precision_score = import_extra(
            'sklearn.metrics', 'fairness',
            'FairnessMetric (average precision)').average_precision_score
        gt, attr, scores = np.asarray(gt), np.asarray(attr), np.asarray(scores)
        pred = scores.argmax(1)
        num_classes = scores.shape[1]
        binary = num_classes == 2
        classes = [positive_class] if binary else list(range(num_classes))
        aps = [average_precision_score(gt == c, scores[:, c]) for c in classes
               if (gt == c).any()]
        kls = [score_kl(scores[:, c], attr, num_bins) for c in classes]
        return dict(
            accuracy=100.0 * float(np.mean(pred == gt)),
            AP=100.0 * float(np.mean(aps)) if aps else float('nan'),
            DEO=difference_in_equal_opportunity(pred, gt, attr, classes),
            BA=bias_amplification(pred, gt, attr, ba_correlated),
            KL=float(np.nanmean(kls)))

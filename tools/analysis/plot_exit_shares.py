"""Plot which exit the samples of each class took (from a test run).

    python tools/test.py CONFIG CKPT --out preds.pkl
    python tools/analysis/plot_exit_shares.py preds.pkl --out shares.png \\
        [--config CONFIG | --classes climbing diving ...]

One stacked bar per ground-truth class (and one for all samples): the share
of its samples that left at each exit. The table is printed as well.

Bars and rows are named by class: ``--classes`` gives the names, else they
are those of the test dataset of ``--config`` (the config of the test run;
its ``metainfo.classes`` or its dataset type's, read without opening the
data). With neither (or a dataset that names no classes) the class indices
are used and a note says so.
"""
import argparse
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np


def _int(value, what: str, i: int) -> int:
    try:
        return int(np.asarray(value).reshape(-1)[0])
    except Exception as err:
        raise ValueError(f'prediction {i}: {what}={value!r} is not an '
                         f'integer') from err


def exit_shares(results: Sequence[dict]) -> Dict[str, np.ndarray]:
    """Shares of exits per class.

    Args:
        results: Dumped predictions (dicts with ``gt_label`` and
            ``exit_idx``, as ``tools/test.py --out`` writes them).

    Returns:
        dict: ``classes`` (sorted class ids), ``shares`` (``[K, E]``, rows
        sum to 1), ``counts`` (``[K]``), ``overall`` (``[E]``).
    """
    if not results:
        raise ValueError('exit_shares: no predictions')
    pairs = []
    for i, r in enumerate(results):
        missing = [k for k in ('gt_label', 'exit_idx') if r.get(k) is None]
        if missing:
            from occam_plugin.errors import MissingKeyError
            raise MissingKeyError(
                f'prediction {i} lacks {missing} (keys: {sorted(r)}); dump '
                'an OccamNet test run with tools/test.py --out')
        pairs.append((_int(r['gt_label'], 'gt_label', i),
                      _int(r['exit_idx'], 'exit_idx', i)))
    num_exits = max(
        max(e for _, e in pairs) + 1,
        max((len(np.asarray(r['exit_scores'])) for r in results
             if r.get('exit_scores') is not None), default=0))
    classes = sorted({y for y, _ in pairs})
    counts = np.zeros((len(classes), num_exits))
    for y, e in pairs:
        counts[classes.index(y), e] += 1
    totals = counts.sum(1)
    return dict(classes=classes, shares=counts / totals[:, None],
                counts=totals, overall=counts.sum(0) / totals.sum())


def class_labels(classes: Sequence[int],
                 names: Optional[Sequence[str]]) -> List[str]:
    """The label of each class id: its name, or the id when ``names`` is
    None.

    Raises:
        ValueError: ``names`` has no entry for one of the ``classes``.
    """
    if names is None:
        return [str(c) for c in classes]
    unnamed = [c for c in classes if not 0 <= c < len(names)]
    if unnamed:
        raise ValueError(f'class ids {unnamed} of the predictions have no '
                         f'name in the {len(names)} class names {list(names)}')
    return [names[c] for c in classes]


def config_class_names(config: str) -> Optional[List[str]]:
    """Class names of the test dataset of ``config`` (a file), or None."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import occam_plugin  # noqa: F401  (registers the datasets)
    from occam_plugin.visualization import dataset_class_names
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    loader = cfg.get('test_dataloader') or {}
    return dataset_class_names(loader.get('dataset'))


def plot_exit_shares(stats: dict, out_file: str,
                     class_names: Optional[List[str]] = None) -> str:
    """Stacked bars of :func:`exit_shares`, labelled by ``class_names``
    (indexed by class id; None: the ids); returns ``out_file``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names = class_labels(stats['classes'], class_names) + ['all']
    shares = np.vstack([stats['shares'], stats['overall'][None]])
    fig, ax = plt.subplots(figsize=(max(4, 0.8 * len(names) + 2), 3.5))
    bottom = np.zeros(len(names))
    for k in range(shares.shape[1]):
        ax.bar(names, shares[:, k], bottom=bottom, label=f'exit {k}')
        bottom += shares[:, k]
    ax.set_ylabel('share of samples')
    ax.set_ylim(0, 1)
    ax.set_title('Exit taken per class')
    ax.legend(loc='upper left', bbox_to_anchor=(1, 1), fontsize=8)
    plt.setp(ax.get_xticklabels(), rotation=30, ha='right')
    fig.tight_layout()
    from occam_plugin.fileio import atomic_path, suffixed_temp
    with atomic_path(out_file, suffixed_temp(out_file)) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return out_file


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('predictions', help='.pkl from tools/test.py --out')
    parser.add_argument('--out', required=True, help='output PNG')
    names = parser.add_mutually_exclusive_group()
    names.add_argument('--config', help='config of the test run (a file or '
                       'a shipped config\'s name): the class names of its '
                       'test dataset')
    names.add_argument('--classes', nargs='+',
                       help='class names, in class id order')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the --out file if it exists')
    args = parser.parse_args(argv)
    if not osp.isfile(args.predictions):
        raise SystemExit(f'predictions file {args.predictions!r} does not '
                         'exist.')
    from occam_plugin.fileio import refuse_overwrite
    try:
        refuse_overwrite(args.out, args.overwrite, '--out')
    except OSError as err:
        raise SystemExit(f'error: {err}') from err
    # not pickle.load / mmengine.load: a crafted .pkl would run code
    from occam_plugin.evaluation import load_predictions
    if args.config is not None:  # a file or a shipped config's name
        from occam_plugin import resolve_config
        try:
            args.config = resolve_config(args.config)
        except FileNotFoundError as err:
            raise SystemExit(f'--config: {err}') from err
    stats = exit_shares(load_predictions(args.predictions))
    names = args.classes
    if args.config is not None:
        names = config_class_names(args.config)
        if names is None:
            print(f'note: the test dataset of {args.config} names no '
                  'classes; the classes are shown by index (--classes '
                  'names them).', file=sys.stderr)
    elif names is None:
        print('note: no class names given; the classes are shown by index '
              '(--config CONFIG, the config of the test run, or --classes '
              'names them).', file=sys.stderr)
    try:
        labels = class_labels(stats['classes'], names)
    except ValueError as err:
        raise SystemExit(f'error: {err}') from err
    num_exits = stats['shares'].shape[1]
    print('class\t' + '\t'.join(f'exit{k}' for k in range(num_exits)) +
          '\tn')
    for label, row, n in zip(labels, stats['shares'], stats['counts']):
        print(f'{label}\t' + '\t'.join(f'{v:.3f}' for v in row) +
              f'\t{int(n)}')
    print('all\t' + '\t'.join(f'{v:.3f}' for v in stats['overall']) +
          f'\t{int(stats["counts"].sum())}')
    print(plot_exit_shares(stats, args.out, names))
    return stats


if __name__ == '__main__':
    from occam_plugin.cli import run_tool
    run_tool(main)
    sys.exit(0)

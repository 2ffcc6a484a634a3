"""Which checkpoint is "the best": a model selection rule by name.

The field's conventions (SubpopBench's ``model_selection.py``): the best
validation worst-group accuracy when val has bias labels
(``ValWorstAccAttributeYes``), the best validation worst-class accuracy when
it has none (``ValWorstAccAttributeNo``), or the best validation accuracy
(``ValMeanAcc``). A rule names the metric key that mmengine's
``CheckpointHook`` keeps the best checkpoint of (``save_best``,
``rule='greater'``), checks that validation produces it, and records which
rule chose the checkpoint.
"""
import os.path as osp
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from mmpretrain.registry import HOOKS
from ...evaluation.metrics.bias_metric import HOW_TO_ANNOTATE, BiasMetric
from ...fileio import read_json, write_json
from ..runner.checkpoint import CheckpointError
from .train_guard_hook import missing_group_annotations

__all__ = [
    'empty_val_groups', 'ModelSelectionCheckpointHook', 'SELECTION_FILE'
]

#: rule -> (the BiasMetric key it maximises, unprefixed; what it is)
SELECTION_RULES = {
    'worst_group': ('worst_group_acc',
                    'validation worst-group accuracy (bias labels on val)'),
    'worst_class': ('worst_class_acc',
                    'validation worst-class accuracy (no bias labels)'),
    'accuracy': ('acc', 'validation accuracy (no bias labels)'),
}
#: the file in the work dir that names the rule and the checkpoint it chose
SELECTION_FILE = 'model_selection.json'


def empty_val_groups(dataset, num_groups: Optional[int] = None) -> list:
    """The groups of ``dataset`` (ids, with their ``group_names`` where it
    has them) that no sample belongs to; read from the annotations
    (``get_data_info``, no image loaded).

    Args:
        dataset: The val set.
        num_groups (int, optional): The groups expected when the dataset's
            ``metainfo`` has no ``num_groups`` (``BiasMetric(num_groups)``);
            without either, the largest id seen + 1.
    """
    from ...datasets.training_set_info import training_set_info
    info = training_set_info(dataset)
    groups = info['group_idx']
    if groups is None:
        return []
    present = set(groups[groups >= 0].tolist())
    expected = info['num_groups'] or num_groups or max(present) + 1
    names = (getattr(dataset, 'metainfo', {}) or {}).get('group_names')
    return [f'{g} ({names[g]})' if names is not None and g < len(names)
            else str(g) for g in range(int(expected)) if g not in present]


@HOOKS.register_module()
class ModelSelectionCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` whose best checkpoint is chosen by a
    model selection rule.

    ``default_hooks.checkpoint = dict(type='ModelSelectionCheckpointHook',
    selection='worst_group')`` (other options: those of ``CheckpointHook``;
    the ``save_best='auto'`` of ``configs/_base_/default_runtime.py`` is
    replaced by the rule's key). Rules (:data:`SELECTION_RULES`):

    - ``'worst_group'``: the best ``bias/worst_group_acc`` on val; val needs
      bias labels (``group_idx``) and a ``BiasMetric``;
    - ``'worst_class'``: the best ``bias/worst_class_acc`` on val (no bias
      labels needed);
    - ``'accuracy'``: the best ``bias/acc`` on val (no bias labels needed).

    Ties keep the earlier checkpoint (``rule='greater'``), as SubpopBench's
    argmax. Before training, a rule whose key the val evaluator cannot
    produce stops the run, naming the rule and what is missing (no
    validation, no ``BiasMetric``, val samples without ``group_idx``, for
    ``'worst_group'`` a group with no val sample: the worst over the other
    groups is not the worst group); after each validation, so does a key
    missing from the metrics (or, for ``'worst_group'``, a
    ``num_empty_groups`` above 0).

    What records the rule: after each validation, ``<work_dir>/
    model_selection.json`` holds ``rule``, ``description``, ``metric``,
    ``best`` (``checkpoint`` file name, ``value``, ``epoch``, ``iter``) and
    ``history`` (every validation's value); the log and the console say
    when the rule chooses a new checkpoint and, at the end of training,
    which one it chose.

    Args:
        selection (str): ``'worst_group'``, ``'worst_class'`` or
            ``'accuracy'``.
        metric_key (str, optional): The logged key the rule maximises, for
            a metric other than ``BiasMetric`` with its default prefix
            (e.g. ``'accuracy/top1'`` of mmpretrain's ``Accuracy`` for
            ``'accuracy'``). Defaults to None: ``bias/<key>`` of
            :data:`SELECTION_RULES`.
        **kwargs: ``CheckpointHook``'s arguments; ``save_best`` may only be
            ``'auto'`` (replaced) or the rule's key, ``rule`` only
            ``'greater'``.
    """

    def __init__(self, selection: str, metric_key: Optional[str] = None,
                 **kwargs):
        if selection not in SELECTION_RULES:
            raise ValueError(
                f'ModelSelectionCheckpointHook: selection={selection!r}; '
                f'expected one of {sorted(SELECTION_RULES)}.')
        suffix, self.description = SELECTION_RULES[selection]
        self.selection = selection
        self.metric_key = metric_key or f'{BiasMetric.default_prefix}/' \
                                        f'{suffix}'
        save_best = kwargs.pop('save_best', 'auto')
        if save_best not in ('auto', None, self.metric_key, [self.metric_key]):
            raise ValueError(
                f'ModelSelectionCheckpointHook: save_best={save_best!r} '
                f"conflicts with selection={selection!r}, which keeps the "
                f'best {self.metric_key!r}; drop save_best (or set '
                'metric_key for another metric).')
        rule = kwargs.pop('rule', None)
        if rule not in (None, 'greater', ['greater']):
            raise ValueError(
                f'ModelSelectionCheckpointHook: rule={rule!r}, but the '
                f'selection rules keep the greatest {self.metric_key!r}; '
                "drop rule (or set it to 'greater').")
        super().__init__(save_best=self.metric_key, rule='greater', **kwargs)
        self.history = []
        self.best = None

    # -- before training: can validation give the key? -----------------
    def before_train(self, runner) -> None:
        super().before_train(runner)
        why = self.unavailable(runner)
        if why:
            raise ValueError(
                f"model selection rule {self.selection!r} (the best "
                f'{self.metric_key}) cannot choose a checkpoint: {why}')
        self._load_record(runner)
        runner.logger.info(
            f'model selection: rule {self.selection!r}, the checkpoint with '
            f'the best {self.metric_key} ({self.description})')

    def unavailable(self, runner) -> Optional[str]:
        """Why the val evaluator will not produce :attr:`metric_key`, as
        far as can be told before validating; None when it will (or
        cannot be told: a custom ``metric_key``)."""
        if runner.cfg.get('val_cfg') is None or \
                runner.cfg.get('val_dataloader') is None:
            return ('this run does not validate (val_cfg / val_dataloader '
                    'unset, or --no-validate); validate, or drop the rule.')
        suffix = SELECTION_RULES[self.selection][0]
        have = runner.val_evaluator.metrics
        keys = {m.prefixed(suffix) for m in have if isinstance(m, BiasMetric)}
        if self.metric_key not in keys and \
                self.metric_key == f'{BiasMetric.default_prefix}/{suffix}':
            return (f'the val evaluator has no BiasMetric giving '
                    f'{self.metric_key!r} (it has '
                    f'{[type(m).__name__ for m in have]}); add '
                    "dict(type='BiasMetric') to val_evaluator, or set "
                    'metric_key to a key it logs.')
        # another metric's key (metric_key): checked after validation
        if self.selection == 'worst_group':
            why = missing_group_annotations(
                [('the rule', ('group_idx', ), '')],
                runner.val_dataloader.dataset, split='val')
            if why:
                return (f'{why} Without bias labels on val, choose '
                        "selection='worst_class' or 'accuracy'.")
            metric = next((m for m in have if isinstance(m, BiasMetric)
                           and m.prefixed(suffix) == self.metric_key), None)
            empty = empty_val_groups(runner.val_dataloader.dataset,
                                     getattr(metric, 'num_groups', None))
            if empty:
                return self._empty_groups_message(empty)
        return None

    def _empty_groups_message(self, empty) -> str:
        return (f'val has no sample of group(s) {", ".join(empty)}, so its '
                'worst-group accuracy is the worst over the other groups '
                'only and a checkpoint chosen by it was never scored on '
                "those. Use a val split with every group, or "
                "selection='worst_class' (or 'accuracy').")

    # -- after each validation: check, choose, record -------------------
    def after_val_epoch(self, runner, metrics) -> None:
        if self.metric_key not in (metrics or {}):
            hint = HOW_TO_ANNOTATE if self.selection == 'worst_group' else \
                'set metric_key to one of the keys above.'
            raise ValueError(
                f'model selection rule {self.selection!r} chooses the best '
                f'{self.metric_key}, but validation returned no such key '
                f'(it returned {sorted(metrics or {})}). {hint}')
        # the backstop of the check before training (a val set whose
        # groups it could not count): the metric's own count of empties
        head = self.metric_key[:-len('worst_group_acc')]
        empty_key = head + 'num_empty_groups'
        if self.selection == 'worst_group' and \
                self.metric_key.endswith('worst_group_acc') and \
                int(metrics.get(empty_key) or 0) > 0:
            num = int(metrics.get(head + 'num_groups') or 0)
            present = {k[len(head + 'acc_group_'):] for k in metrics
                       if k.startswith(head + 'acc_group_')}
            empty = ([str(g) for g in range(num) if str(g) not in present]
                     if present else [f'{metrics[empty_key]} of {num}'])
            raise ValueError(
                f'model selection rule {self.selection!r} (the best '
                f'{self.metric_key}) cannot choose a checkpoint: '
                + self._empty_groups_message(empty))
        before = runner.message_hub.get_info('best_ckpt')
        super().after_val_epoch(runner, metrics)
        value = float(metrics[self.metric_key])
        entry = dict(epoch=runner.epoch, iter=runner.iter, value=value)
        self.history.append(entry)
        chosen = runner.message_hub.get_info('best_ckpt')
        if chosen and chosen != before:
            self.best = dict(entry, checkpoint=osp.basename(chosen))
            self._note(runner,
                       f'model selection ({self.selection}): '
                       f'{self.metric_key} {value:.4g} is the best so far; '
                       f'{self.best["checkpoint"]} is the chosen checkpoint')
        self._write(runner)

    def after_train(self, runner) -> None:
        super().after_train(runner)
        if self.best is None:
            return
        self._note(runner,
                   f'model selection rule {self.selection!r} '
                   f'({self.description}) chose {self.best["checkpoint"]}: '
                   f'{self.metric_key} {self.best["value"]:.4g} at epoch '
                   f'{self.best["epoch"]}, iter {self.best["iter"]}; '
                   f'recorded in {osp.join(runner.work_dir, SELECTION_FILE)}')

    # -- the record --------------------------------------------------------
    def record(self) -> dict:
        """What ``model_selection.json`` holds."""
        return dict(rule=self.selection, description=self.description,
                    metric=self.metric_key, greater=True, best=self.best,
                    history=self.history)

    def _write(self, runner) -> None:
        if is_main_process():
            write_json(osp.join(runner.work_dir, SELECTION_FILE),
                       self.record(), indent=2, sort_keys=True)

    def _load_record(self, runner) -> None:
        """A resumed run continues the record of the run it resumes: the
        validations up to its epoch, and the checkpoint chosen then."""
        path = osp.join(runner.work_dir, SELECTION_FILE)
        if runner.iter == 0 or not osp.isfile(path):
            return
        try:
            old = read_json(path)
            if not isinstance(old, dict):
                raise ValueError(f'{path}: holds a {type(old).__name__}, '
                                 'expected a JSON object')
            for h in old.get('history', []):
                int(h['iter'])
        except (ValueError, TypeError, KeyError) as err:
            raise CheckpointError(
                f'{err}: the model-selection record of this work dir is '
                'corrupt, so the resumed run cannot tell which checkpoint '
                f'its rule chose so far. Restore {path} from a backup, or '
                'move it away to resume with a new record (listing only the '
                'validations from this resume on).') from err
        if old.get('rule') != self.selection or \
                old.get('metric') != self.metric_key:
            return  # another rule's record: this run starts its own
        self.history = [h for h in old.get('history', [])
                        if h['iter'] <= runner.iter]
        best = old.get('best')
        if best and best['iter'] <= runner.iter:
            self.best = best

    @staticmethod
    def _note(runner, line: str) -> None:
        """``line`` in the log and on the console (a quiet console shows
        only the logger's warnings, so it is printed there)."""
        runner.logger.info(line)
        if getattr(runner, 'console', 'verbose') == 'quiet' and \
                is_main_process():
            print(line, flush=True)

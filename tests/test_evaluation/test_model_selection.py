"""Model selection rules: the best checkpoint by val
worst-group, worst-class or plain accuracy, chosen by
ModelSelectionCheckpointHook, checked against the values the run logged,
and the rule named in model_selection.json and on the console."""
import glob
import json
import os
import os.path as osp

import pytest
from mmengine.hooks import Hook

import occam_plugin  # noqa: F401  (registers)
from mmpretrain.registry import HOOKS, METRICS
from occam_plugin.evaluation.metrics import BiasMetric

from tests.helpers import load_tool
from tests.helpers import (
    WATERBIRDS_ROWS,
    tiny_waterbirds_options,
    waterbirds_config,
    write_waterbirds,
)


def test_rule_options_are_checked():
    hook = HOOKS.build(dict(type='ModelSelectionCheckpointHook',
                            selection='worst_class', save_best='auto'))
    assert hook.key_indicators == ['bias/worst_class_acc']
    assert hook.rules == ['greater']
    assert HOOKS.build(dict(type='ModelSelectionCheckpointHook',
                            selection='accuracy', metric_key='accuracy/top1')
                       ).key_indicators == ['accuracy/top1']
    with pytest.raises(ValueError, match=r"selection='best'; expected one "
                       r"of \['accuracy', 'worst_class', 'worst_group'\]"):
        HOOKS.build(dict(type='ModelSelectionCheckpointHook',
                         selection='best'))
    with pytest.raises(ValueError, match="save_best='accuracy/top1' "
                       "conflicts with selection='worst_group'"):
        HOOKS.build(dict(type='ModelSelectionCheckpointHook',
                         selection='worst_group', save_best='accuracy/top1'))
    with pytest.raises(ValueError, match="rule='less'"):
        HOOKS.build(dict(type='ModelSelectionCheckpointHook',
                         selection='worst_group', rule='less'))


def _scalars(work):
    """Every validation's logged metrics, from the vis backend's file
    (written by mmengine's LoggerHook, not by the hook under test)."""
    path, = glob.glob(osp.join(str(work), '*', 'vis_data', 'scalars.json'))
    with open(path) as f:
        rows = [json.loads(line) for line in f]
    return [r for r in rows if 'bias/acc' in r]


#: the values each validation reports, by key: each rule's best is at
#: another epoch (worst_group: a tie at 30, the earlier, epoch 2, wins)
SCRIPT = dict(worst_group_acc=[10.0, 30.0, 20.0, 30.0],
              worst_class_acc=[5.0, 0.0, 40.0, 10.0],
              acc=[0.0, 0.0, 0.0, 70.0])
BEST_EPOCH = dict(worst_group=2, worst_class=3, accuracy=4)
EPOCHS = 4


@METRICS.register_module(force=True)
class ScriptedBiasMetric(BiasMetric):
    """BiasMetric whose rule keys take the values of :data:`SCRIPT` (a
    tiny untrained model scores every epoch alike)."""

    calls = 0

    def compute_metrics(self, results):
        metrics = super().compute_metrics(results)
        for k, values in SCRIPT.items():
            metrics[k] = values[self.calls]
        self.calls += 1
        return metrics


@pytest.fixture(scope='module')
def waterbirds(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('wb')
    root = write_waterbirds(tmp / 'waterbird_complete95_forest2water2')
    return waterbirds_config(tmp, 'resnet18'), root


def _options(root, selection, epochs=EPOCHS):
    opts = [o for o in tiny_waterbirds_options(root)
            if not o.startswith('train_cfg.max_epochs')]
    hook = 'default_hooks.checkpoint'
    return opts + [f'train_cfg.max_epochs={epochs}',
                   f'{hook}.type=ModelSelectionCheckpointHook',
                   f'{hook}.selection={selection}']


@pytest.mark.slow
@pytest.mark.parametrize('selection, key', [
    ('worst_group', 'bias/worst_group_acc'),
    ('worst_class', 'bias/worst_class_acc'),
    ('accuracy', 'bias/acc')])
def test_rule_chooses_the_best_checkpoint_and_is_named(
        waterbirds, tmp_path, capsys, selection, key):
    config, root = waterbirds
    work = tmp_path / 'run'
    load_tool('train.py').main(
        [config, '--work-dir', str(work), '--cfg-options',
         *_options(root, selection),
         'val_evaluator.1.type=ScriptedBiasMetric'])
    out = capsys.readouterr().out
    logged = _scalars(work)
    assert [r['step'] for r in logged] == list(range(1, EPOCHS + 1))
    values = [r[key] for r in logged]
    assert values == SCRIPT[key.split('/')[1]]  # what the metric said
    best = BEST_EPOCH[selection]
    expected = f'best_{key.replace("/", "_")}_epoch_{best}.pth'
    # the one best checkpoint kept is the rule's
    assert [osp.basename(p) for p in glob.glob(
        osp.join(str(work), 'best_*.pth'))] == [expected]
    with open(osp.join(str(work), 'model_selection.json')) as f:
        record = json.load(f)
    assert record['rule'] == selection and record['metric'] == key
    assert record['best'] == dict(checkpoint=expected, epoch=best,
                                  iter=2 * best, value=values[best - 1])
    assert [h['value'] for h in record['history']] == values
    # the console names the rule and the checkpoint it chose
    assert f"model selection rule {selection!r}" in out
    assert f'chose {expected}' in out


NO_BIAS_VAL = '''
val_dataloader = dict(dataset=dict(
    format=None, ann_file='metadata.csv',
    columns=dict(img='img_filename', label='y', split='split'),
    split_values=dict(train=0, val=1, test=2),
    label_values={0: 'landbird', 1: 'waterbird'}))
'''


@pytest.mark.slow
def test_worst_group_without_bias_labels_on_val_stops(waterbirds, tmp_path):
    config, root = waterbirds
    mine = str(tmp_path / 'no_bias_val.py')
    with open(mine, 'w') as f:
        f.write(f'_base_ = [{config!r}]\n' + NO_BIAS_VAL)
    with pytest.raises(ValueError) as err:
        load_tool('train.py').main(
            [mine, '--work-dir', str(tmp_path / 'run'), '--cfg-options',
             *_options(root, 'worst_group')])
    msg = str(err.value)
    assert "model selection rule 'worst_group'" in msg
    assert 'bias/worst_group_acc' in msg
    assert 'every val sample' in msg and '`group_idx`' in msg
    assert 'BiasAnnotatedDataset' in msg
    assert "selection='worst_class' or 'accuracy'" in msg
    assert not glob.glob(osp.join(str(tmp_path / 'run'), '*.pth'))
    # without bias labels, worst-class selection runs
    work = tmp_path / 'run2'
    load_tool('train.py').main(
        [mine, '--work-dir', str(work), '--cfg-options',
         *_options(root, 'worst_class', epochs=1)])
    with open(osp.join(str(work), 'model_selection.json')) as f:
        assert json.load(f)['best']['checkpoint'] == \
            'best_bias_worst_class_acc_epoch_1.pth'
    # and the val metrics file says what is missing
    path, = glob.glob(osp.join(str(work), '*', 'bias_metrics.json'))
    with open(path) as f:
        assert 'no `group_idx`' in json.load(f)['missing_annotations']
    assert os.path.exists(osp.join(str(work), 'epoch_1.pth'))


def test_keys_validation_cannot_give_are_named():
    from types import SimpleNamespace

    from mmpretrain.evaluation import Accuracy

    def runner(*metrics, val_cfg=dict()):
        return SimpleNamespace(
            cfg=dict(val_cfg=val_cfg, val_dataloader=dict()),
            val_evaluator=SimpleNamespace(metrics=list(metrics)))

    def hook(selection, **kw):
        return HOOKS.build(dict(type='ModelSelectionCheckpointHook',
                                selection=selection, **kw))

    why = hook('worst_class').unavailable(runner(Accuracy()))
    assert "no BiasMetric giving 'bias/worst_class_acc'" in why
    assert "['Accuracy']" in why and "dict(type='BiasMetric')" in why
    assert 'does not validate' in hook('accuracy').unavailable(
        runner(BiasMetric(), val_cfg=None))
    assert hook('accuracy').unavailable(runner(BiasMetric())) is None
    # another metric's key: known only after validating
    acc = hook('accuracy', metric_key='accuracy/top1')
    assert acc.unavailable(runner(Accuracy(), BiasMetric())) is None
    with pytest.raises(ValueError, match=r"rule 'accuracy' chooses the best "
                       r"accuracy/top1, but validation returned no such key "
                       r"\(it returned \['bias/acc'\]\)"):
        acc.after_val_epoch(None, {'bias/acc': 1.0})


def test_worst_group_with_a_group_absent_from_val_stops(tmp_path):
    """Val without a waterbird/water sample: the worst group over the
    other three is not the worst group, so the rule refuses before training
    (naming the group) and, as a backstop, after a validation whose metric
    counts an empty group."""
    from types import SimpleNamespace

    from mmpretrain.registry import DATASETS
    # train: groups 0 0 1 3 3 2; val: groups 0 1 2 (no group 3)
    rows = [r for r in WATERBIRDS_ROWS if not (r[2] == 1 and r[:2] == (1, 1))]
    root = write_waterbirds(tmp_path / 'wb', rows)
    val = DATASETS.build(dict(type='BiasAnnotatedDataset',
                              format='waterbirds', data_root=root,
                              split='val'))
    runner = SimpleNamespace(
        cfg=dict(val_cfg=dict(), val_dataloader=dict()),
        val_evaluator=SimpleNamespace(metrics=[BiasMetric()]),
        val_dataloader=SimpleNamespace(dataset=val))
    hook = HOOKS.build(dict(type='ModelSelectionCheckpointHook',
                            selection='worst_group'))
    why = hook.unavailable(runner)
    assert why is not None
    assert 'no sample of group(s) 3 (waterbird/water)' in why
    assert "selection='worst_class'" in why
    # worst_class does not need the groups
    assert HOOKS.build(dict(type='ModelSelectionCheckpointHook',
                            selection='worst_class')).unavailable(
        runner) is None
    metrics = {'bias/worst_group_acc': 50.0, 'bias/num_groups': 4,
               'bias/num_empty_groups': 1, 'bias/acc_group_0': 50.0,
               'bias/acc_group_1': 100.0, 'bias/acc_group_2': 100.0}
    with pytest.raises(ValueError, match=r'no sample of group\(s\) 3, so'):
        hook.after_val_epoch(None, metrics)


# --- a resume after two stops; a corrupt record -----------------

#: what each validation of the next runs reports as worst_class_acc; None:
#: the run stops there (as if killed during that validation)
PLAN = []


@METRICS.register_module(force=True)
class PlannedBiasMetric(BiasMetric):
    """BiasMetric whose worst_class_acc is the next value of :data:`PLAN`,
    across runs (resumed runs too)."""

    def compute_metrics(self, results):
        metrics = super().compute_metrics(results)
        value = PLAN.pop(0)
        if value is None:
            raise RuntimeError('simulated kill during validation')
        metrics['worst_class_acc'] = value
        return metrics


@HOOKS.register_module(force=True)
class StopInEpochThreeHook(Hook):
    """Stops the run once in the training of epoch 3 (before it is
    saved), as a kill would."""

    stopped = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.epoch == 2 and not self.stopped:
            self.stopped.append(True)
            raise RuntimeError('simulated kill in epoch 3')


@pytest.mark.slow
def test_a_second_stop_after_a_catch_up_best_keeps_that_best(
        waterbirds, tmp_path):
    """Stopped during the validation of epoch 2; the resumed run validates
    it first (30, a new best: best_*_epoch_2.pth), then stops in epoch 3;
    resumed again, epoch 3 scores 20: epoch 2 stays the best, the only
    best_*.pth. (The second resume read epoch_2.pth's hub, saved before
    that validation: best 10, so 20 made a second best file and was
    chosen.)"""
    config, root = waterbirds
    derived = tmp_path / 'stopping.py'
    derived.write_text(f'_base_ = [{config!r}]\n'
                       "custom_hooks = [dict(type='StopInEpochThreeHook')]\n")
    work = tmp_path / 'run'
    argv = [str(derived), '--work-dir', str(work), '--cfg-options',
            *_options(root, 'worst_class', epochs=3),
            'val_evaluator.1.type=PlannedBiasMetric']
    train = load_tool('train.py').main
    PLAN[:] = [10.0, None, 30.0, 20.0]
    StopInEpochThreeHook.stopped.clear()
    with pytest.raises(RuntimeError, match='during validation'):
        train(argv)
    with pytest.raises(RuntimeError, match='in epoch 3'):
        train(argv[:3] + ['--resume'] + argv[3:])
    assert PLAN == [20.0]  # the catch-up validation of epoch 2 ran
    train(argv[:3] + ['--resume'] + argv[3:])
    assert PLAN == []
    best = 'best_bias_worst_class_acc_epoch_2.pth'
    assert sorted(osp.basename(p) for p in glob.glob(
        osp.join(str(work), 'best_*.pth'))) == [best]
    with open(osp.join(str(work), 'model_selection.json')) as f:
        record = json.load(f)
    assert record['best']['checkpoint'] == best
    assert record['best']['value'] == 30.0


@pytest.mark.slow
def test_a_corrupt_record_on_resume_names_the_file_and_the_fix(
        waterbirds, tmp_path):
    config, root = waterbirds
    work = tmp_path / 'run'
    argv = [config, '--work-dir', str(work), '--cfg-options',
            *_options(root, 'worst_class', epochs=1)]
    train = load_tool('train.py').main
    train(argv)
    record = work / 'model_selection.json'
    record.write_text('{"rule": "worst_class", "hist')  # cut off
    more = [o.replace('max_epochs=1', 'max_epochs=2') for o in argv]
    with pytest.raises(SystemExit) as err:
        train(more[:3] + ['--resume'] + more[3:])
    msg = str(err.value)
    assert msg.startswith('error: ') and str(record) in msg, msg
    assert 'corrupt' in msg and 'move it away' in msg
    assert record.read_text() == '{"rule": "worst_class", "hist'

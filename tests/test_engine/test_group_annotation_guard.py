"""Methods that read groups stop before training on data without them:
TrainGuardHook names the missing annotation and how to give
it, instead of GroupDRO's "give num_groups"."""
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.dataset import BaseDataset

import occam_plugin  # noqa: F401  (registers)
from mmpretrain.registry import HOOKS, MODELS
from occam_plugin.engine.hooks.train_guard_hook import group_needs


@pytest.fixture(autouse=True)
def _scope():
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')


class _Tiny(BaseDataset):
    """Four 4x4 images; ``fields`` go into every sample's data info."""

    def __init__(self, fields, pack='PackBiasInputs'):
        self.fields = fields
        super().__init__(
            ann_file='', serialize_data=False,
            metainfo=dict(classes=('a', 'b')),
            pipeline=[dict(type='RandomFlip', prob=0.5),
                      dict(type=pack)])

    def load_data_list(self):
        return [dict(img=np.zeros((4, 4, 3), np.uint8), gt_label=i % 2,
                     **{k: v[i] for k, v in self.fields.items()})
                for i in range(4)]


def _model(method, num_exits=1):
    head = nn.Module()
    head.method = MODELS.build(method)
    head.num_exits = num_exits
    model = nn.Module()
    model.head = head
    return model


def _before_train(model, dataset):
    hook = HOOKS.build(dict(type='TrainGuardHook', check_num_classes=False))
    runner = SimpleNamespace(
        model=model, train_dataloader=SimpleNamespace(dataset=dataset))
    hook.before_train(runner)


GROUPS = dict(group_idx=[0, 1, 2, 3])


@pytest.mark.parametrize('method', [
    dict(type='GroupDRO'), dict(type='GroupDRO', num_groups=4),
    dict(type='GroupUpweighting'), dict(type='PGILoss', group_key='group_idx'),
    dict(type='PGILoss')])  # auto on a plain model: needs groups too
def test_no_group_idx_stops_naming_it_and_how(method):
    with pytest.raises(ValueError) as err:
        _before_train(_model(method), _Tiny({}))
    msg = str(err.value)
    assert f"{method['type']} (model.head.method) reads" in msg
    assert '`group_idx`' in msg and 'has none' in msg
    assert 'BiasAnnotatedDataset' in msg and 'PackBiasInputs' in msg
    assert 'Giving num_groups cannot help' in msg


def test_groups_dropped_by_the_pipeline_are_named():
    with pytest.raises(ValueError, match="end the pipeline with "
                       r"dict\(type='PackBiasInputs'\)"):
        _before_train(_model(dict(type='GroupDRO')),
                      _Tiny(GROUPS, pack='PackInputs'))


def _draws(seed=0):
    random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)


def _next():
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_annotated_data_and_methods_without_groups_pass():
    _draws()
    expected = _next()
    for args in [(dict(type='GroupDRO'), _Tiny(GROUPS)),
                 # auto PGI on an OccamNet: its bias exit gives the groups
                 (dict(type='PGILoss'), _Tiny({}), 4),
                 (dict(type='PGILoss', group_key='bias_aligned'),
                  _Tiny(dict(bias_aligned=[True, False] * 2)))]:
        model = _model(args[0], *args[2:])
        _draws()
        _before_train(model, args[1])
        # the pipeline's random flip moved none of the random streams
        assert _next() == expected
    assert group_needs(_model(dict(type='SpectralDecoupling'))) == []
    _before_train(_model(dict(type='SpectralDecoupling')), _Tiny({}))


def test_a_new_method_declares_what_it_reads():
    """A method written outside the package gets the same check by
    declaring the keys (AnnotationNeeds); the guard lists no method by
    name."""
    from occam_plugin.models.methods import BaseMethod
    from occam_plugin.models.utils.annotation_needs import AnnotationNeeds

    class ReadsPlace(BaseMethod, AnnotationNeeds):

        def needed_sample_keys(self, model):
            return ('bias_label', )

        def forward(self, per_sample_loss, *args, **kwargs):
            return per_sample_loss.mean()

    MODELS.register_module(name='_TestReadsPlace', module=ReadsPlace,
                           force=True)
    model = _model(dict(type='_TestReadsPlace'))
    assert group_needs(model) == [(
        'ReadsPlace (model.head.method)', ('bias_label', ),
        'Giving num_groups cannot help. Or train without ReadsPlace.')]
    with pytest.raises(ValueError, match=r'ReadsPlace \(model.head.method\) '
                       r'reads `bias_label` from every training sample'):
        _before_train(model, _Tiny(GROUPS))
    _before_train(model, _Tiny(dict(bias_label=[0, 1, 0, 1])))

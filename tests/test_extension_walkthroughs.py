"""The walkthroughs of docs/architecture.md ("How to add ..."), each tried
from outside the package: a file in a temporary folder, imported through
the config's ``custom_imports``."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from tests.helpers import REPO
from occam_plugin.engine.hooks.train_guard_hook import group_needs

#: a new per-sample method: one file
METHOD_FILE = '''
from mmpretrain.registry import MODELS

from occam_plugin.models.methods import BaseMethod
from occam_plugin.models.utils.annotation_needs import AnnotationNeeds


@MODELS.register_module()
class WalkthroughWorstSample(BaseMethod, AnnotationNeeds):
    """The loss of the worst sample of the batch."""

    def needed_sample_keys(self, model):
        return ('group_idx', )

    def forward(self, per_sample_loss, logits, gt, data_samples=None,
                exit_idx=None):
        return per_sample_loss.max()
'''


def write_config(tmp_path, module, base, lines):
    path = osp.join(str(tmp_path), f'{module}_cfg.py')
    with open(path, 'w') as f:
        f.write(f'_base_ = [{base!r}]\n'
                f"custom_imports = dict(imports=['occam_plugin', {module!r}],"
                ' allow_failed_imports=False)\n' + lines)
    return path


def test_a_new_method_is_one_file_and_one_config_line(tmp_path, monkeypatch):
    (tmp_path / 'walkthrough_method.py').write_text(METHOD_FILE)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = Config.fromfile(write_config(
        tmp_path, 'walkthrough_method',
        osp.join(REPO, 'configs', 'mlp', 'mlp_1xb256_100e_colored-mnist.py'),
        "model = dict(head=dict(method=dict(type='WalkthroughWorstSample')))"
        '\n'))
    init_default_scope('mmpretrain')
    model = MODELS.build(cfg.model)
    assert type(model.head.method).__name__ == 'WalkthroughWorstSample'
    # the train guard reads what it declares
    assert [who for who, keys, _ in group_needs(model)] == [
        'WalkthroughWorstSample (model.head.method)']
    torch.manual_seed(0)
    inputs = torch.rand(4, 3, 28, 28)
    samples = [DataSample().set_gt_label(y) for y in (0, 3, 3, 7)]
    gt = torch.tensor([0, 3, 3, 7])
    per_sample = F.cross_entropy(model(inputs, mode='tensor'), gt,
                                 reduction='none')
    loss = model.loss(inputs, samples)['loss']
    assert loss.item() == pytest.approx(per_sample.max().item(), abs=1e-6)
    assert loss.item() > per_sample.mean().item()  # not the plain mean


def test_a_method_that_is_no_base_method_is_refused():
    init_default_scope('mmpretrain')
    with pytest.raises(TypeError, match='must be a BaseMethod.*got Linear'):
        MODELS.build(dict(type='MethodLinearClsHead', num_classes=2,
                          in_channels=2, method=torch.nn.Linear(2, 2)))


#: a new annotated layout: one file (a space-separated list, read by
#: ``read_rows``; the rest is the base's)
LAYOUT_FILE = '''
import os.path as osp

from occam_plugin.datasets import BiasAnnotatedDataset
from occam_plugin.datasets.bias_annotated_dataset import register_layout


@register_layout('walkthrough_pets')
class WalkthroughPets(BiasAnnotatedDataset):
    """pets.txt: '<image> <label> <background> <split>' per line."""

    ANN_FILE = 'pets.txt'
    COLUMNS = dict(img='image', label='label', split='split',
                   attributes=['background'])
    LABEL_VALUES = {0: 'cat', 1: 'dog'}
    ATTRIBUTE_VALUES = dict(background={0: 'indoor', 1: 'outdoor'})
    ALIGNED = dict(background={'cat': 'indoor', 'dog': 'outdoor'})

    def read_rows(self):
        with open(self.ann_path) as f:
            lines = f.read().splitlines()
        return [(f'{self.ann_path}, line {n}',
                 dict(zip(('image', 'label', 'background', 'split'),
                          line.split())))
                for n, line in enumerate(lines, 1)]
'''

#: (image, label, background, split)
PETS = [('a.png', 0, 0, 'train'), ('b.png', 0, 1, 'train'),
        ('c.png', 1, 1, 'train'), ('d.png', 1, 0, 'test')]


def test_a_new_annotated_layout_is_one_file(tmp_path, monkeypatch):
    from mmpretrain.registry import DATASETS
    (tmp_path / 'walkthrough_layout.py').write_text(LAYOUT_FILE)
    monkeypatch.syspath_prepend(str(tmp_path))
    root = tmp_path / 'pets'
    root.mkdir()
    cfg = Config.fromfile(write_config(
        tmp_path, 'walkthrough_layout',
        osp.join(REPO, 'configs', '_base_', 'default_runtime.py'),
        f"dataset = dict(type='BiasAnnotatedDataset', "
        f"format='walkthrough_pets', data_root={str(root)!r}, "
        "lazy_init=True)\n"))
    init_default_scope('mmpretrain')
    # lazy_init: built before the file exists, metainfo from the class
    ds = DATASETS.build(cfg.dataset)
    assert type(ds).__name__ == 'WalkthroughPets'
    assert ds.metainfo['group_names'] == [
        'cat/indoor', 'cat/outdoor', 'dog/indoor', 'dog/outdoor']
    (root / 'pets.txt').write_text(''.join(
        f'{img} {y} {bg} {split}\n' for img, y, bg, split in PETS))
    for img, *_ in PETS:
        (root / img).write_bytes(b'')
    ds.full_init()
    got = [ds.get_data_info(i) for i in range(len(ds))]
    assert [(osp.basename(s['img_path']), s['gt_label'], s['group_idx'],
             s['bias_label'], s['bias_aligned']) for s in got] == [
        ('a.png', 0, 0, 0, True), ('b.png', 0, 1, 1, False),
        ('c.png', 1, 3, 1, True)]
    # the base's checks hold for it: a value outside the declared ones
    (root / 'pets.txt').write_text('a.png 0 2 train\n')
    with pytest.raises(ValueError, match=r"pets.txt, line 1, column "
                       r"'background': value 2 is not one of"):
        DATASETS.build(dict(cfg.dataset, lazy_init=False))


#: a new backbone family: the backbone (the user's own) and one describer
BACKBONE_FILE = '''
import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from occam_plugin.models.utils import (BackboneStages, StageDescriber,
                                       register_describer)


@MODELS.register_module()
class WalkthroughNet(BaseModule):
    """A stem, then 4 stages of one stride-2 conv; map i when i is in
    out_indices."""

    def __init__(self, width=8, out_indices=(0, 1, 2, 3)):
        super().__init__()
        self.out_indices = tuple(out_indices)
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1), nn.ReLU())
        chans = [width * 2**i for i in range(4)]
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c_in, c, 3, 2, 1), nn.BatchNorm2d(c),
                          nn.ReLU())
            for c_in, c in zip([width] + chans[:-1], chans))

    def forward(self, x):
        x, outs = self.stem(x), []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)


@register_describer(WalkthroughNet)
class WalkthroughNetStages(StageDescriber):

    def describe(self, backbone, in_channels, img_size):
        idx = list(backbone.out_indices)
        modules, run = [], ['stem']
        for i in range(4):
            run.append(f'stages.{i}')
            if i in idx:
                modules.append(run)
                run = []
        return BackboneStages(
            backbone, 'WalkthroughNet',
            channels=[backbone.stages[i][0].out_channels for i in idx],
            reductions=[2 ** (i + 2) for i in idx], indices=idx,
            names=[f'stages.{i}' for i in idx], main=[True] * len(idx),
            stage_modules=modules)
'''


def test_a_new_backbone_family_is_one_describer(tmp_path, monkeypatch):
    from tests.test_models.test_backbone_families import (
        SIZE,
        build_and_train_one_step,
        predict,
    )
    from occam_plugin.models.utils.flops import exit_flops
    (tmp_path / 'walkthrough_backbone.py').write_text(BACKBONE_FILE)
    monkeypatch.syspath_prepend(str(tmp_path))
    Config.fromfile(write_config(  # the config's custom_imports import it
        tmp_path, 'walkthrough_backbone',
        osp.join(REPO, 'configs', '_base_', 'default_runtime.py'), ''))
    init_default_scope('mmpretrain')
    model = build_and_train_one_step(dict(type='WalkthroughNet'))
    stages = model.backbone_stages
    assert stages.kind == 'WalkthroughNet' and stages.runnable
    assert stages.reductions == [4, 8, 16, 32]
    per_exit = exit_flops(model, (3, SIZE, SIZE))['exit']
    assert all(a < b for a, b in zip(per_exit, per_exit[1:])), per_exit
    # dynamic inference runs the describer's stages: the same predictions as
    # computing every exit, for the FLOPs of the stages it needed
    full = predict(model, 'compute_all', 0.0)
    dyn = predict(model, 'dynamic', 0.0)
    for a, d in zip(full, dyn):
        assert int(a.exit_idx) == int(d.exit_idx) == 1
        assert torch.equal(a.pred_label, d.pred_label)
        assert d.flops == pytest.approx(per_exit[1]) and d.flops < a.flops

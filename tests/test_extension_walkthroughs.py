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

from conftest import REPO
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
        MODELS.build(dict(type='DebiasLinearClsHead', num_classes=2,
                          in_channels=2, method=torch.nn.Linear(2, 2)))

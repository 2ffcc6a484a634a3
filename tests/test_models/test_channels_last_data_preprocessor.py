"""ChannelsLastDataPreprocessor: mmpretrain's ClsDataPreprocessor values,
channels-last strides, and a model fed by it computes the same outputs."""
import pytest
import torch
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import occam_plugin  # noqa: F401  (registers)

PRE = dict(mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0], to_rgb=True,
           num_classes=10)


def batch(n=3, side=12):
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (n, 3, side, side), generator=g,
                         dtype=torch.uint8)
    return dict(inputs=list(imgs),
                data_samples=[DataSample().set_gt_label(i) for i in range(n)])


def test_same_values_channels_last_strides():
    init_default_scope('mmpretrain')
    plain = MODELS.build(dict(type='ClsDataPreprocessor', **PRE))
    cl = MODELS.build(dict(type='ChannelsLastDataPreprocessor', **PRE))
    a, b = plain(batch(), True)['inputs'], cl(batch(), True)['inputs']
    assert not a.is_contiguous(memory_format=torch.channels_last)
    assert b.is_contiguous(memory_format=torch.channels_last)
    assert b.shape == a.shape == (3, 3, 12, 12)
    assert torch.equal(a, b)


def test_images_of_other_sizes_are_padded_as_mmpretrain_does():
    """Same-sized images are stacked before the cast (one batch op); a
    list of other sizes keeps ClsDataPreprocessor's pad-and-stack."""
    init_default_scope('mmpretrain')
    plain = MODELS.build(dict(type='ClsDataPreprocessor', **PRE))
    cl = MODELS.build(dict(type='ChannelsLastDataPreprocessor', **PRE))

    def data():
        d = batch(n=2)
        d['inputs'][1] = d['inputs'][1][:, :9, :7]
        return d

    a, b = plain(data(), True), cl(data(), True)
    assert b['inputs'].shape == (2, 3, 12, 12)
    assert torch.equal(a['inputs'], b['inputs'])
    assert [int(s.gt_label) for s in b['data_samples']] == [0, 1]


def test_a_resnet_fed_channels_last_gives_the_same_logits():
    init_default_scope('mmpretrain')

    def model(pre):
        torch.manual_seed(0)
        return MODELS.build(dict(
            type='ImageClassifier',
            data_preprocessor=dict(type=pre, **PRE),
            backbone=dict(type='ResNet', depth=18, base_channels=4,
                          stem_channels=4, out_indices=(3, )),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=32,
                      loss=dict(type='CrossEntropyLoss')))).eval()

    outs = [m.test_step(batch(side=32)) for m in
            (model('ClsDataPreprocessor'),
             model('ChannelsLastDataPreprocessor'))]
    for x, y in zip(*outs):
        torch.testing.assert_close(x.pred_score, y.pred_score,
                                   rtol=1e-5, atol=1e-6)


def _resnet(base_channels):
    """A ResNet-18 classifier fed by ChannelsLastDataPreprocessor; its
    layer2 downsample is a 1x1 stride-2 conv with ``base_channels``
    inputs."""
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='ImageClassifier',
        data_preprocessor=dict(type='ChannelsLastDataPreprocessor', **PRE),
        backbone=dict(type='ResNet', depth=18, base_channels=base_channels,
                      stem_channels=base_channels, out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=10,
                  in_channels=8 * base_channels,
                  loss=dict(type='CrossEntropyLoss'))))


def test_a_model_with_the_crashing_conv_gets_contiguous_input():
    """A 1x1 stride-2 conv with 4 inputs crashes torch 2.14's
    CPU backward on channels-last input; width 16 is safe (probed)."""
    from occam_plugin.models.data_preprocessors. \
        channels_last_data_preprocessor import unsafe_channels_last_conv
    unsafe, safe = _resnet(4), _resnet(16)
    assert unsafe_channels_last_conv(unsafe) == (
        'backbone.layer2.0.downsample.0 is a 1x1 stride-2 Conv2d with 4 '
        'input channels')
    assert unsafe_channels_last_conv(safe) is None
    why = unsafe.data_preprocessor.check_model(unsafe)
    assert why.startswith('backbone.layer2.0.downsample.0 is a 1x1')
    x = unsafe.data_preprocessor(batch(), True)['inputs']
    assert x.is_contiguous() and \
        not x.is_contiguous(memory_format=torch.channels_last)
    assert safe.data_preprocessor.check_model(safe) is None
    x = safe.data_preprocessor(batch(), True)['inputs']
    assert x.is_contiguous(memory_format=torch.channels_last)
    # under DDP: contiguous for any model (the bucket strides)
    assert 'DDP' in safe.data_preprocessor.check_model(safe, True)
    x = safe.data_preprocessor(batch(), True)['inputs']
    assert not x.is_contiguous(memory_format=torch.channels_last)


def test_train_guard_hook_checks_the_model_before_training():
    from types import SimpleNamespace

    from mmpretrain.registry import HOOKS
    model = _resnet(4)
    hook = HOOKS.build(dict(type='TrainGuardHook', check_classes=False,
                            check_groups=False, check_num_classes=False))
    hook.before_train(SimpleNamespace(
        model=model, train_dataloader=SimpleNamespace(dataset=[])))
    assert model.data_preprocessor.channels_last is False


CRASH = '''
import sys, torch
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
import occam_plugin
init_default_scope('mmpretrain')
conv = torch.nn.Sequential(torch.nn.Conv2d(3, 48, 1, 2, bias=False))
pre = MODELS.build(dict(type='ChannelsLastDataPreprocessor'))
if sys.argv[1] == 'checked':
    pre.check_model(conv)
for _ in range(10):
    x = pre(dict(inputs=list(torch.randint(0, 256, (64, 3, 80, 80),
                                           dtype=torch.uint8))), True)
    conv(x['inputs']).sum().backward()
print('trained')
'''


@pytest.mark.slow
def test_the_checked_preprocessor_trains_the_crashing_conv():
    """The real crash only in a subprocess: 10 steps of the 1x1 stride-2
    conv on 3 channels through the checked preprocessor end normally."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, MALLOC_CHECK_='3')
    proc = subprocess.run([sys.executable, '-c', CRASH, 'checked'],
                          env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and 'trained' in proc.stdout, proc.stderr

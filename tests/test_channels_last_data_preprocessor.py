"""ChannelsLastDataPreprocessor: mmpretrain's ClsDataPreprocessor values,
channels-last strides, and a model fed by it computes the same outputs."""
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

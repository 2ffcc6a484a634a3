# The biased model of LfF on an OccamNet: a plain ResNet-18 (same trunk as
# resnet/resnet18-w16_1xb64_10e_biased-mnist-small.py), trained with GCE by
# LfFClassifier. Only defines `lff_biased_model`, so it can sit beside an Occam
# config in _base_.
_w = 16
lff_biased_model = dict(
    type='PlainClassifier',
    backbone=dict(type='ResNet', depth=18, stem_channels=_w,
                  base_channels=_w, out_indices=(3, ), style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='MethodLinearClsHead', num_classes=10))
